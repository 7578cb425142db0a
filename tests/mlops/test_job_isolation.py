"""A job never registers or resumes what another job left in the artifacts store.

Reproduces the finding: the same artifacts folder used by a first database (job 1 trained a
150-intent model) and then by a fresh one, whose job 1 trains on other data. Database ids
repeat; job keys do not.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.mlops.models import ModelVersion, TrainingJob
from apps.mlops.sample_data import intent_sample_rows, rows_to_csv
from apps.mlops.services.datasets import dataset_create
from apps.mlops.services.training import job_dirs, training_job_create, training_job_run
from ml.artifacts import Manifest, read_manifest, write_manifest
from ml.finetune import checkpoint as ckpt
from tests.mlops.factories import TrainingJobFactory, media_in

pytestmark = pytest.mark.django_db

FOREIGN_LABELS = [f"intent_{i:03d}" for i in range(150)]
FOREIGN_METRICS = {"accuracy": 0.93, "macro_f1": 0.92, "weighted_f1": 0.93}


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    media_in(settings, tmp_path)


@pytest.fixture
def job(make_user, django_capture_on_commit_callbacks):
    """A queued few-shot intent job on 4 labels (few-shot: it trains in seconds)."""
    agent = make_user("agent")
    dataset = dataset_create(uploaded_file=SimpleUploadedFile("d.csv", rows_to_csv(intent_sample_rows(80))),
                             name="four intents", role="intent", user=agent)
    with django_capture_on_commit_callbacks(execute=False):
        return training_job_create(dataset=dataset, method="fewshot", params={}, user=agent)


def plant_artifact(directory: Path, *, job_key: str, data_hash: str) -> None:
    """A finished artifact of another job: weights, a held-out file and a manifest."""
    directory.mkdir(parents=True)
    (directory / "head.safetensors").write_bytes(b"not the job's weights")
    write_manifest(directory, Manifest(
        role="intent", kind="fewshot-classifier", version="intent-foreign-0001", labels=FOREIGN_LABELS,
        data_hash=data_hash, metrics=FOREIGN_METRICS, job_key=job_key, base_model="elsewhere"))


def test_each_job_has_its_own_key_and_its_folders_are_named_by_it():
    first, second = TrainingJobFactory(), TrainingJobFactory()
    assert isinstance(first.key, uuid.UUID) and first.key != second.key
    out_dir, ckpt_dir = job_dirs(first)
    assert out_dir.name == ckpt_dir.name == f"job-{first.key}"
    assert f"job-{first.pk}" not in {out_dir.name, ckpt_dir.name}


@pytest.mark.parametrize(
    ("where", "whose"),
    [("old-naming", "other-job"), ("new-naming", "other-job"), ("new-naming", "same-key-other-data")],
    ids=["old-folder-name", "own-folder-other-key", "own-folder-other-data"],
)
def test_a_finished_artifact_left_by_another_job_is_not_registered(job, where, whose):
    # given a finished artifact of another job at the place the old (by id) or the new (by key)
    # naming gives this job
    root = Path(django_settings.ARTIFACTS_DIR)
    planted = root / "intent" / f"job-{job.pk}" if where == "old-naming" else job_dirs(job)[0]
    key = str(job.key) if whose == "same-key-other-data" else str(uuid.uuid4())
    plant_artifact(planted, job_key=key, data_hash="f" * 64)

    # when the job runs
    job = training_job_run(job.pk)

    # then it trained its own model on its own labels and registered that one
    assert job.status == TrainingJob.Status.SUCCEEDED, job.error
    version = ModelVersion.objects.get(training_job=job)
    assert sorted(version.labels) == sorted(job.dataset.label_counts) == [
        "account", "order_status", "payment", "refund"]
    assert version.version != "intent-foreign-0001"
    assert set(version.metrics["per_class"]) == set(version.labels)  # its own test report
    own = read_manifest(Path(version.artifact_path))
    assert (own.job_key, own.data_hash) == (str(job.key), job.dataset.sha256)
    assert Path(version.artifact_path) == job_dirs(job)[0]
    # and the other job's folder was kept, untouched, out of the way
    if where == "old-naming":
        assert read_manifest(planted).version == "intent-foreign-0001"
    else:
        (moved,) = planted.parent.glob(f"{planted.name}.refused-*")
        assert read_manifest(moved).labels == FOREIGN_LABELS
        assert "set aside" in job.log_tail


def test_the_job_own_finished_artifact_is_registered_without_training_again(job, monkeypatch):
    # given the job's own artifact, saved before its worker died and not yet registered
    plant_artifact(job_dirs(job)[0], job_key=str(job.key), data_hash=job.dataset.sha256)
    monkeypatch.setattr("ml.finetune.fewshot.train_fewshot", lambda *a, **k: pytest.fail("trained again"))
    # when the job runs again, then that artifact is registered
    job = training_job_run(job.pk)
    assert job.status == TrainingJob.Status.SUCCEEDED, job.error
    assert job.model_version.version == "intent-foreign-0001"


def test_a_checkpoint_of_another_job_is_refused_and_training_starts_fresh(make_user,
                                                                           django_capture_on_commit_callbacks):
    # given a LoRA job and, in its checkpoint folder, a checkpoint another job wrote (its
    # state file is not even loadable: it must be refused before it is read)
    agent = make_user("agent")
    dataset = dataset_create(uploaded_file=SimpleUploadedFile("d.csv", rows_to_csv(intent_sample_rows(40))),
                             name="small", role="intent", user=agent)
    with django_capture_on_commit_callbacks(execute=False):
        job = training_job_create(dataset=dataset, method="lora", user=agent,
                                  params={"epochs": 1, "max_length": 16, "batch_size": 16})
    ckpt_dir = job_dirs(job)[1]
    ckpt_dir.mkdir(parents=True)
    (ckpt_dir / ckpt.STATE).write_bytes(b"garbage that torch.load cannot read")
    (ckpt_dir / ckpt.META).write_text(json.dumps({
        "format": ckpt.FORMAT, "owner": {"job_key": str(uuid.uuid4()), "data_hash": dataset.sha256},
        "fingerprint": {}}))

    # when the job runs
    job = training_job_run(job.pk)

    # then it trained from step 0 and the foreign checkpoint was set aside
    assert job.status == TrainingJob.Status.SUCCEEDED, job.error
    assert job.resumed_from_step == 0
    assert len(list(ckpt_dir.parent.glob(f"{ckpt_dir.name}.refused-*"))) == 1
    assert sorted(job.model_version.labels) == ["account", "order_status", "payment", "refund"]
