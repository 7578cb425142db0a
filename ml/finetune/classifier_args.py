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
from ml.finetune.loop import TrainingCancelled
from ml.finetune.params import TrainParams, param_specs
from ml.finetune.peft_methods import DEFAULT_LR, METHODS

__all__ = ["DEFAULT_LR", "METHODS", "ClassifierTrainArgs", "TrainResult", "TrainingCancelled"]


@dataclass(kw_only=True)
class ClassifierTrainArgs(TrainParams):
    """Arguments of one fine-tuning run (same arguments again = resume).

    The knobs a user may set (epochs, learning rate, batch size, schedule, head recipe,
    processes, ...) are inherited from ``ml.finetune.params.TrainParams`` with their bounds
    and help; the rest are set by the code that starts the run.

    Attributes:
        data: CSV/JSONL path or ``(text, label)`` rows.
        role: registry role of the result (``intent``, ``sentiment``).
        output_dir: the artifact directory to write (replaced if it holds an artifact).
        base_model: encoder folder (default: the bundled MiniLM).
        method: one of ``ml.finetune.peft_methods.METHODS``: ``full`` (every weight) or a
            peft method (``lora``: r=8 adapters on query/value + head, ...).
        class_weighting: ``balanced`` (inverse-frequency loss weights) or ``none``.
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
    class_weighting: str = "balanced"
    labels: list[str] | None = None
    parent_version: str | None = None
    checkpoint_dir: str | Path | None = None
    test_data: str | Path | list[Row] | None = None
    test_fraction: float = 0.1
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
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        for spec in param_specs("classifier"):  # the knobs' choices, also when built in code
            if spec.choices is not None:
                spec.check(getattr(self, spec.name))
        if self.wise_alpha < 1.0 and self.method != "full":
            raise ValueError(f"wise_alpha averages a full fine-tune with its base; method {self.method!r} "
                             "leaves the base weights as they are (use wise_alpha 1)")
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
