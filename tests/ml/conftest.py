"""Shared fixtures for tests that load the real bundled models (loaded once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The chat LM's one-off GGUF -> safetensors conversion (~20 s) is cached here between runs.
os.environ.setdefault("TRELLIS_ARTIFACTS_DIR", str(REPO / "var" / "test-artifacts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def registry():
    from ml.registry import default_registry

    return default_registry()


@pytest.fixture(scope="session")
def embedder(registry):
    return registry.get("embedder")
