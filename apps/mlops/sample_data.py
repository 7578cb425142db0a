"""Small generated sample datasets, so a fresh install can train a model in a minute.

These are templated sentences written for Trellis, not copies of any public dataset.
"""

from __future__ import annotations

import csv
import io
import random

INTENT_TEMPLATES: dict[str, list[str]] = {
    "order_status": [
        "where is my {item}", "has my {item} shipped yet", "track the {item} I ordered {when}",
        "my {item} has not arrived", "when will the {item} be delivered", "what is the delivery status of my {item}",
    ],
    "refund": [
        "I want my money back for the {item}", "how do I return the {item}", "refund the {item} please",
        "the {item} was broken, I need a refund", "can I send the {item} back", "return policy for a {item}",
    ],
    "account": [
        "I cannot log in to my account", "reset my password", "change the email on my account",
        "my account is locked since {when}", "how do I update my address", "delete my account",
    ],
    "payment": [
        "my card was declined for the {item}", "I was charged twice for the {item}",
        "which payment methods do you take",
        "the payment for my {item} failed", "send me the invoice for the {item}", "why was I billed {when}",
    ],
}
ITEMS = ["order", "package", "shoes", "laptop", "jacket", "headphones", "phone case", "book", "lamp", "backpack"]
WHEN = ["yesterday", "last week", "on monday", "two days ago", "this morning", "last month"]
PREFIXES = ["", "hi, ", "hello, ", "please, ", "quick question: ", "help, "]
SUFFIXES = ["", "?", " thanks", " asap", ".", " please"]


def intent_sample_rows(n: int = 400, *, seed: int = 7) -> list[tuple[str, str]]:
    """``n`` distinct (text, intent) rows, balanced over four intents."""
    rng = random.Random(seed)  # noqa: S311 - seeded sample data, not a secret
    labels = sorted(INTENT_TEMPLATES)
    rows: dict[str, str] = {}
    attempts = 0
    while len(rows) < n and attempts < n * 50:
        attempts += 1
        label = labels[len(rows) % len(labels)]
        text = rng.choice(PREFIXES) + rng.choice(INTENT_TEMPLATES[label]).format(
            item=rng.choice(ITEMS), when=rng.choice(WHEN)) + rng.choice(SUFFIXES)
        rows.setdefault(text, label)
    return list(rows.items())


def rows_to_csv(rows: list[tuple[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")
