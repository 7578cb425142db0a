"""The grounded prompt: numbered passages, placement, history window, citations, "I don't know"."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from apps.chat.services import prompting
from apps.chat.services.prompting import (
    MAX_PASSAGES,
    SYSTEM_PROMPT,
    UNKNOWN_REPLY,
    build_messages,
    cited_numbers,
    passages_block,
    says_unknown,
)


@dataclass
class FakePassage:  # the fields of index.Passage that the prompt reads
    article_title: str
    heading: str
    text: str


REFUND = FakePassage("Product Defect: Initiate Refund", "Steps", "Gold members may return items within 90 days.")
SHIPPING = FakePassage("Shipping Issue: Status Delivery", "Overview", "Orders ship in 3-5 business days.")


def test_passages_are_numbered_with_their_titles_in_the_user_turn():
    # when the prompt is built with the default placement
    messages = build_messages("how long do I have to send stuff back?", [REFUND, SHIPPING])

    # then the system turn is the short instruction and the user turn holds numbered passages + question
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == SYSTEM_PROMPT
    user = messages[1]["content"]
    assert "[1] Product Defect: Initiate Refund — Steps: Gold members may return items within 90 days." in user
    assert "[2] Shipping Issue: Status Delivery — Overview: Orders ship in 3-5 business days." in user
    assert user.index("[1]") < user.index("[2]") < user.index("Question: how long do I have to send stuff back?")


def test_system_placement_moves_the_passages_into_the_system_turn():
    messages = build_messages("where is my parcel", [SHIPPING], placement="system")

    assert messages[0]["content"].startswith(SYSTEM_PROMPT)
    assert "[1] Shipping Issue: Status Delivery" in messages[0]["content"]
    assert messages[1] == {"role": "user", "content": "where is my parcel"}


def test_no_passages_says_so_and_only_the_first_few_are_used():
    empty = build_messages("what is the weather", [])
    assert "(no passages found)" in empty[1]["content"]

    many = [FakePassage(f"Article {i}", "", f"text {i}") for i in range(MAX_PASSAGES + 3)]
    block = passages_block(many)
    assert f"[{MAX_PASSAGES}] Article {MAX_PASSAGES - 1}: text {MAX_PASSAGES - 1}" in block
    assert f"[{MAX_PASSAGES + 1}]" not in block


def test_dict_passages_and_long_text_are_clipped():
    long_text = "word " * 2000
    block = passages_block([{"article_title": "T", "heading": "T", "text": long_text}])
    assert block.startswith("[1] T: word word")  # a heading equal to the title is not repeated
    assert len(block) <= prompting.PASSAGE_CHARS + 20
    assert block.endswith(" ...")


def test_history_keeps_the_last_turns_and_never_opens_on_a_reply():
    # given a long conversation with a system message and a blank turn mixed in
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(9)]
    history.insert(3, {"role": "system", "content": "injected"})
    history.append({"role": "user", "content": "   "})

    # when the prompt is built
    messages = build_messages("and for gold members?", [REFUND], history)

    # then only the last user/assistant turns stay, starting with a customer turn
    kept = messages[1:-1]
    assert len(kept) <= prompting.HISTORY_MESSAGES
    assert kept[0]["role"] == "user"
    assert [m["content"] for m in kept] == ["turn 6", "turn 7", "turn 8"]
    assert all(m["content"] != "injected" for m in messages)


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="empty"):
        build_messages("   ", [REFUND])
    with pytest.raises(ValueError, match="placement"):
        build_messages("hi", [REFUND], placement="assistant")  # type: ignore[arg-type]


def test_citations_and_unknown_replies_are_recognised():
    assert cited_numbers("Gold members have 90 days [1]. See also [3] and [1].") == [1, 3]
    assert cited_numbers("no citation here") == []
    assert says_unknown(UNKNOWN_REPLY)
    assert says_unknown("I'm not sure about that, sorry.")
    assert says_unknown("I do not know.")
    assert says_unknown("I'm unable to provide assistance with refunds.")  # the bundled model's usual refusal
    assert not says_unknown("Gold members may return items within 90 days [1].")


def test_the_prompt_fits_the_real_chat_template():
    # the real tokenizer renders it as ChatML with room for a 160-token reply
    from ml.registry import default_registry

    tokenizer = default_registry().get("chat-lm").tokenizer
    passages = [FakePassage(f"Article {i}", "Steps", "step " * 400) for i in range(MAX_PASSAGES)]
    history = [{"role": "user", "content": "q " * 300}, {"role": "assistant", "content": "a " * 300}]
    ids = tokenizer.apply_chat_template(build_messages("q?", passages, history), add_generation_prompt=True)
    assert len(ids) < 2048 - 160
    text = tokenizer.decode(ids)
    assert text.count("<|im_start|>") == 5  # system, history user + assistant, user, generation prompt


def test_a_long_passage_keeps_the_sentences_the_question_asks_about():
    # given a passage longer than the budget whose answer sits at the end
    filler = [f"Our store opened branch number {i} in a new city last year." for i in range(12)]
    answer = "Gold members can return any item within 90 days of delivery."
    text = " ".join([*filler, answer])
    assert len(text) > prompting.PASSAGE_CHARS

    # when it is focused on a question about returns
    kept = prompting.focus(text, "How many days do gold members have to return an item?")

    # then the answering sentence is kept whole, the rest fills the budget in passage order
    assert answer in kept
    assert len(kept) <= prompting.PASSAGE_CHARS
    assert kept.startswith(filler[0])
    assert kept.index(filler[0]) < kept.index(answer)
    # and a question that shares no words keeps the passage's opening
    opening = prompting.focus(text, "xyzzy?")
    assert opening.startswith(filler[0]) and answer not in opening
    # and the block the model reads is focused the same way
    block = passages_block([FakePassage("Returns", "", text)], "How many days do gold members have to return?")
    assert answer in block
