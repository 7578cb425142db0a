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


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs):
    """`make test` runs on pytest-xdist workers: before they start, give each its own Redis
    database and share of the cores, and convert the chat LM once (see tests/parallel.py)."""
    from tests.parallel import chat_lm_convert_once, worker_env

    for index, spec in enumerate(specs):
        spec.env.update(worker_env(index, len(specs)))
    chat_lm_convert_once(REPO)


class _XdistGroups:
    """Under `make test`'s ``--dist loadgroup``: tests of a module that share a module-scoped
    fixture run on one worker (tests/parallel.py ``xdist_groups``). ``tryfirst``: xdist reads
    the groups in its own ``pytest_collection_modifyitems``."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config, items):
        if not getattr(config.option, "loadgroup", False):
            return
        from tests.parallel import xdist_groups

        for path, group in xdist_groups(items).items():
            for item in group:
                item.add_marker(pytest.mark.xdist_group(path))


def pytest_configure(config):
    config.pluginmanager.register(_XdistGroups(), "trellis-xdist-groups")


def pytest_collection_modifyitems(config, items):
    """Browser tests run last: Playwright leaves an event loop on the main thread, which
    would break later tests that call ``asyncio.run``. (Under xdist each worker runs its share
    in this order, so browser tests last there too.)"""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
