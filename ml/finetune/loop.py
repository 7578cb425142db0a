"""The one training loop of every fine-tuner (classifiers and the chat LM).

A ``Trainer`` owns what is common: the batch order of each epoch (a pure function of the
seed and the epoch, so a resume skips exactly the batches done), mixed precision (bf16
autocast where the GPU has it, fp16 autocast with a ``GradScaler`` where it does not, fp32
on CPU), gradient clipping, the learning-rate schedule, cooperative cancellation,
mid-epoch and end-of-epoch checkpoints with exact resume, early stopping with the best
weights kept, a head-only warm-up phase, and data parallelism (each global batch split
across the processes of ``ml.finetune.distributed``). What differs between tasks sits
behind ``LoopTask``: how a batch becomes a loss and how the model is evaluated.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ml import devices
from ml.finetune import checkpoint as ckpt
from ml.finetune.events import CheckpointSaved, EpochDone, Progress, StepDone, TrainingEvent

__all__ = ["Evaluation", "LoopSettings", "LoopTask", "RunState", "Trainer", "TrainingCancelled",
           "epoch_batches", "head_parameter_names", "seed_all"]

log = logging.getLogger(__name__)
HEAD_MODULES = ("classifier", "score", "pooler")  # module names of a classification head


class TrainingCancelled(Exception):
    """``should_stop()`` asked to stop; a checkpoint at ``step`` lets a re-run resume."""

    def __init__(self, step: int, checkpoint_dir: Path) -> None:
        super().__init__(f"training cancelled at step {step}; checkpoint in {checkpoint_dir}")
        self.step = step
        self.checkpoint_dir = checkpoint_dir


@dataclass
class RunState:
    """Where a run is; saved in every checkpoint (plain values only).

    Attributes:
        epoch: epochs finished. batch: batches of the current epoch finished.
        step: optimizer steps taken. history: one dict per finished epoch.
        best_score: best evaluation score so far (higher is better).
        best_epoch: the epoch that scored it. best_file: its weights in the checkpoint folder.
        bad_epochs: epochs since the best. stopped: early stopping ended the run.
        loss_sum, loss_n: running loss of the current epoch (sum over rows, rows).
        seconds: training seconds of the current epoch.
    """

    epoch: int = 0
    batch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float | None = None
    best_epoch: int | None = None
    best_file: str | None = None
    bad_epochs: int = 0
    stopped: bool = False
    loss_sum: float = 0.0
    loss_n: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def best_dev(self) -> dict[str, Any] | None:
        """The dev report of the best epoch (the weights the run ends with), if it had dev rows."""
        best = next((h for h in self.history if h["epoch"] == self.best_epoch), None)
        return best["dev"] if best and best["dev"] else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Evaluation:
    """What ``LoopTask.evaluate`` measured: ``score`` (higher is better) and its report."""

    score: float
    dev: dict[str, Any] | None = None
    eval_loss: float | None = None


class LoopTask(Protocol):
    """The task-specific half of a run."""

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """Row indices of each global batch of ``epoch`` (the same in every process)."""

    def batch_loss(self, model: torch.nn.Module, rows: list[int]) -> torch.Tensor:
        """Mean loss of ``rows`` (called under autocast)."""

    def evaluate(self, model: torch.nn.Module) -> Evaluation | None:
        """Held-out score of the current weights; None when there is nothing held out."""


@dataclass
class LoopSettings:
    """How the loop runs (from the run's arguments).

    Attributes:
        epochs: upper bound of epochs. total_steps: optimizer steps of the whole run.
        max_grad_norm: gradient clipping. patience: epochs without improvement before stopping.
        checkpoint_every_steps: mid-epoch checkpoint interval (0: epoch ends only).
        progress_every: emit a ``StepDone`` every this many steps.
        head_only_epochs: epochs during which only ``head_names`` train.
        head_names: names of the head's parameters.
    """

    epochs: int
    total_steps: int
    max_grad_norm: float = 1.0
    patience: int = 2
    checkpoint_every_steps: int = 0
    progress_every: int = 10
    head_only_epochs: int = 0
    head_names: frozenset[str] = frozenset()


def seed_all(seed: int) -> None:
    """Seeds python, numpy and torch (before a head's random init, so two fresh runs match)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                  bucketing: bool) -> list[list[int]]:
    """Batch order of one epoch, a pure function of (seed, epoch) so a resume can skip.

    With bucketing, pools of 50 batches are sorted by length before being cut, so a batch
    pads to similar lengths (less wasted compute), and the batches are then shuffled.
    """
    rng = random.Random(seed * 1000 + epoch)  # noqa: S311 - seeded for reproducible runs, not a secret
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if bucketing:
        pool = batch_size * 50
        order = [i for s in range(0, len(order), pool)
                 for i in sorted(order[s:s + pool], key=lambda j: lengths[j])]
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if bucketing:
        rng.shuffle(batches)
    return batches


def head_parameter_names(model: torch.nn.Module) -> frozenset[str]:
    """Trainable parameters of the classification head (plain or inside a peft wrapper)."""
    return frozenset(n for n, p in model.named_parameters()
                     if p.requires_grad and any(part in HEAD_MODULES for part in n.split(".")))


class _Precision:
    """Autocast and loss scaling for the device: bf16 needs no scaler, fp16 does."""

    def __init__(self, info: devices.DeviceInfo) -> None:
        self.dtype: torch.dtype | None = None
        if info.device == "cuda" and info.autocast_dtype in (torch.bfloat16, torch.float16):
            self.dtype = info.autocast_dtype
        # fp16 gradients underflow without scaling; the scaler skips steps that overflow.
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.dtype)


class Trainer:
    """Runs (or resumes) one training run to its end; see the module docstring.

    Args:
        model: the model whose weights are saved (unwrapped).
        forward_model: what computes the loss (``model`` or its DistributedDataParallel wrapper).
        optimizer: its optimizer. scheduler: its learning-rate scheduler (stepped each step).
        task: batches, loss and evaluation.
        settings: loop settings.
        checkpoint_dir: where checkpoints go. fingerprint: the run's arguments (a resume
            must present the same). owner: who may resume (job key, data hash).
        emit: progress callback (rank 0 only). should_stop: polled after each step.
        world: the data-parallel group (``ml.finetune.distributed.World``); None: one process.
        after_step: called with the 0-based step after each optimizer step (AdaLoRA).
        extra_loss: returns a regulariser to add to the loss, or None.
    """

    def __init__(self, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                 task: LoopTask, settings: LoopSettings, checkpoint_dir: Path, fingerprint: dict[str, Any],
                 owner: dict[str, str], emit: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None, forward_model: torch.nn.Module | None = None,
                 world: Any = None, after_step: Callable[[int], None] | None = None,
                 extra_loss: Callable[[], torch.Tensor | None] | None = None) -> None:
        self.model = model
        self.forward_model = forward_model or model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.task = task
        self.settings = settings
        self.checkpoint_dir = checkpoint_dir
        self.fingerprint = fingerprint
        self.owner = owner
        self.world = world
        self.is_main = world is None or world.rank == 0
        self._emit = emit if self.is_main and emit is not None else (lambda event: None)
        self.should_stop = should_stop
        self.after_step = after_step
        self.extra_loss = extra_loss
        self.precision = _Precision(devices.current())
        self.trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.state = RunState()

    def emit(self, event: TrainingEvent) -> None:
        self._emit(event)

    # -- checkpoints -----------------------------------------------------------------------
    def resume(self) -> RunState:
        """Loads the run's last checkpoint if there is one of the same run; returns the state."""
        saved: dict[str, Any] | None = None
        if self.is_main:
            saved = ckpt.resume_training(self.checkpoint_dir, self.fingerprint, self.model, self.optimizer,
                                         self.scheduler, owner=self.owner, scaler=self.precision.scaler)
        if self.world is not None and self.world.size > 1:
            resumed = self.world.broadcast_flag(saved is not None)
            if resumed and not self.is_main:  # rank 0 checked ownership; the others just load
                saved = ckpt.load_run(self.checkpoint_dir, self.model, self.optimizer, self.scheduler,
                                      scaler=self.precision.scaler)
        if saved is not None:
            self.state = RunState.from_dict(saved)
            log.info("resuming from step %d (epoch %d, batch %d)", self.state.step, self.state.epoch + 1,
                     self.state.batch)
        return self.state

    def _save(self, reason: str) -> None:
        if self.is_main:
            ckpt.save_training(self.checkpoint_dir, self.fingerprint, self.model, self.optimizer, self.scheduler,
                               self.state.to_dict(), owner=self.owner, scaler=self.precision.scaler,
                               names=self.trainable)
            self.emit(CheckpointSaved(step=self.state.step, epoch=self.state.epoch + 1, reason=reason))
        if self.world is not None:
            self.world.barrier()  # nobody reads or moves on before the checkpoint is complete

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> RunState:
        """Trains to the end (or early stop); the best weights are loaded into ``model`` after.

        Raises:
            TrainingCancelled: ``should_stop()`` returned True (a checkpoint was saved first).
        """
        state, settings = self.state, self.settings
        while (state.epoch < settings.epochs and not state.stopped
               and (state.step < settings.total_steps or state.batch > 0)):  # batch > 0: evaluate it
            self._set_phase(state.epoch)
            self._train_epoch(state)
            self._evaluate(state)
            self._save("epoch")
        self._set_phase(settings.head_only_epochs)  # everything trainable again for the final state
        if state.best_file is not None:
            best = self.best_weights
            if best is None:
                best = ckpt.load_best(self.checkpoint_dir, state.best_file)
            ckpt.load_trainable_state(self.model, best)
        return state

    def _set_phase(self, epoch: int) -> None:
        """Freezes all but the head during the first ``head_only_epochs`` epochs."""
        head_only = epoch < self.settings.head_only_epochs and bool(self.settings.head_names)
        params = dict(self.model.named_parameters())
        for name in self.trainable:
            params[name].requires_grad_(not head_only or name in self.settings.head_names)

    def _stop_requested(self) -> bool:
        wanted = self.is_main and self.should_stop is not None and self.should_stop()
        if self.world is not None and self.world.size > 1:
            return self.world.broadcast_flag(wanted)
        return wanted

    def _train_epoch(self, state: RunState) -> None:
        settings, epoch = self.settings, state.epoch
        batches = self.task.epoch_batches(epoch)
        self.forward_model.train()
        started = time.perf_counter()
        trainable = set(self.trainable)
        params = [p for n, p in self.model.named_parameters() if n in trainable]
        for b in range(state.batch, len(batches)):
            if state.step >= settings.total_steps:
                break
            rows = batches[b] if self.world is None else self.world.shard(batches[b])
            with self.precision.autocast():
                loss = self.task.batch_loss(self.forward_model, rows)
                extra = self.extra_loss() if self.extra_loss is not None else None
            total = loss + extra if extra is not None else loss
            self._backward_and_step(total, params)
            if self.after_step is not None:
                self.after_step(state.step)
            self.optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.batch = b + 1
            value = float(loss.detach())
            if self.world is not None and self.world.size > 1:
                value = self.world.mean(value)
            state.loss_sum += value * len(batches[b])
            state.loss_n += len(batches[b])
            last = b + 1 == len(batches) or state.step >= settings.total_steps
            if state.step % settings.progress_every == 0 or last:
                self.emit(StepDone(epoch=epoch + 1, step=state.step, total_steps=settings.total_steps,
                                   loss=value, lr=self.scheduler.get_last_lr()[0]))
            stop = self._stop_requested()
            periodic = settings.checkpoint_every_steps and state.step % settings.checkpoint_every_steps == 0
            if stop or (periodic and not last):
                state.seconds += time.perf_counter() - started
                started = time.perf_counter()
                self._save("cancel" if stop else "steps")
                if stop:
                    raise TrainingCancelled(state.step, self.checkpoint_dir)
        state.seconds += time.perf_counter() - started

    def _backward_and_step(self, loss: torch.Tensor, params: list[torch.nn.Parameter]) -> None:
        live = [p for p in params if p.requires_grad]
        scaler = self.precision.scaler
        if scaler is None:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(live, self.settings.max_grad_norm)
            self.optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(live, self.settings.max_grad_norm)
            scaler.step(self.optimizer)  # skipped when the gradients overflowed
            scaler.update()
        self.scheduler.step()

    def _evaluate(self, state: RunState) -> None:
        epoch = state.epoch
        train_loss = state.loss_sum / state.loss_n if state.loss_n else None
        result = self.task.evaluate(self.model)
        if result is None:  # nothing held out: the training loss decides
            result = Evaluation(score=-(train_loss if train_loss is not None else 0.0))
        entry = {"epoch": epoch + 1, "train_loss": train_loss, "dev": result.dev, "eval_loss": result.eval_loss,
                 "train_seconds": state.seconds, "train_samples": state.loss_n, "step": state.step}
        state.history.append(entry)
        if state.best_score is None or result.score > state.best_score:
            self.best_weights = ckpt.trainable_state(self.model, names=self.trainable)
            best_file = ckpt.save_best(self.checkpoint_dir, epoch + 1, self.best_weights) if self.is_main else None
            state.best_score, state.best_epoch, state.bad_epochs = result.score, epoch + 1, 0
            state.best_file = best_file or f"best-e{epoch + 1}.pt"
        else:
            state.bad_epochs += 1
            state.stopped = state.bad_epochs >= self.settings.patience
        state.epoch, state.batch, state.loss_sum, state.loss_n, state.seconds = epoch + 1, 0, 0.0, 0, 0.0
        self.emit(EpochDone(epoch=epoch + 1, step=state.step, train_loss=train_loss, dev=result.dev,
                            eval_loss=result.eval_loss, train_seconds=entry["train_seconds"],
                            train_samples=entry["train_samples"], best_epoch=state.best_epoch,
                            early_stop=state.stopped))
