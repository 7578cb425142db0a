"""Readers for the public datasets the benchmarks use (never copied into the repository).

``TRELLIS_DATASETS`` points at them; by default ``../shared/datasets`` beside the checkout.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRELLIS_DATASETS", REPO.parent / "shared" / "datasets"))
SENTIMENT_DIR = DATASETS / "twitter_financial_news_sentiment"
BANKING77_DIR = DATASETS / "banking77"
SENTIMENT_NAMES = {"0": "bearish", "1": "bullish", "2": "neutral"}  # per the dataset's README


def read_labelled_csv(path: Path, label_column: str = "label") -> list[tuple[str, str]]:
    """(text, label) rows of a CSV with a ``text`` column; sentiment's 0/1/2 get their names."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = [(r["text"], r[label_column]) for r in csv.DictReader(fh)]
    if label_column == "label":
        rows = [(text, SENTIMENT_NAMES.get(label, label)) for text, label in rows]
    return rows
