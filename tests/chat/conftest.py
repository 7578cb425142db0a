"""Knowledge-base tests: a small fake embedder, index tasks run in-process, state under tmp_path."""

from __future__ import annotations

from typing import Any

import pytest

from tests.recommend.conftest import WordHashEmbedder


@pytest.fixture(autouse=True)
def kb_env(settings: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    from apps.chat.services import background, index

    settings.TRELLIS_KB_DIR = tmp_path / "kb"
    monkeypatch.setattr(background, "RUN_INLINE", True)
    if not getattr(request.module, "REAL_EMBEDDER", False):  # a module sets it to use the bundled MiniLM
        monkeypatch.setattr(index, "_embedder", WordHashEmbedder)
    index.kb_index_cache.reset()
    yield
    index.kb_index_cache.reset()


@pytest.fixture
def agent_client(make_user) -> Any:
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(make_user("agent"))
    return client
