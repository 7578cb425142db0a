"""Live progress of a training job: throttled DB writes, heartbeats and WebSocket events."""

from __future__ import annotations

import logging
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from apps.mlops.models import TrainingJob
from ml.finetune.events import (
    CheckpointSaved,
    EpochDone,
    StepDone,
    TrainingDone,
    TrainingEvent,
    TrainingStarted,
    event_from_dict,
)

log = logging.getLogger(__name__)

SAVE_EVERY_S = 1.0  # at most one progress write per second: the page updates live without hammering the DB
STOP_POLL_S = 2.0  # how often a running job looks for a cancel request
LOG_TAIL_LINES = 60


def job_group(job_id: int) -> str:
    return f"mlops_job_{job_id}"


def job_broadcast(job: TrainingJob) -> None:
    """Sends the job's snapshot to everyone watching ``ws/mlops/jobs/<id>/``."""
    from apps.mlops.selectors import job_snapshot

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(job_group(job.pk), {"type": "mlops.job", "job": job_snapshot(job)})
    except Exception:  # a dashboard that cannot be told must never fail the training
        log.warning("could not broadcast progress of job %s", job.pk, exc_info=True)


def _compact_report(report: dict[str, Any]) -> dict[str, Any]:
    keep = ("accuracy", "macro_f1", "weighted_f1", "per_class", "confusion_matrix", "labels", "support")
    return {k: report[k] for k in keep if k in report}


class JobReporter:
    """Turns the fine-tuning progress callbacks into job rows and WebSocket events."""

    def __init__(self, job: TrainingJob) -> None:
        self.job = job
        self._last_save = 0.0
        self._last_stop_poll = 0.0
        self._dirty = False

    def log(self, line: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        lines = (self.job.log_tail.splitlines() + [f"{stamp} {line}"])[-LOG_TAIL_LINES:]
        self.job.log_tail = "\n".join(lines)
        self._dirty = True

    def on_event(self, event: TrainingEvent | dict[str, Any]) -> None:
        """Applies one training event (``ml.finetune.events``; a ``to_dict()`` form also works)."""
        if isinstance(event, dict):
            event = event_from_dict(event)
        job = self.job
        force = False
        if isinstance(event, TrainingStarted):
            job.total_steps = event.total_steps
            if event.resumed_from_step:
                job.resumed_from_step = event.resumed_from_step
                self.log(f"resumed from checkpoint at step {event.resumed_from_step}")
            where = event.device + (f" x{event.processes} processes" if event.processes > 1 else "")
            self.log(f"started on {where}; split {event.split}")
            force = True
        elif isinstance(event, StepDone):
            job.step = event.step
            job.epoch = event.epoch
            job.total_steps = event.total_steps or job.total_steps
            if job.total_steps:
                job.progress = min(0.99, job.step / job.total_steps)
            if event.loss is not None:
                self.log(f"epoch {job.epoch} step {job.step}/{job.total_steps} loss {event.loss:.4f}")
        elif isinstance(event, EpochDone):
            entry: dict[str, Any] = {"epoch": event.epoch, "train_loss": event.train_loss, "step": event.step}
            if event.dev is not None:
                entry["dev"] = _compact_report(event.dev)
            if event.eval_loss is not None:
                entry["eval_loss"] = event.eval_loss
            job.metrics_history = [h for h in job.metrics_history if h.get("epoch") != entry["epoch"]] + [entry]
            f1 = entry.get("dev", {}).get("macro_f1")
            loss = entry["train_loss"]
            self.log(f"epoch {entry['epoch']} done"
                     + (f": train loss {loss:.4f}" if loss is not None else "")
                     + (f", dev macro-F1 {f1:.3f}" if f1 is not None else "")
                     + (f", held-out loss {event.eval_loss:.4f}" if event.eval_loss is not None else ""))
            force = True
        elif isinstance(event, CheckpointSaved):
            self.log(f"checkpoint saved at step {event.step} ({event.reason})")
        elif isinstance(event, TrainingDone):
            self.log("training finished; evaluating and saving the model")
            force = True
        self._dirty = True
        self._maybe_save(force)

    def _maybe_save(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_save < SAVE_EVERY_S:
            return
        self.flush()

    def flush(self) -> None:
        if not self._dirty:
            return
        job = self.job
        job.heartbeat_at = timezone.now()
        TrainingJob.objects.filter(pk=job.pk).update(
            progress=job.progress, epoch=job.epoch, step=job.step, total_steps=job.total_steps,
            metrics_history=job.metrics_history, log_tail=job.log_tail, heartbeat_at=job.heartbeat_at,
            resumed_from_step=job.resumed_from_step, updated_at=job.heartbeat_at,
        )
        self._last_save = time.monotonic()
        self._dirty = False
        job_broadcast(job)

    def should_stop(self) -> bool:
        """True once a user asked to cancel (checked every STOP_POLL_S seconds)."""
        now = time.monotonic()
        if now - self._last_stop_poll < STOP_POLL_S:
            return False
        self._last_stop_poll = now
        status = TrainingJob.objects.filter(pk=self.job.pk).values_list("status", flat=True).first()
        return status == TrainingJob.Status.CANCELLING
