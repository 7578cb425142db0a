"""Typed progress events of a training run (what ``progress`` callbacks receive).

Every trainer emits, in order: one ``TrainingStarted``; ``StepDone`` every few optimizer
steps; ``CheckpointSaved`` when a checkpoint is written; ``EpochDone`` after each epoch's
evaluation; and one ``TrainingDone`` once the artifact is written. ``to_dict`` gives the
JSON-ready form (``{"event": kind, ...fields}``) for logs and command lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

__all__ = ["CheckpointSaved", "EpochDone", "Progress", "StepDone", "TrainingDone", "TrainingEvent",
           "TrainingStarted", "event_from_dict"]


@dataclass(frozen=True)
class _Event:
    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """``{"event": kind, **fields}``, JSON-ready."""
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class TrainingStarted(_Event):
    """The model is loaded and the data split; nothing trained yet in this process.

    Attributes:
        total_steps: optimizer steps of the whole run.
        steps_per_epoch: optimizer steps per epoch.
        resumed_from_step: step the run resumed at (0: fresh start).
        split: rows per split (``train``, ``dev``/``eval``, ``test``).
        device: ``cpu``, ``cuda`` or ``mps``.
        method: ``full``, ``lora``, ... (``fewshot`` for the frozen-embedding head).
        labels: class labels (classifiers), else empty.
        processes: data-parallel processes training together.
    """

    kind: ClassVar[str] = "start"
    total_steps: int
    steps_per_epoch: int = 0
    resumed_from_step: int = 0
    split: dict[str, int] = field(default_factory=dict)
    device: str = "cpu"
    method: str = ""
    labels: list[str] = field(default_factory=list)
    processes: int = 1


@dataclass(frozen=True)
class StepDone(_Event):
    """An optimizer step (emitted every ``progress_every`` steps and at each epoch's end)."""

    kind: ClassVar[str] = "step"
    epoch: int
    step: int
    total_steps: int
    loss: float | None = None
    lr: float | None = None


@dataclass(frozen=True)
class CheckpointSaved(_Event):
    """A checkpoint was written; ``reason``: ``steps``, ``epoch`` or ``cancel``."""

    kind: ClassVar[str] = "checkpoint"
    step: int
    epoch: int
    reason: str


@dataclass(frozen=True)
class EpochDone(_Event):
    """An epoch ended and was evaluated.

    Attributes:
        epoch: 1-based epoch number.
        step: optimizer steps so far.
        train_loss: mean training loss of the epoch (None when the method has none).
        dev: dev classification report (classifiers), else None.
        eval_loss: held-out loss per token (language models), else None.
        train_seconds: seconds spent training in this epoch.
        train_samples: rows trained on in this epoch.
        best_epoch: the best epoch so far.
        early_stop: True when this epoch ends the run early.
    """

    kind: ClassVar[str] = "epoch"
    epoch: int
    step: int
    train_loss: float | None
    dev: dict[str, Any] | None = None
    eval_loss: float | None = None
    train_seconds: float = 0.0
    train_samples: int = 0
    best_epoch: int | None = None
    early_stop: bool = False


@dataclass(frozen=True)
class TrainingDone(_Event):
    """The artifact is written; ``metrics`` are its headline held-out figures."""

    kind: ClassVar[str] = "done"
    artifact_dir: str
    version: str
    metrics: dict[str, Any]


TrainingEvent = TrainingStarted | StepDone | CheckpointSaved | EpochDone | TrainingDone
Progress = Callable[[TrainingEvent], None]
_BY_KIND: dict[str, type[_Event]] = {c.kind: c for c in (TrainingStarted, StepDone, CheckpointSaved, EpochDone,
                                                         TrainingDone)}


def event_from_dict(data: dict[str, Any]) -> TrainingEvent:
    """The typed event of a ``to_dict()`` form (``{"event": kind, ...}``); unknown keys are dropped.

    Raises:
        ValueError: ``data["event"]`` names no event kind.
    """
    cls = _BY_KIND.get(str(data.get("event")))
    if cls is None:
        raise ValueError(f"not a training event: {data.get('event')!r}")
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})  # type: ignore[return-value]
