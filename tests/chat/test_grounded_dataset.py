"""Grounded-answering transcripts: built from the KB, in the prompt's format, read by the chat LoRA."""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import CommandError, call_command

from apps.chat.models import Article
from apps.chat.services.articles import article_create
from apps.chat.services.grounded_dataset import (
    OFF_TOPIC,
    grounded_examples_build,
    grounded_jsonl,
    normalised,
    passage_questions,
    passage_sentences,
)
from apps.chat.services.index import kb_index_build
from apps.chat.services.prompting import SYSTEM_PROMPT, UNKNOWN_REPLY
from ml.finetune.chat_lora import load_conversations
from tests.recommend.conftest import WordHashEmbedder

pytestmark = pytest.mark.django_db

ARTICLES = {
    "Product Defect: Return Due to Size": (
        "## Steps\n\n1. Check the membership level.\n    - Gold members get unlimited returns.\n"
        "    - Silver members can return an item within the last 6 months.\n"
        "    - Bronze members can return an item within the last 90 days.\n"
        "2. Ask how they would like to return it: by mail, in store or at a drop off center."
    ),
    "Shipping Issue: Shipping Cost": (
        "## Overview\n\nThe cost of shipping is too high and the customer wants the fee waived. "
        "Standard shipping is $8.00 and we refund it when the order is already delivered."
    ),
    "Account Access: Recover Password": (
        "## Steps\n\nWe cannot tell a customer their password, but we can generate a new one. "
        "To make a new password we need the PIN number or the answer to the security question."
    ),
}
BENCH = "bench/data/chat_questions.jsonl"


@pytest.fixture
def kb():
    for title, body in ARTICLES.items():
        article_create(values={"title": title, "body": body, "published": True})
    article_create(values={"title": "Draft: Secret plans", "body": "Never shown to customers, not even in training."})
    kb_index_build()


def _build(**kwargs):
    return grounded_examples_build(embedder=WordHashEmbedder(), **kwargs)


def test_answers_come_from_their_passage_with_the_right_citation(kb):
    # when transcripts are built from the three published articles
    examples = _build(per_passage=3, seed=1)

    # then each answer copies sentences of a passage and cites that passage's number
    answers = [e for e in examples if e.kind == "answer"]
    assert len(answers) == 3 * len(ARTICLES)
    titles = dict(Article.objects.values_list("pk", "title"))
    for example in answers:
        system, user, assistant = example.messages
        assert system == {"role": "system", "content": SYSTEM_PROMPT}
        assert user["content"].startswith("Passages:\n[1] ")
        assert user["content"].endswith(f"Question: {example.question}")
        number = int(re.search(r"\[(\d)\]$", assistant["content"]).group(1))
        title = titles[example.article_id]
        assert f"\n[{number}] {title}" in f"\n{user['content'][len('Passages:') :]}"
        body = " ".join(ARTICLES[title].replace("**", "").split())
        first_sentence = assistant["content"].rsplit(" [", 1)[0].split(". ")[0].rstrip(".")
        assert first_sentence in body
        assert "Secret plans" not in user["content"]  # drafts never become training text


def test_off_topic_questions_teach_i_dont_know_and_the_trainer_reads_the_file(kb, tmp_path):
    examples = _build(per_passage=2, seed=0)
    unknown = [e for e in examples if e.kind == "unknown"]
    assert unknown and all(e.messages[-1] == {"role": "assistant", "content": UNKNOWN_REPLY} for e in unknown)
    assert {e.question for e in unknown} <= set(OFF_TOPIC)

    # the chat LoRA's own reader accepts the JSONL, one transcript per example
    path = tmp_path / "grounded.jsonl"
    path.write_bytes(grounded_jsonl(examples))
    conversations = load_conversations(path)
    assert len(conversations) == len(examples)
    assert [m["role"] for m in conversations[0]] == ["system", "user", "assistant"]


def test_benchmark_questions_never_become_training_questions(kb):
    # given every question the templates could write for the articles, marked as benchmark questions
    everything = _build(per_passage=50, seed=0)
    banned = [e.question.upper() + "!" for e in everything[:5]]  # case and punctuation do not matter

    rebuilt = _build(per_passage=50, seed=0, exclude=banned)

    assert {normalised(q) for q in banned}.isdisjoint(normalised(e.question) for e in rebuilt)
    answers = [e for e in everything if e.kind == "answer"]  # every template used: only the banned ones go
    dropped = sum(e.kind == "answer" for e in everything[:5])
    assert sum(e.kind == "answer" for e in rebuilt) == len(answers) - dropped


def test_the_repository_question_set_is_disjoint_from_the_generated_one(kb, settings):
    from pathlib import Path

    rows = [json.loads(line) for line in (Path(settings.BASE_DIR) / BENCH).read_text().splitlines() if line.strip()]
    assert sum(r["answerable"] for r in rows) >= 60 and sum(not r["answerable"] for r in rows) >= 30
    assert all(1 <= len(r["facts"]) <= 3 and r["article"].startswith("abcd:") for r in rows if r["answerable"])
    bench = {normalised(r["question"]) for r in rows}
    assert bench.isdisjoint(normalised(q) for q in OFF_TOPIC)
    assert bench.isdisjoint(normalised(e.question) for e in _build(per_passage=50, seed=3))


def test_limit_and_token_budget_are_kept(kb):
    # a budget that fits only one passage: distractors are dropped, the cited one stays
    def words(messages):
        return sum(len(m["content"].split()) for m in messages)

    examples = _build(per_passage=4, limit=6, token_count=words, max_tokens=140)
    assert len(examples) == 6
    for example in examples:
        if example.kind == "answer":
            assert words(example.messages) <= 140
            assert example.messages[-1]["content"].endswith("[1]")


def test_questions_and_sentences_come_from_the_passage_structure():
    import random

    questions = passage_questions(
        "Product Defect: Return Due to Size", "Steps", "Gold members get unlimited returns.", random.Random(0), 40
    )
    assert len(questions) == len(set(questions)) and any("return due to size" in q for q in questions)
    assert any(q.startswith("I'm a gold member") for q in questions)
    assert not any("silver" in q for q in questions)  # only levels the passage names
    assert passage_sentences("1. Check the **level** now. - Gold members get unlimited returns. - ok") == [
        "Check the level now.",
        "Gold members get unlimited returns.",
    ]


def test_an_empty_knowledge_base_is_a_clear_error():
    with pytest.raises(ValueError, match="no published passages"):
        _build()
    with pytest.raises(ValueError, match="at least 1"):
        _build(per_passage=0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epochs", "0"], "at least 1"),
        (["--limit", "many"], "whole number"),
        (["--learning-rate", "5"], "learning_rate"),
        (["--exclude", "/nonexistent/questions.jsonl"], "no such file"),
        (["--user", "nobody-here"], "No user"),
    ],
)
def test_command_argument_errors_store_nothing(argv, message):
    from apps.mlops.models import Dataset, TrainingJob

    with pytest.raises(CommandError, match=message):
        call_command("chat_grounded_lora", *argv)
    assert not Dataset.objects.exists() and not TrainingJob.objects.exists()


def test_command_on_an_empty_knowledge_base_says_what_to_do():
    with pytest.raises(CommandError, match="import articles and build the index"):
        call_command("chat_grounded_lora", "--exclude", BENCH)
