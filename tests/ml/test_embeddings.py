"""The embedder: bundled MiniLM loaded offline, unit vectors, order kept, batching exact."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ml.embeddings import Embedder, load_embedder


def test_loads_offline_from_bundled_weights(registry, embedder):
    # given the hub is switched off for the whole test session (conftest)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    # when the registry serves the default embedder
    active = registry.active("embedder")
    # then it is an Embedder over the packaged weights, 384-d
    assert isinstance(embedder, Embedder)
    assert active.manifest.kind == "sentence-transformer"
    assert os.path.isdir(active.manifest.extra["weights_dir"])
    assert embedder.dim == 384


def test_vectors_are_float32_unit_length(embedder):
    vectors = embedder.embed(["Where is my parcel?", "Reset my password", "Stocks rallied on Friday."])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_sentences(embedder):
    a, paraphrase, unrelated = embedder.embed(
        [
            "How do I reset my password?",
            "I forgot my password and need to change it.",
            "The central bank raised interest rates by a quarter point.",
        ]
    )
    assert float(a @ paraphrase) > float(a @ unrelated) + 0.3


def test_order_is_kept_when_lengths_differ(embedder):
    # given texts of very different lengths, so the length sort reorders them
    texts = [
        "ok",
        "A considerably longer sentence about shipping delays caused by heavy snow in the north.",
        "refund",
        "My card was declined twice when I tried to pay for the annual subscription yesterday evening.",
        "hello there",
    ]
    # when they are embedded in small batches and one by one
    batched = embedder.embed(texts, batch_size=2)
    alone = np.vstack([embedder.embed([t]) for t in texts])
    # then row i belongs to text i, and padding does not change the vectors
    np.testing.assert_allclose(batched, alone, atol=1e-4)
    assert np.argmax(batched @ alone.T, axis=1).tolist() == list(range(len(texts)))


def test_empty_input_gives_empty_matrix(embedder):
    out = embedder.embed([])
    assert out.shape == (0, 384)
    assert out.dtype == np.float32


def test_rejects_a_bare_string_and_bad_batch_size(embedder):
    with pytest.raises(TypeError):
        embedder.embed("one string")
    with pytest.raises(ValueError, match="batch_size"):
        embedder.embed(["x"], batch_size=0)


def test_loader_reads_weights_dir_from_manifest(registry, embedder):
    active = registry.active("embedder")
    again = load_embedder(active.path, active.manifest, registry)
    np.testing.assert_allclose(again.embed(["same text"]), embedder.embed(["same text"]), atol=1e-6)


def test_concurrent_calls_from_threads_agree_with_serial(embedder):
    # given one shared embedder, as the registry hands it to every request thread
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"order {i} has not arrived after {i} days" for i in range(24)]
    expected = embedder.embed(texts)
    # when four threads embed at once
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: embedder.embed(texts, batch_size=8), range(4)))
    # then every thread gets the serial answer
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-4)
