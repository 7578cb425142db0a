"""Embeddings, classification and entities for the inference API, off the event loop.

The views resolve the model in a worker thread (``model_get``, which may touch the DB and
load weights) and then await these functions on the event loop (only counting the tokens of
a short embeddings request runs on it: less work than a hop to a thread). Embeddings and
classification go through the models' ``aembed`` / ``apredict``: the process's compute lane
(``ml.compute_lane``, the one thread all serving torch work shares) with dynamic batching
(``ml.dynamic_batch``), so concurrent requests share forward passes. spaCy's entities
need no lane (numpy, not torch) and run in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from apps.serving.exceptions import InvalidInput


@dataclass
class ServingCounters:
    """What this process's inference API did since it started (for /api/ml/stats/)."""

    requests: int = 0
    texts: int = 0
    tokens: int = 0

    def add(self, *, texts: int = 0, tokens: int = 0) -> None:
        with _counters_lock:
            self.requests += 1
            self.texts += texts
            self.tokens += tokens


_counters_lock = threading.Lock()
COUNTERS: dict[str, ServingCounters] = {
    "embeddings": ServingCounters(),
    "classify": ServingCounters(),
    "entities": ServingCounters(),
}
# role -> the model object last used for it (weak: a hot swap drops the old one).
_in_use: dict[str, weakref.ReferenceType[Any]] = {}


def note_in_use(role: str, model: Any) -> None:
    try:
        _in_use[role] = weakref.ref(model)
    except TypeError:  # not weak-referenceable: no stats for it
        pass


def models_in_use() -> dict[str, Any]:
    return {role: model for role, ref in list(_in_use.items()) if (model := ref()) is not None}


# --- embeddings -------------------------------------------------------------------------

# Each embedder gets a private copy of its tokenizer for counting usage: a fast tokenizer
# shared by threads fails ("Already borrowed") when two touch its truncation state at once.
_counting_tokenizers: weakref.WeakKeyDictionary[Any, tuple[Any, threading.Lock]] = weakref.WeakKeyDictionary()
_counting_lock = threading.Lock()
# Up to this many characters a request's tokens are counted on the event loop: ~0.1 ms for
# a short text, less than the hop to a worker thread costs; beyond, in a worker thread.
INLINE_COUNT_CHARS = 2_000


def count_tokens(embedder: Any, texts: Sequence[str], *, wait: bool = True) -> int | None:
    """Tokens the embedder reads of ``texts`` (special tokens included, truncated as it does);
    None, without waiting, when ``wait`` is off and the counting tokenizer is busy or not yet
    copied (its first use copies it: not on the event loop)."""
    with _counting_lock:
        entry = _counting_tokenizers.get(embedder)
        if entry is None and not wait:
            return None
        if entry is None:
            entry = (copy.deepcopy(embedder.tokenizer), threading.Lock())
            _counting_tokenizers[embedder] = entry
    tokenizer, lock = entry
    if not lock.acquire(blocking=wait):
        return None
    try:
        encoded = tokenizer(list(texts), add_special_tokens=True, truncation=True,
                            max_length=int(embedder.max_seq_length))
    finally:
        lock.release()
    return sum(len(ids) for ids in encoded["input_ids"])


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray  # (n, dim) float32, unit length
    prompt_tokens: int


async def embeddings_create(*, embedder: Any, texts: list[str], dimensions: int | None = None) -> Embeddings:
    """Unit-length float32 vectors of ``texts`` and the tokens read.

    Raises:
        InvalidInput: ``dimensions`` differs from the model's size (it cannot be shortened).
    """
    if dimensions is not None and dimensions != embedder.dim:
        raise InvalidInput(
            f"This model makes {embedder.dim}-dimensional embeddings; it cannot make {dimensions}.",
            param="dimensions",
        )
    note_in_use("embedder", embedder)
    counted = count_tokens(embedder, texts, wait=False) if sum(map(len, texts)) <= INLINE_COUNT_CHARS else None
    if counted is not None:
        vectors, prompt_tokens = await embedder.aembed(texts), counted
    else:  # long texts: counted in a worker thread, overlapping the forward pass
        vectors, prompt_tokens = await asyncio.gather(embedder.aembed(texts),
                                                      asyncio.to_thread(count_tokens, embedder, texts))
    COUNTERS["embeddings"].add(texts=len(texts), tokens=prompt_tokens)
    return Embeddings(vectors=vectors, prompt_tokens=prompt_tokens)


def embedding_payload(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    """OpenAI's ``embedding``: a list of floats, or base64 of the little-endian float32 bytes."""
    if encoding_format == "base64":
        return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector.astype(np.float32).tolist()


# --- classification and entities --------------------------------------------------------


async def classify(*, classifier: Any, role: str, texts: list[str]) -> list[dict[str, Any]]:
    """Label, its probability and every label's probability, per text, in input order."""
    note_in_use(role, classifier)
    predictions = await classifier.apredict(texts)
    COUNTERS["classify"].add(texts=len(texts))
    return [
        {"label": p.label, "confidence": float(p.confidence),
         "probabilities": {label: float(prob) for label, prob in p.probs.items()}}
        for p in predictions
    ]


async def entities_extract(*, extractor: Any, texts: list[str]) -> list[dict[str, Any]]:
    """Entity spans (text, label, character offsets, linked ticker) per text, in input order."""
    note_in_use("ner", extractor)
    found = await asyncio.to_thread(extractor.extract, texts)  # spaCy: numpy, no torch, no lane
    COUNTERS["entities"].add(texts=len(texts))
    return [
        {"spans": [{"text": e.text, "label": e.label, "start": e.start, "end": e.end, "ticker": e.ticker}
                   for e in entities]}
        for entities in found
    ]


def serving_stats() -> dict[str, Any]:
    """Counters of this process's inference API and the stats of the models it used."""
    with _counters_lock:
        counters = {name: {"requests": c.requests, "texts": c.texts, "tokens": c.tokens}
                    for name, c in COUNTERS.items()}
    models: dict[str, dict[str, Any]] = {}
    for role, model in models_in_use().items():
        entry: dict[str, Any] = {}
        stats = getattr(model, "stats", None)
        if callable(stats):
            entry.update(stats())
        batch_stats = getattr(model, "batch_stats", None)
        if callable(batch_stats):  # dynamic batching: forward passes (batches) vs requests
            entry["batching"] = dataclasses.asdict(batch_stats())
        if entry:
            models[role] = entry
    return {"endpoints": counters, "models": models}
