"""A training job through a real Celery worker, which is killed (-9) mid-training.

The job must resume from its last checkpoint in a new worker and make exactly one model
version. With Redis (CI) the broker itself redelivers the unacknowledged task; with the
embedded filesystem broker the periodic ``training_job_requeue_stale`` does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.mlops.models import ModelVersion, TrainingJob
from apps.mlops.sample_data import intent_sample_rows, rows_to_csv
from apps.mlops.services.datasets import dataset_create
from apps.mlops.services.training import job_dirs, training_job_create

pytestmark = [pytest.mark.servers, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = django_settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker_env(settings, tmp_path, monkeypatch):
    var = tmp_path / "var"
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(var / "media")}}}
    settings.ARTIFACTS_DIR = var / "artifacts"
    monkeypatch.setattr("apps.mlops.services.training.training_job_enqueue", lambda job_id: None)
    env = {k: v for k, v in os.environ.items() if k not in {"CELERY_BROKER_URL"}}
    env.update({
        "DATABASE_URL": database_url(), "TRELLIS_VAR_DIR": str(var), "TRELLIS_ARTIFACTS_DIR": str(var / "artifacts"),
        "TRELLIS_TORCH_THREADS": "1", "TRELLIS_JOB_HEARTBEAT_STALE_S": "3", "CELERY_VISIBILITY_TIMEOUT": "3",
        "PYTHONUNBUFFERED": "1",
        # A queue of this test's own: nothing left on a shared Redis by other runs reaches it.
        "CELERY_GPU_QUEUE": f"mlops-test-{os.getpid()}",
    })
    return env


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork", "-c", "1",
           "-Q", env["CELERY_GPU_QUEUE"],
           "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO",
           "-n", f"test-{os.getpid()}-{time.monotonic_ns()}@%h"]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def manage(env: dict[str, str], code: str) -> None:
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], env=env, cwd=REPO, check=True, timeout=120)


def wait_for(predicate, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n--- worker log ---\n{tail}")


def test_killed_worker_resumes_from_checkpoint_and_makes_one_version(make_user, worker_env, tmp_path):
    # given a queued LoRA job that checkpoints every 5 steps: 400 rows (320 to train on) x 2 epochs
    # is 40 steps, so the kill after step 10 (the job's step is written at most 1 s late) lands
    # well before the end
    agent = make_user("agent")
    dataset = dataset_create(uploaded_file=SimpleUploadedFile("intents.csv", rows_to_csv(intent_sample_rows(400))),
                             name="intents", role="intent", user=agent)
    job = training_job_create(dataset=dataset, method="lora", user=agent,
                              params={"epochs": 2, "max_length": 32, "batch_size": 16, "learning_rate": 3e-3,
                                      "checkpoint_every_steps": 5})
    _, ckpt_dir = job_dirs(job)
    log = tmp_path / "worker.log"
    first = start_worker(worker_env, log)
    second = None
    try:
        manage(worker_env, "from apps.mlops.services.training import training_job_enqueue; "
                           f"training_job_enqueue({job.pk})")
        # when the worker is killed -9 after a checkpoint mid-training
        wait_for(lambda: (ckpt_dir / "state.pt").is_file() and TrainingJob.objects.get(pk=job.pk).step >= 10,
                 240, "a checkpoint after step 10", log)
        kill(first)
        killed_at = TrainingJob.objects.get(pk=job.pk)
        assert killed_at.status == TrainingJob.Status.RUNNING
        assert killed_at.step < killed_at.total_steps
        # and a new worker starts
        second = start_worker(worker_env, log)
        if not os.environ.get("REDIS_URL"):
            time.sleep(3.5)  # let the heartbeat go stale, as the beat task would see it
            manage(worker_env, "from apps.mlops.services.training import training_job_requeue_stale; "
                               "assert training_job_requeue_stale() == 1")
        # then the job resumes from its checkpoint and succeeds
        done = wait_for(lambda: (j := TrainingJob.objects.get(pk=job.pk)).is_finished and j,
                        300, "the job to finish", log)
    finally:
        kill(first)
        if second is not None:
            kill(second)
    assert done.status == TrainingJob.Status.SUCCEEDED, done.error
    assert done.attempts == 2
    assert done.resumed_from_step >= 5
    assert "resumed from checkpoint" in done.log_tail
    assert ModelVersion.objects.filter(training_job=done).count() == 1
    assert ModelVersion.objects.count() == 1
