"""The registry: lazy loads, one load per process, hot swap, LRU unloading, bad artifacts."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

import ml.registry as registry_module
from ml.artifacts import ArtifactError, Manifest, detect_kind, read_manifest, wrap_model_dir, write_manifest
from ml.defaults import embedder_default, embedder_weights, spacy_weights
from ml.registry import ModelUnavailable, Registry


def zero_shot(directory: Path, version: str, labels: dict[str, str]) -> Path:
    write_manifest(directory, Manifest(role="sentiment", kind="zeroshot-classifier", version=version,
                                       labels=list(labels), extra={"label_descriptions": labels}))
    return directory


@pytest.fixture
def reg() -> Registry:
    return Registry(defaults={"embedder": embedder_default}, max_loaded=3)


@pytest.fixture
def counted_loads(monkeypatch):
    """Counts real loader calls per artifact kind."""
    counts: dict[str, int] = {}
    original = registry_module._resolve_loader

    def resolve(kind):
        loader = original(kind)

        def wrapped(path, manifest, reg):
            counts[kind] = counts.get(kind, 0) + 1
            return loader(path, manifest, reg)

        return wrapped

    monkeypatch.setattr(registry_module, "_resolve_loader", resolve)
    return counts


def test_unknown_role_is_unavailable(reg):
    with pytest.raises(ModelUnavailable, match="no model configured"):
        reg.get("nonexistent")


def test_concurrent_first_use_loads_once(reg, counted_loads):
    results = []
    threads = [threading.Thread(target=lambda: results.append(reg.get("embedder"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counted_loads == {"sentence-transformer": 1}
    assert len({id(r) for r in results}) == 1


def test_hot_swap_and_bad_artifact_keeps_previous(reg, tmp_path):
    # given role "sentiment" serving version A
    a = zero_shot(tmp_path / "a", "A", {"up": "prices rise", "down": "prices fall"})
    reg.activate("sentiment", a)
    assert reg.get("sentiment").labels == ["up", "down"]
    # when version B is activated, the next get serves it (no restart)
    b = zero_shot(tmp_path / "b", "B", {"good": "good news", "bad": "bad news", "meh": "nothing new"})
    reg.activate("sentiment", b)
    assert reg.get("sentiment").labels == ["good", "bad", "meh"]
    # when a corrupt artifact is activated, it raises and B keeps serving
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError):
        reg.activate("sentiment", broken)
    assert reg.active("sentiment").version == "B"
    assert "unreadable manifest" in reg.last_error("sentiment")
    # ensure_active with the same broken path does not raise and keeps B
    reg.ensure_active("sentiment", broken)
    assert reg.get("sentiment").labels == ["good", "bad", "meh"]
    # a wrong-role artifact is refused
    with pytest.raises(ArtifactError, match="role"):
        reg.activate("intent", a)


def test_least_recently_used_model_is_unloaded(reg, tmp_path):
    reg.get("embedder")
    for i in range(3):
        reg.load_artifact(zero_shot(tmp_path / f"z{i}", f"Z{i}", {"x": f"topic {i}", "y": "other"}))
    loaded = reg.loaded()
    assert len(loaded) == 3
    # the oldest zero-shot went first; the embedder stays because each zero-shot load used it
    assert ("sentiment", str(tmp_path / "z0")) not in loaded
    assert ("embedder", str(embedder_default())) in loaded


def test_any_local_model_folder_can_be_wrapped(reg, tmp_path):
    assert detect_kind(embedder_weights()) == "sentence-transformer"
    assert detect_kind(spacy_weights()) == "spacy"
    manifest = wrap_model_dir(embedder_weights(), tmp_path / "mine", role="embedder")
    assert read_manifest(tmp_path / "mine").extra["weights_dir"] == str(embedder_weights().resolve())
    reg.activate("embedder", tmp_path / "mine")
    assert reg.active("embedder").version == manifest.version
    assert reg.get("embedder").embed(["hello"]).shape == (1, 384)
    with pytest.raises(ArtifactError, match="cannot tell"):
        wrap_model_dir(tmp_path, tmp_path / "nothing", role="embedder")


def test_manifest_round_trip_and_validation(tmp_path):
    m = Manifest(role="intent", kind="hf-classifier", version="v1", labels=["a", "b"], metrics={"macro_f1": 0.5})
    write_manifest(tmp_path, m)
    assert read_manifest(tmp_path) == m
    (tmp_path / "manifest.json").write_text(json.dumps({"role": "intent", "kind": "nope", "version": "x"}))
    with pytest.raises(ArtifactError, match="unknown artifact kind"):
        read_manifest(tmp_path)
