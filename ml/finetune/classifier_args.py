"""Arguments and results of a classifier fine-tuning run (``ml.finetune.classification``).

One dataclass holds every argument with its default and meaning; the command line, the
training service and the tests build it, and its ``record()`` goes into the manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ml.artifacts import Manifest
from ml.defaults import embedder_weights
from ml.finetune.data import DEFAULT_MAX_BYTES, Row

DEFAULT_LR = {"full": 5e-5, "lora": 5e-4}  # LoRA trains 0.3% of the weights: 10x the step


class TrainingCancelled(Exception):
    """``should_stop()`` asked to stop; a checkpoint at ``step`` lets a re-run resume."""

    def __init__(self, step: int, checkpoint_dir: Path) -> None:
        super().__init__(f"training cancelled at step {step}; checkpoint in {checkpoint_dir}")
        self.step = step
        self.checkpoint_dir = checkpoint_dir


@dataclass
class ClassifierTrainArgs:
    """Arguments of one fine-tuning run (same arguments again = resume).

    Attributes:
        data: CSV/JSONL path or ``(text, label)`` rows.
        role: registry role of the result (``intent``, ``sentiment``).
        output_dir: the artifact directory to write (replaced if it holds an artifact).
        base_model: encoder folder (default: the bundled MiniLM).
        method: ``full`` (every weight) or ``lora`` (r=8 adapters on query/value + head).
        epochs: upper bound; early stopping may end sooner.
        learning_rate: peak AdamW rate; None = 5e-5 (full) / 5e-4 (LoRA).
        batch_size: rows per step. max_length: tokens per row (longer is truncated).
        seed: seeds python, numpy and torch, the split and the batch order.
        early_stopping_patience: epochs without a better dev macro-F1 before stopping.
        checkpoint_every_steps: mid-epoch checkpoint interval (0 = only at epoch ends).
        class_weighting: ``balanced`` (inverse-frequency loss weights) or ``none``.
        max_train_rows: cap of the training split (quick runs); dev/test stay whole.
        labels: the label set expected (of the model being retrained); head order if given.
        parent_version: version this run starts from, recorded in the manifest.
        checkpoint_dir: default ``<output_dir>.ckpt`` beside the output directory.
        test_data: a held-out test set of its own; then no test split is carved from data.
        job_key: key of the run (the training job's); written into the manifest and the
            checkpoint, whose resume needs the same key and data hash ("" outside a job).
    """

    data: str | Path | list[Row]
    role: str
    output_dir: str | Path
    base_model: str | Path = field(default_factory=lambda: str(embedder_weights()))
    method: str = "full"
    epochs: int = 3
    learning_rate: float | None = None
    batch_size: int = 16
    max_length: int = 64
    seed: int = 42
    early_stopping_patience: int = 2
    checkpoint_every_steps: int = 200
    class_weighting: str = "balanced"
    max_train_rows: int | None = None
    labels: list[str] | None = None
    parent_version: str | None = None
    checkpoint_dir: str | Path | None = None
    test_data: str | Path | list[Row] | None = None
    dev_fraction: float = 0.1
    test_fraction: float = 0.1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    length_bucketing: bool = True
    eval_batch_size: int = 64
    max_bytes: int | None = DEFAULT_MAX_BYTES
    keep_checkpoint: bool = False
    job_key: str = ""

    def __post_init__(self) -> None:
        if self.method not in DEFAULT_LR:
            raise ValueError(f"method must be 'full' or 'lora', not {self.method!r}")
        if self.class_weighting not in {"balanced", "none"}:
            raise ValueError(f"class_weighting must be 'balanced' or 'none', not {self.class_weighting!r}")
        self.output_dir = Path(self.output_dir)
        self.checkpoint_dir = self.checkpoint_path

    @property
    def lr(self) -> float:
        return self.learning_rate or DEFAULT_LR[self.method]

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint_dir or Path(self.output_dir).with_name(
            f"{Path(self.output_dir).name}.ckpt"))

    def record(self) -> dict[str, Any]:
        """JSON-ready arguments (rows replaced by their count) for the manifest."""
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        for key in ("data", "test_data"):
            if isinstance(getattr(self, key), list):
                out[key] = f"<{len(getattr(self, key))} rows>"
        out["learning_rate"] = self.lr
        return out


@dataclass
class TrainResult:
    """What a finished run produced.

    Attributes:
        manifest: the artifact's manifest (metrics = test report, ``dev`` = best dev report).
        artifact_dir: where the artifact was written.
        history: one dict per epoch run (train_loss, dev report, timings).
        resumed_from_step: optimizer step the run resumed at (0 = fresh start).
        test_rows: the held-out rows of the final evaluation.
        test_predictions: the model's labels for ``test_rows`` (to check reloads against).
    """

    manifest: Manifest
    artifact_dir: Path
    history: list[dict[str, Any]]
    resumed_from_step: int = 0
    test_rows: list[Row] = field(default_factory=list)
    test_predictions: list[str] = field(default_factory=list)
