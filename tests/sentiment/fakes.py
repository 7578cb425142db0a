"""Test doubles of the sentiment model (the real ``ml.classify.Prediction`` type).

``KeywordSentiment`` is deterministic: a text with more bullish than bearish words is bullish
(0.8), fewer is bearish (0.8), else neutral (0.8). ``slow_keyword_model`` is the factory the
test-only setting ``TRELLIS_SENTIMENT_MODEL_OVERRIDE`` names in a worker that must be killed
mid-batch: each ``predict`` call first writes a marker file into
``TRELLIS_SENTIMENT_FAKE_MARKER_DIR`` (so the test sees a batch start), then sleeps
``TRELLIS_SENTIMENT_FAKE_DELAY_S`` seconds (so it can be killed before the batch commits).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

from ml.classify import Prediction

BULLISH = {
    "beats",
    "beat",
    "rises",
    "rise",
    "gains",
    "gain",
    "surges",
    "soars",
    "upgraded",
    "upgrade",
    "record",
    "strong",
    "rally",
    "rallies",
    "jumps",
    "up",
    "bullish",
    "buy",
}
BEARISH = {
    "misses",
    "miss",
    "falls",
    "fall",
    "drops",
    "plunges",
    "slumps",
    "downgraded",
    "downgrade",
    "weak",
    "lawsuit",
    "loss",
    "cuts",
    "down",
    "bearish",
    "sell",
    "recall",
}
_WORD = re.compile(r"[a-z]+")


class KeywordSentiment:
    labels = ["bearish", "neutral", "bullish"]

    def __init__(self, version: str = "fake-keyword-1") -> None:
        self.version = version
        self.calls: list[int] = []  # texts per predict call

    def probabilities(self, text: str) -> dict[str, float]:
        words = _WORD.findall(text.lower())
        up, down = sum(w in BULLISH for w in words), sum(w in BEARISH for w in words)
        best = "bullish" if up > down else "bearish" if down > up else "neutral"
        return {label: 0.8 if label == best else 0.1 for label in self.labels}

    def predict(self, texts: Sequence[str], *, batch_size: int = 64) -> list[Prediction]:
        if isinstance(texts, str):
            raise TypeError("predict() takes a sequence of texts")
        self.calls.append(len(texts))
        out = []
        for text in texts:
            probs = self.probabilities(text)
            label = max(probs, key=probs.__getitem__)
            out.append(Prediction(label, probs[label], probs))
        return out


_shared: dict[str, KeywordSentiment] = {}


def keyword_model() -> KeywordSentiment:
    """One instance per process (what ``TRELLIS_SENTIMENT_MODEL_OVERRIDE`` names in app tests)."""
    return _shared.setdefault("model", KeywordSentiment())


class SlowKeywordSentiment(KeywordSentiment):
    def predict(self, texts: Sequence[str], *, batch_size: int = 64) -> list[Prediction]:
        marker_dir = os.environ.get("TRELLIS_SENTIMENT_FAKE_MARKER_DIR")
        if marker_dir:
            name = f"predict-{os.getpid()}-{time.monotonic_ns()}"
            (Path(marker_dir) / name).write_text(str(len(texts)))
        time.sleep(float(os.environ.get("TRELLIS_SENTIMENT_FAKE_DELAY_S", "0")))
        return super().predict(texts, batch_size=batch_size)


def slow_keyword_model() -> SlowKeywordSentiment:
    return _shared.setdefault("slow", SlowKeywordSentiment())  # type: ignore[return-value]
