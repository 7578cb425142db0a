"""What apps get back from the registry, as typed protocols.

Apps type against these and never see which implementation serves a role: an
``Embedder``, any of the classifiers in ``ml.classify`` / ``ml.sequence_classifier``, a
``ChatLM``, an ``EntityExtractor``, or a test double with the same surface. Sync methods
run on the caller's thread (Celery tasks, scripts); the ``a``-prefixed ones run on the
process's compute lane (``ml.compute_lane``) and are what async code (ASGI views,
consumers) awaits.

``model_for(registry, role)`` narrows ``Registry.get`` to the role's protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from ml.classify import Prediction
    from ml.entities import Entity
    from ml.lm_gate import QueueCallback
    from ml.lm_stream import GenerationStats
    from ml.registry import Registry

__all__ = ["ROLE_PROTOCOLS", "ChatModel", "ClassifierModel", "EmbedderModel", "EntityModel", "model_for"]


@runtime_checkable
class EmbedderModel(Protocol):
    """Role ``embedder``: texts -> float32, L2-normalised vectors of ``dim`` floats."""

    dim: int
    version: str

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray: ...

    async def aembed(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class ClassifierModel(Protocol):
    """Roles ``intent`` and ``sentiment``: texts -> one ``Prediction`` each."""

    labels: list[str]
    version: str

    def predict(self, texts: Sequence[str], *, batch_size: int = 64) -> list[Prediction]: ...

    async def apredict(self, texts: Sequence[str]) -> list[Prediction]: ...


@runtime_checkable
class ChatModel(Protocol):
    """Role ``chat-lm``: chat turns -> a streamed reply (see ``ml.generate.ChatLM.stream``)."""

    version: str

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 0.9,
        stop: Sequence[str] = (),
        on_queued: QueueCallback | None = None,
        stats: GenerationStats | None = None,
        seed: int | None = None,
    ) -> AsyncIterator[str]: ...

    async def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> str: ...

    def stats(self) -> dict[str, Any]: ...


@runtime_checkable
class EntityModel(Protocol):
    """Role ``ner``: texts -> entity mentions, linked to tickers where known.

    spaCy runs on numpy, not torch, so it needs no compute lane; async callers run
    ``extract`` in a worker thread.
    """

    @property
    def tickers(self) -> set[str]: ...

    def extract(self, texts: Sequence[str], *, batch_size: int = 64) -> list[list[Entity]]: ...

    def add_patterns(self, companies: Mapping[str, Sequence[str]]) -> int: ...


ROLE_PROTOCOLS: dict[str, type] = {
    "embedder": EmbedderModel,
    "intent": ClassifierModel,
    "sentiment": ClassifierModel,
    "chat-lm": ChatModel,
    "ner": EntityModel,
}


def model_for(registry: Registry, role: str) -> Any:
    """``registry.get(role)``, checked against the role's protocol.

    Returns:
        The model (typed ``Any`` for callers that pick the protocol themselves, e.g.
        ``embedder: EmbedderModel = model_for(registry, "embedder")``).

    Raises:
        TypeError: the loaded object lacks the role's methods or attributes.
    """
    model = registry.get(role)
    protocol = ROLE_PROTOCOLS.get(role)
    if protocol is not None and not isinstance(model, protocol):
        raise TypeError(f"the model serving {role!r} ({type(model).__name__}) lacks the {protocol.__name__} interface")
    return model
