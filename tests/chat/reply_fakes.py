"""Test doubles for the reply pipeline: a scripted chat LM and intent model, installed in place
of ``model_get`` in ``apps.chat.services.reply`` (the embedder is tests/chat/conftest.py's
WordHashEmbedder). For app-logic tests; test_reply_real.py uses the bundled models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from ml.classify import Prediction
from ml.lm_gate import BusyError
from tests.recommend.conftest import WordHashEmbedder


@dataclass
class FakeLM:
    """Yields ``pieces`` one by one and records every prompt it was given.

    ``busy`` raises BusyError before any text; ``hold_after`` pieces in, it waits on
    ``release`` (so a test can cancel mid-stream); ``cancelled`` says the stream was closed
    before its end.
    """

    pieces: list[str] = field(default_factory=lambda: ["Items ", "can be returned ", "within 30 days [1]."])
    busy: bool = False
    hold_after: int | None = None
    version: str = "fake-lm"
    prompts: list[list[dict[str, str]]] = field(default_factory=list)
    kwargs: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    held: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False
    sent: int = 0

    async def stream(self, messages: list[dict[str, str]], **kwargs: Any) -> AsyncIterator[str]:
        self.prompts.append(messages)
        self.kwargs.append(kwargs)
        if self.busy:
            raise BusyError(4)
        finished = False
        try:
            for index, piece in enumerate(self.pieces):
                if self.hold_after is not None and index == self.hold_after:
                    self.held.set()
                    await self.release.wait()
                await asyncio.sleep(0)
                self.sent += 1
                yield piece
            finished = True
        finally:
            self.cancelled = not finished

    async def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
        return "".join([piece async for piece in self.stream(messages, **kwargs)])


@dataclass
class FakeIntent:
    """Answers every text with ``label`` at ``confidence`` (``abstained`` as given)."""

    label: str = "refund"
    confidence: float = 0.9
    abstained: bool = False
    version: str = "fake-intent"
    labels: list[str] = field(default_factory=lambda: ["refund", "complaint", "contact_human_agent"])

    async def apredict(self, texts: Sequence[str]) -> list[Prediction]:
        return [Prediction(self.label, self.confidence, {self.label: self.confidence}, self.abstained) for _ in texts]


@dataclass
class FakeModels:
    lm: FakeLM = field(default_factory=FakeLM)
    intent: FakeIntent = field(default_factory=FakeIntent)
    embedder: Any = field(default_factory=WordHashEmbedder)

    def get(self, role: str) -> Any:
        return {"chat-lm": self.lm, "intent": self.intent, "embedder": self.embedder}[role]


def fake_models_install(monkeypatch: pytest.MonkeyPatch) -> FakeModels:
    """The reply pipeline reads its models from a new FakeModels (``models.lm.pieces = [...]``)."""
    from apps.chat.services import assist, reply

    models = FakeModels()
    monkeypatch.setattr(reply, "model_get", models.get)
    monkeypatch.setattr(assist, "model_get", models.get)
    return models
