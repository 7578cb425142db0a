"""Recommend tests: a small fake embedder, tasks run in-process, state under tmp_path."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

DIM = 32


class WordHashEmbedder:
    """Bag of hashed words, L2-normalised: texts sharing words are near (no model load)."""

    dim = DIM

    def embed(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(".", " ").split():
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % DIM] += 1.0  # noqa: S324 - a bucket, not security
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out


@pytest.fixture(autouse=True)
def recommend_env(settings: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from apps.recommend.services import abtests, background, engine, index, widget

    settings.TRELLIS_RECOMMEND_DIR = tmp_path / "recommend"
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "media")}}}
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr(background, "RUN_INLINE", True)
    monkeypatch.setattr(index, "_embedder", WordHashEmbedder)
    abtests.serving_cache.reset()
    index.item_index_cache.reset()
    engine.engine_cache.reset()
    widget.widget_origins_reset()
    yield
    abtests.serving_cache.reset()
    index.item_index_cache.reset()
    engine.engine_cache.reset()
    widget.widget_origins_reset()


@pytest.fixture
def merch_client(make_user) -> Any:
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(make_user("merchandiser"))
    return client
