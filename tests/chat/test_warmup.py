"""The start-up warm-up loads every chat role, the redaction engine and the KB index, and a
role that cannot load does not stop the others."""

from __future__ import annotations

from typing import Any

import pytest

from apps.chat.services import redaction
from apps.chat.services.warmup import chat_models_warm

pytestmark = pytest.mark.django_db


def test_every_part_is_loaded_and_a_missing_model_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.mlops.services import serving

    asked: list[str] = []

    def model_get(role: str) -> Any:
        asked.append(role)
        if role == "intent":
            raise RuntimeError("no model serves intent")
        return object()

    monkeypatch.setattr(serving, "model_get", model_get)

    seconds = chat_models_warm()

    assert asked == ["embedder", "intent", "chat-lm"]
    assert set(seconds) == {"embedder", "chat-lm", "redaction", "kb index"}
    assert redaction.redaction_load_seconds() is not None  # the engine really loaded
