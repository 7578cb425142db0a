"""The grounding check and extractive answers.

Claims about what counts as grounded use the real bundled MiniLM (``model_get("embedder")``);
the rules that do not depend on the model (refusals, empty replies, numbers, sentence
splitting) use the word-hash fake.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.chat.management.commands.kb_demo import DATASET
from apps.chat.services.grounding import SENTENCE_MIN, extractive_answer, grounding_check, is_refusal, text_units
from apps.chat.services.index import Passage
from tests.chat import grounding_cases
from tests.recommend.conftest import WordHashEmbedder

REAL_EMBEDDER = True  # tests/chat/conftest.py leaves the embedder alone
needs_abcd = pytest.mark.skipif(not (DATASET / "guidelines.json").is_file(), reason="no ABCD data set")

RETURNS = (
    "Returns > Membership",
    "Gold members get unlimited returns. Silver members can return an item within six months of "
    "purchase. Bronze members have 90 days, guests 30 days. Keep the receipt or the original packaging.",
)


def passage(heading: str, text: str, title: str = "Returns") -> Passage:
    return Passage(0, 0, title, heading, text, text[:80], 0.5, True)


@pytest.fixture(scope="module")
def abcd_passages():
    from apps.chat.services.chunking import article_chunk
    from apps.chat.services.demo import demo_articles

    articles = {a.title: a for a in demo_articles(Path(DATASET))}

    def build(title: str) -> list[Passage]:
        return [passage(c.heading, c.text, title) for c in article_chunk(articles[title].body)]

    return build


@pytest.fixture
def embedder(db):
    from apps.mlops.services.serving import model_get

    return model_get("embedder")


@needs_abcd
def test_hand_written_replies_separate_on_the_abcd_policies(abcd_passages, embedder):
    grounded = [grounding_check(r, abcd_passages(t), embedder=embedder) for t, r in grounding_cases.GROUNDED]
    ungrounded = [grounding_check(r, abcd_passages(t), embedder=embedder) for t, r in grounding_cases.UNGROUNDED]

    assert [r.grounded for r in grounded] == [True] * len(grounded)
    assert [r.grounded for r in ungrounded] == [False] * len(ungrounded)
    judged_on_similarity = [r.score for r in ungrounded if r.reason == "similarity"]
    assert min(r.score for r in grounded) > SENTENCE_MIN > max(judged_on_similarity)
    assert {r.reason for r in ungrounded} == {"refusal", "numbers", "similarity", "empty"}


@needs_abcd
def test_extractive_answer_to_the_silver_member_question_quotes_the_policy(abcd_passages, embedder):
    passages = abcd_passages("Product Defect: Return Due to Size")

    answer = extractive_answer(
        "How long do I have to return something? I'm a silver member.", passages, embedder=embedder
    )

    assert "6 months" in answer and answer.startswith("Silver members")
    assert grounding_check(answer, passages, embedder=embedder).grounded


@needs_abcd
def test_extractive_answers_are_whole_readable_sentences(abcd_passages, embedder):
    questions = {
        "Account Access: Recover Password": "I forgot my password, can you tell me what it is?",
        "Subscription Inquiry: Manage Extension": "Can I get an extension on my subscription? I'm gold",
        "Shipping Issue: Shipping Cost": "How much is standard shipping?",
    }
    for title, question in questions.items():
        answer = extractive_answer(question, abcd_passages(title), embedder=embedder, max_sentences=2)

        assert answer and answer.endswith(".")
        assert not answer.startswith(("Overview", "Steps", "Required actions"))
        assert "**" not in answer and "##" not in answer and "<or>" not in answer
        assert all(len(s.split()) >= 6 for s in answer.split(". ") if s)


def test_a_faithful_paraphrase_is_grounded_and_an_invented_fact_is_not(embedder):
    passages = [passage(*RETURNS)]

    faithful = grounding_check(
        "As a silver member you can return an item within 6 months.", passages, embedder=embedder
    )
    invented = grounding_check("Silver members get free express shipping on all orders.", passages, embedder=embedder)

    assert faithful.grounded, faithful
    assert (invented.grounded, invented.reason) == (False, "similarity")


def test_a_number_the_passages_do_not_hold_makes_a_reply_ungrounded(embedder):
    result = grounding_check(
        "Silver members can return an item within 12 months.", [passage(*RETURNS)], embedder=embedder
    )

    assert not result.grounded
    assert (result.reason, result.unsupported_numbers) == ("numbers", ["12"])


@pytest.mark.parametrize(
    "reply",
    [
        "I'm unable to provide assistance with refunds.",
        "I'm sorry, but I cannot help with that request.",
        "As an AI, I do not have access to your orders.",
        "I don't know the answer to that question.",
    ],
)
def test_refusals_are_never_grounded(reply):
    result = grounding_check(
        reply + " Gold members get unlimited returns.", [passage(*RETURNS)], embedder=WordHashEmbedder()
    )

    assert is_refusal(reply)
    assert (result.grounded, result.reason) == (False, "refusal")


@pytest.mark.parametrize("reply", ["", "   ", "Sure!", "Happy to help. Thanks!"])
def test_an_empty_or_contentless_reply_is_not_grounded(reply):
    result = grounding_check(reply, [passage(*RETURNS)], embedder=WordHashEmbedder())

    assert (result.grounded, result.reason, result.sentence_scores) == (False, "empty", [])


def test_no_passages_means_not_grounded():
    result = grounding_check("Gold members get unlimited returns.", [], embedder=WordHashEmbedder())

    assert (result.grounded, result.reason) == (False, "empty")


def test_a_verbatim_quote_is_grounded_with_a_score_per_sentence():
    text = RETURNS[1]
    result = grounding_check(
        "Gold members get unlimited returns. Bronze members have 90 days, guests 30 days.",
        [passage(RETURNS[0], text)],
        embedder=WordHashEmbedder(),
    )

    assert result.grounded and len(result.sentence_scores) == 2
    assert min(result.sentence_scores) == pytest.approx(1.0, abs=1e-4) == result.score


def test_text_units_split_sentences_and_flattened_lists_but_not_abbreviations():
    flattened = (
        "Overview Help the customer, e.g. with a refund. Then stop! 2. Validate Purchase: - Username - "
        "occasionally, the customer may not remember it - Email Address 3. Gold members: > Gold members "
        "get unlimited returns <or> a **gift card**"
    )

    assert text_units(flattened) == [
        "Overview Help the customer, e.g. with a refund.",
        "Then stop!",
        "Validate Purchase:",
        "Username - occasionally, the customer may not remember it",
        "Email Address",
        "Gold members: Gold members get unlimited returns or a gift card",
    ]


def test_extractive_answer_keeps_the_passage_order_and_nothing_from_empty_input():
    passages = [
        passage(
            "Returns",
            "Silver members can return shirts within six months. Shipping is free for gold members today. "
            "Silver members can return shoes within six months.",
        ),
        passage("Shipping", "Standard shipping costs eight dollars for every order."),
    ]
    fake = WordHashEmbedder()

    answer = extractive_answer("can silver members return shoes or shirts within six months", passages, embedder=fake)

    assert (
        answer
        == "Silver members can return shirts within six months. Silver members can return shoes within six months."
    )
    assert extractive_answer("anything", [], embedder=fake) == ""
    assert extractive_answer("anything", [passage("Empty", "Short label")], embedder=fake) == ""
