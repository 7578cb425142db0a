"""Fakes of the models for the inference API's unit tests (no weights loaded), and the
fixtures of tests/servers (the migrated var dir for a live uvicorn) and tests/e2e (Debian's
Chromium) that the live tests here share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from apps.accounts.token_cache import token_cache_clear
from apps.serving.throttling import throttle_windows_clear
from tests.e2e.conftest import browser_type_launch_args  # noqa: F401
from tests.servers.conftest import embedded_var  # noqa: F401


class FakeTokenizer:
    """Counts whitespace-separated words plus [CLS] and [SEP], as a BERT tokenizer would."""

    def __call__(self, texts, **kwargs):
        return {"input_ids": [[0, *range(len(t.split())), 0] for t in texts]}


class FakeEmbedder:
    dim = 4
    max_seq_length = 256

    def __init__(self) -> None:
        self.tokenizer = FakeTokenizer()
        self.calls: list[list[str]] = []

    def embed(self, texts, *, batch_size: int = 64) -> np.ndarray:
        self.calls.append(list(texts))
        vectors = np.array([[len(t), 1.0, 0.0, 0.0] for t in texts], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    async def aembed(self, texts) -> np.ndarray:
        return self.embed(texts)


@dataclass
class FakePrediction:
    label: str
    confidence: float
    probs: dict[str, float]


class FakeClassifier:
    labels = ["refund", "greeting"]

    def predict(self, texts, *, batch_size: int = 64):
        return [
            FakePrediction("refund", 0.75, {"refund": 0.75, "greeting": 0.25})
            if "refund" in t else FakePrediction("greeting", 0.9, {"refund": 0.1, "greeting": 0.9})
            for t in texts
        ]

    async def apredict(self, texts):
        return self.predict(texts)


@dataclass(frozen=True)
class FakeEntity:
    text: str
    label: str
    start: int
    end: int
    ticker: str | None = None


class FakeExtractor:
    def extract(self, texts, *, batch_size: int = 64):
        return [[FakeEntity("Apple", "ORG", t.find("Apple"), t.find("Apple") + 5, "AAPL")] if "Apple" in t else []
                for t in texts]


class FakeChatLM:
    """Replies with ``pieces`` (or raises ``error`` before the first piece, or ``fail_after``
    pieces into the reply), filling the stats as ``ChatLM.stream`` does."""

    def __init__(self) -> None:
        self.pieces = ["Hello ", "there", "!"]
        self.error: Exception | None = None
        self.fail_after: int | None = None
        self.calls: list[dict] = []

    async def stream(self, messages, *, max_new_tokens=128, temperature=0.0, top_p=0.9, stop=(), on_queued=None,
                     stats=None, seed=None):
        self.calls.append({"messages": messages, "max_new_tokens": max_new_tokens, "temperature": temperature,
                           "stop": list(stop), "seed": seed})
        if self.error is not None:
            raise self.error
        stats.prompt_tokens = 5
        finished = False
        try:
            for n, piece in enumerate(self.pieces):
                if self.fail_after is not None and n == self.fail_after:
                    stats.finish_reason = "error"
                    raise RuntimeError("generation failed: out of memory")
                stats.tokens += 1
                yield piece
            finished = True
            stats.finish_reason = "length" if stats.tokens >= max_new_tokens else "eos"
        finally:
            if not finished and not stats.finish_reason:
                stats.finish_reason = "cancelled"


@pytest.fixture(autouse=True)
def _fresh_process_memory():
    """Each test starts with no remembered tokens and no throttle windows: the database is
    rolled back between tests, so user ids (and their throttle keys) come back."""
    token_cache_clear()
    throttle_windows_clear()
    yield
    token_cache_clear()
    throttle_windows_clear()


@pytest.fixture
def fake_models(monkeypatch):
    """Every role's model replaced by a fake; returns role -> fake."""
    fakes = {"embedder": FakeEmbedder(), "intent": FakeClassifier(), "sentiment": FakeClassifier(),
             "ner": FakeExtractor(), "chat-lm": FakeChatLM()}
    monkeypatch.setattr("apps.serving.api.model_load", lambda role: fakes[role])
    return fakes


@pytest.fixture
def client_for(api_client, make_user):
    """``client_for("agent")`` -> an APIClient signed in as a new user with that role."""

    def make(*roles: str):
        api_client.force_authenticate(make_user(*roles))
        return api_client

    return make

