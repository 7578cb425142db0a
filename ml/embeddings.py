"""Sentence embeddings: a SentenceTransformer behind a small ``embed(texts)`` interface.

Every caller (KB retrieval, item vectors, zero-/few-shot classifiers) gets float32,
L2-normalised vectors, so cosine similarity is a plain inner product (what ``ml.index``
searches with).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import batch_to_device

from ml import devices
from ml.artifacts import Manifest
from ml.compute_lane import ComputeLane
from ml.defaults import weights_dir
from ml.dynamic_batch import BatchStats, batcher_of

if TYPE_CHECKING:
    from ml.registry import Registry

# Texts per forward pass on CPU, whatever batch the caller asks for: MiniLM ran 1.3-1.7x
# faster at 16 than at 64 on one Xeon core (64 x 40 tokens x 1536 fp32 FFN activations are
# ~16 MB, past the 2 MB L2; 16 keeps them near it). GPUs take the caller's batch as is.
CPU_MICRO_BATCH = int(os.environ.get("TRELLIS_CPU_MICRO_BATCH", "16"))


def forward_batch_size(batch_size: int, info: devices.DeviceInfo) -> int:
    """Texts per forward pass: the caller's batch, capped at CPU_MICRO_BATCH on CPU."""
    if info.is_gpu or CPU_MICRO_BATCH < 1:
        return batch_size
    return min(batch_size, CPU_MICRO_BATCH)


class Embedder:
    """Turns texts into unit-length vectors.

    ``embed`` runs on the caller's thread (Celery tasks, scripts); async code awaits
    ``aembed``, which runs on the compute lane and shares forward passes with concurrent
    callers (``ml.dynamic_batch``).

    Args:
        weights: a SentenceTransformer folder (modules.json, weights, tokenizer).
        device_info: where to run; defaults to ``ml.devices.current()``.
        version: the artifact version, for logs and stats.
        lane: the compute lane of ``aembed``; the process-wide one if None.

    Attributes:
        model: the underlying ``SentenceTransformer``.
        tokenizer: its tokenizer (shared with classifiers built on the same encoder).
        dim: embedding size (384 for all-MiniLM-L6-v2).
        max_seq_length: longer texts are truncated to this many tokens.
    """

    def __init__(
        self,
        weights: Path | str,
        *,
        device_info: devices.DeviceInfo | None = None,
        version: str = "",
        lane: ComputeLane | None = None,
    ) -> None:
        self.version = version
        self.lane = lane
        self.device_info = device_info or devices.current()
        self.model = SentenceTransformer(str(weights), device=self.device_info.device)
        self.model.eval()
        if self.device_info.is_gpu:
            # Half precision on GPU halves memory traffic; pooling and norms stay stable in bf16/fp16.
            self.model.to(self.device_info.dtype)
        self.tokenizer = self.model.tokenizer
        dim = self.model.get_sentence_embedding_dimension()
        if dim is None:
            raise ValueError(f"cannot tell the embedding size of the model at {weights}")
        self.dim: int = int(dim)
        self.max_seq_length: int = int(self.model.max_seq_length)
        # A fast tokenizer shared by threads can fail with "Already borrowed" when its
        # padding/truncation state is touched concurrently; tokenising is ~0.1 ms a text.
        self._tokenizer_lock = threading.Lock()

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embeds texts in length-sorted batches, returned in input order.

        Sorting by length before batching keeps padding (wasted compute) low: a batch of
        64 short chat messages pads to ~20 tokens instead of the longest text in the call.

        Args:
            texts: the texts; an empty sequence gives an empty ``(0, dim)`` array.
            batch_size: most texts per forward pass (64 x 256 tokens keeps MiniLM
                activations under ~150 MB); on CPU passes hold at most CPU_MICRO_BATCH.

        Returns:
            float32 array of shape ``(len(texts), dim)``, each row of L2 norm 1.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        # Longest first (like SentenceTransformer.encode): an out-of-memory shows up on the
        # first batch, not after minutes of work.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        device = self.model.device
        step = forward_batch_size(batch_size, self.device_info)
        with devices.inference_context(self.device_info):
            for start in range(0, n, step):
                idx = order[start : start + step]
                with self._tokenizer_lock:
                    features = self.model.tokenize([texts[i] for i in idx])
                features = batch_to_device(features, device)
                vectors = self.model.forward(features)["sentence_embedding"]
                vectors = torch.nn.functional.normalize(vectors.float(), p=2, dim=1)
                # Scatter straight into the output: no per-row tensors and no final re-sort.
                out[idx] = vectors.cpu().numpy()
        return out

    async def aembed(self, texts: Sequence[str]) -> np.ndarray:
        """``embed`` on the compute lane, batched with concurrent callers.

        Args:
            texts: the texts.

        Returns:
            float32 array of shape ``(len(texts), dim)``, each row of L2 norm 1.

        Raises:
            TypeError: ``texts`` is one string or holds a non-string (nothing ran).
        """
        return await batcher_of(self, self.embed).submit(texts)

    def batch_stats(self) -> BatchStats:
        """Counters of ``aembed``'s batcher (batches run, requests, texts)."""
        return batcher_of(self, self.embed).stats

    def __repr__(self) -> str:
        return f"Embedder(dim={self.dim}, device={self.device_info.device!r})"


def load_embedder(path: Path, manifest: Manifest, registry: Registry) -> Embedder:
    """Registry loader for ``sentence-transformer`` artifacts.

    Args:
        path: the artifact directory.
        manifest: its manifest (``extra.weights_dir`` may point at bundled weights).
        registry: unused; part of the loader signature.

    Returns:
        The loaded Embedder.
    """
    del registry
    return Embedder(weights_dir(path, manifest), version=manifest.version)
