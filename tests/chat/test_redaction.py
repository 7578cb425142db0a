"""Redaction with the real Presidio engine and the bundled spaCy model (loaded once, ~1 s).

The false-positive cases are real customer sentences: from the Bitext customer-service set
and ABCD's customer turns, and the ones the issue names ("I'm a silver member").
"""

from __future__ import annotations

import threading

import pytest

from apps.chat.services import redaction
from apps.chat.services.redaction import Redacted, redact


@pytest.mark.parametrize(
    ("text", "expected", "counts"),
    [
        (
            "My name is John Smith and my email is john.smith@example.com",
            "My name is <NAME> and my email is <EMAIL>",
            {"<NAME>": 1, "<EMAIL>": 1},
        ),
        ("Call me at (415) 555-0132 or +44 20 7946 0958", "Call me at <PHONE> or <PHONE>", {"<PHONE>": 2}),
        ("My card 4111 1111 1111 1111 was charged twice", "My card <CARD> was charged twice", {"<CARD>": 1}),
        ("IBAN DE89 3704 0044 0532 0130 00 please refund there", "IBAN <IBAN> please refund there", {"<IBAN>": 1}),
        (
            "The site blocks my ip 192.168.1.20 since yesterday",
            "The site blocks my ip <IP> since yesterday",
            {"<IP>": 1},
        ),
        ("cminh730@email.com", "<EMAIL>", {"<EMAIL>": 1}),  # ABCD: an e-mail as a whole turn
        ("7916676427", "<PHONE>", {"<PHONE>": 1}),  # ABCD: a bare phone number
        (
            "I have to find my bill from David Miller, can you help me?",
            "I have to find my bill from <NAME>, can you help me?",
            {"<NAME>": 1},
        ),
        ("can icheck the invoice from Mr. Smith", "can icheck the invoice from Mr. <NAME>", {"<NAME>": 1}),
    ],
)
def test_personal_data_is_replaced_by_its_tag_and_counted(text, expected, counts):
    result = redact(text)

    assert result == Redacted(expected, counts)
    assert result.changed


@pytest.mark.parametrize(
    "text",
    [
        "How long do I have to return something? I'm a silver member.",
        "I'm a Gold member and my jacket from Calvin Klein is too small",
        "I bought it on Amazon, can I return it here?",
        "I ordered Guess jeans on May 3rd and they are too tight",
        "card 4111 1111 1111 1112 was declined",  # fails the Luhn check: not a card number
        "order number 1234567890 hasn't arrived",  # a phone number's digits, but an order reference
        "can you help me to cancel purchase 113542617735902?",  # Bitext: passes Luhn, is an order id
        "I do not know how I could remove the Freemium account",  # Bitext: a plan, not a person
        "do you ship to Valencia?",  # Bitext: a city, not a person
        "I do not know how I can cancel purchase 00123842",
        "My promo code SAVE20 didn't work",
        "I want to change my shipping address to 123 Main Street, Springfield",
        "Username: cminh730",
        "<NAME> at <EMAIL> called <PHONE>",  # already redacted: stays as it is
    ],
)
def test_shop_sentences_are_left_alone(text):
    assert redact(text) == Redacted(text, {})


def test_redacting_twice_changes_nothing_more():
    once = redact("Hi, this is Maria Lopez, reach me on maria@shop.example or 415-555-0132.")

    assert once.counts == {"<NAME>": 1, "<EMAIL>": 1, "<PHONE>": 1}
    assert redact(once.text) == Redacted(once.text, {})


@pytest.mark.parametrize("text", ["", "   ", "?!", "..."])
def test_text_without_words_comes_back_unchanged(text):
    assert redact(text) == Redacted(text, {})


def test_the_engine_loads_once_and_serves_threads_alike():
    text = "Please call Anna Freeman at (415) 555-0132."
    expected = redact(text)
    engines = redaction._engines.get()
    results: list[Redacted] = []

    threads = [threading.Thread(target=lambda: results.append(redact(text))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [expected] * 4
    assert expected.text == "Please call <NAME> at <PHONE>."
    assert redaction._engines.get() is engines
    assert redaction.redaction_load_seconds() is not None
