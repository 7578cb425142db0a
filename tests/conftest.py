"""Test-wide setup: offline models, one torch thread budget, helpers for users with roles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# fp32 everywhere in tests, so results do not depend on whether the CPU has AMX-BF16.
os.environ.setdefault("TRELLIS_CPU_BF16", "0")
# The chat LM's one-off GGUF -> safetensors conversion (~20 s) is cached here between runs.
os.environ.setdefault("TRELLIS_ARTIFACTS_DIR", str(REPO / "var" / "test-artifacts"))


@pytest.fixture
def make_user(db):
    """``make_user("analyst")`` -> a user holding that role (no role: ``make_user()``)."""
    from apps.accounts.services import roles_ensure, user_create

    counter = iter(range(10_000))

    def make(*roles: str, username: str | None = None, password: str = "pw-for-tests-123"):
        roles_ensure()
        name = username or f"{'-'.join(roles) or 'norole'}-{next(counter)}"
        return user_create(username=name, password=password, roles=list(roles))

    return make


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture(autouse=True)
def _throttle_cache_reset():
    """DRF throttling counts in the cache; each test starts from zero."""
    from django.core.cache import cache

    cache.clear()


def pytest_collection_modifyitems(config, items):
    """Browser tests run last: Playwright leaves an event loop on the main thread, which
    would break later tests that call ``asyncio.run``."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
