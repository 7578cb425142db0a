"""``manage.py train --dataset-file PATH --role R``: upload a dataset and fine-tune on it.

With ``--wait`` (the default) the job runs in this process while the main thread polls
the job row and draws a progress bar; the Celery message queued alongside it finds the job
finished (or running here) and does nothing. If a worker claims the job first, this
command follows that worker's progress instead. Ctrl-C cancels the job (it checkpoints).
``--async`` only queues the job for a worker.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import connections
from tqdm import tqdm

from apps.mlops.management.commands._lookup import metric, user_get
from apps.mlops.models import TRAINABLE_ROLES, ModelRole, ModelVersion, TrainingJob
from apps.mlops.services.datasets import DatasetRejected, dataset_create
from apps.mlops.services.training import (
    JobRunningElsewhere,
    training_job_cancel,
    training_job_create,
    training_job_run,
    training_params_clean,
)
from ml.finetune.params import add_cli_flags, param_specs

CANCEL_GRACE_S = 120.0  # how long Ctrl-C waits for the job to checkpoint and stop


class _RawWriter:
    """Lets tqdm draw on the command's stderr without Django's newline and colour handling."""

    def __init__(self, wrapper: OutputWrapper) -> None:
        self._wrapper = wrapper

    def write(self, text: str) -> None:
        self._wrapper.write(text, style_func=lambda m: m, ending="")

    def flush(self) -> None:
        self._wrapper.flush()

    def isatty(self) -> bool:
        return self._wrapper.isatty()


class Command(BaseCommand):
    help = "Validates and stores a dataset, then fine-tunes a model on it (in this process by default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dataset-file", required=True, help="CSV/JSONL text,label file (JSONL transcripts for chat-lm)."
        )
        parser.add_argument("--role", required=True, choices=sorted(str(r) for r in TRAINABLE_ROLES))
        parser.add_argument("--method", choices=TrainingJob.Method.values, default=TrainingJob.Method.LORA)
        add_cli_flags(parser, "classifier")  # every knob of ml.finetune.params; unset: the task's default
        parser.add_argument(
            "--base", help="Encoder to fine-tune: a registered embedder version or an encoder folder (classifiers)."
        )
        parser.add_argument(
            "--allow-new-labels", action="store_true", help="Train although the labels differ from the active model's."
        )
        parser.add_argument("--name", help="Dataset name (default: the file name).")
        parser.add_argument("--user", help="User recorded as the dataset's and job's creator.")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--wait",
            dest="wait",
            action="store_true",
            default=True,
            help="Run the job here and show its progress (default).",
        )
        mode.add_argument("--async", dest="wait", action="store_false", help="Only queue the job for a worker.")
        parser.add_argument("--poll-interval", type=float, default=0.5, help="Seconds between progress reads.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = user_get(options["user"])
        params = {spec.name: options[spec.name] for spec in param_specs("classifier") if options[spec.name] is not None}
        if options["allow_new_labels"]:
            params["allow_new_labels"] = True
        if options["base"]:
            params["base_model"] = options["base"]
        try:  # bad parameters, an unknown --base or missing devices fail before anything is stored
            training_params_clean(params, "chat-lm" if options["role"] == ModelRole.CHAT_LM else "classifier")
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        dataset = self._dataset(Path(options["dataset_file"]).expanduser(), options, user)
        try:
            job = training_job_create(dataset=dataset, method=options["method"], params=params, user=user)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(f"job #{job.pk}: {job.method} on {job.role}, params {job.params or 'defaults'}")
        if not options["wait"]:
            self.stdout.write(
                self.style.SUCCESS(
                    f"queued; a Celery worker runs it. Follow it at /models/jobs/{job.pk}/ or `manage.py models`."
                )
            )
            return
        job = self._run_and_follow(job, user, options)
        self._report(job)

    def _dataset(self, path: Path, options: dict[str, Any], user: Any) -> Any:
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        with path.open("rb") as handle:
            try:
                dataset = dataset_create(
                    uploaded_file=File(handle, name=path.name),
                    name=options["name"] or path.name,
                    role=options["role"],
                    user=user,
                )
            except DatasetRejected as exc:
                for line in exc.report.get("errors", []):
                    self.stderr.write(f"  error: {line}")
                for line in exc.report.get("warnings", []):
                    self.stderr.write(f"  warning: {line}", style_func=self.style.WARNING)
                raise CommandError(f"{path.name} failed validation; nothing was stored.") from exc
        labels = ", ".join(f"{k} {v}" for k, v in (dataset.label_counts or {}).items())
        self.stdout.write(
            f"dataset #{dataset.pk} {dataset.name}: {dataset.rows} rows" + (f" ({labels})" if labels else "")
        )
        for line in (dataset.validation or {}).get("warnings", []):
            self.stdout.write(self.style.WARNING(f"  warning: {line}"))
        return dataset

    def _run_and_follow(self, job: TrainingJob, user: Any, options: dict[str, Any]) -> TrainingJob:
        from ml.devices import configure_threads

        configure_threads()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                training_job_run(job.pk)
            except JobRunningElsewhere:
                pass  # a worker took it first: the bar follows that worker's progress
            except BaseException as exc:  # reported by the main thread
                failure.append(exc)
            finally:
                connections.close_all()  # this thread's own connections

        worker = threading.Thread(target=run, name=f"train-job-{job.pk}", daemon=True)
        worker.start()
        bar = tqdm(
            total=None,
            unit="step",
            desc=f"job {job.pk}",
            file=_RawWriter(self.stderr),
            disable=options["verbosity"] == 0,
            dynamic_ncols=True,
        )
        try:
            while True:
                job.refresh_from_db()
                self._draw(bar, job)
                if job.is_finished:
                    break
                if failure:
                    raise CommandError(f"job #{job.pk} could not run: {failure[0]!r}")
                time.sleep(options["poll_interval"])
        except KeyboardInterrupt:
            bar.close()
            self.stderr.write(f"interrupted: cancelling job #{job.pk} (it checkpoints first)...")
            if not TrainingJob.objects.get(pk=job.pk).is_finished:
                training_job_cancel(job=job, user=user)
            worker.join(timeout=CANCEL_GRACE_S)
            raise CommandError(f"job #{job.pk} cancelled") from None
        finally:
            bar.close()
        worker.join(timeout=CANCEL_GRACE_S)
        return job

    @staticmethod
    def _draw(bar: tqdm, job: TrainingJob) -> None:
        if job.total_steps and bar.total != job.total_steps:
            bar.total = job.total_steps
        bar.n = job.step
        last = job.metrics_history[-1] if job.metrics_history else {}
        f1 = (last.get("dev") or {}).get("macro_f1")
        postfix = f"epoch {job.epoch} {job.status}"
        if isinstance(last.get("train_loss"), int | float):
            postfix += f" loss {last['train_loss']:.4f}"
        if isinstance(f1, int | float):
            postfix += f" dev-F1 {f1:.3f}"
        bar.set_postfix_str(postfix, refresh=False)
        bar.refresh()

    def _report(self, job: TrainingJob) -> None:
        if job.status == TrainingJob.Status.CANCELLED:
            raise CommandError(f"job #{job.pk} was cancelled")
        if job.status != TrainingJob.Status.SUCCEEDED:
            raise CommandError(f"job #{job.pk} failed: {job.error or job.status}")
        version = ModelVersion.objects.filter(training_job=job).first()
        if version is None:
            raise CommandError(f"job #{job.pk} succeeded but registered no model version")
        metrics = version.metrics or {}
        self.stdout.write(
            self.style.SUCCESS(
                f"job #{job.pk} succeeded: candidate {version.version} "
                f"(macro-F1 {metric(metrics.get('macro_f1'))}, accuracy {metric(metrics.get('accuracy'))}"
                + (f", held-out loss {metric(metrics.get('eval_loss'))}" if "eval_loss" in metrics else "")
                + ")"
            )
        )
        self.stdout.write(f"promote it with: manage.py promote --version {version.version}")
