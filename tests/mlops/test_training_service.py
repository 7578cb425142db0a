"""Datasets -> training job -> model version, with the real MiniLM encoder on a small slice."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.mlops.models import Dataset, ModelVersion, TrainingJob
from apps.mlops.sample_data import intent_sample_rows, rows_to_csv
from apps.mlops.services.datasets import DatasetRejected, dataset_create
from apps.mlops.services.training import training_job_cancel, training_job_create, training_job_run

pytestmark = pytest.mark.django_db

FAST = {"epochs": 3, "max_length": 32, "batch_size": 16, "learning_rate": 3e-3}


def upload(content: bytes, name: str = "data.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


@pytest.fixture
def media(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "media")}}}
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    return tmp_path / "media"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"sentence,category\nhello,a\nbye,b\n", "column"),
        (b"", "empty"),
        (b"text,label\nhello,a\nhi,a\nhey,a\n", "class"),
        ("text,label\ncaf\u00e9,a\nbye,b\n".encode("latin-1"), "utf-8"),
    ],
    ids=["wrong-columns", "empty", "one-class", "non-utf8"],
)
def test_bad_uploads_are_rejected_and_nothing_is_stored(make_user, media, content, expected):
    # given an analyst and a broken file
    analyst = make_user("analyst")
    # when it is uploaded
    with pytest.raises(DatasetRejected) as caught:
        dataset_create(uploaded_file=upload(content), name="bad", role="sentiment", user=analyst)
    # then the report names the problem and nothing was created
    assert expected in " ".join(caught.value.report["errors"]).lower()
    assert Dataset.objects.count() == 0
    assert not media.exists() or not any(media.rglob("*.csv"))


def test_oversized_upload_is_rejected(make_user, media, settings):
    settings.TRELLIS_MAX_UPLOAD_BYTES = 100
    with pytest.raises(DatasetRejected, match="limit"):
        dataset_create(uploaded_file=upload(rows_to_csv(intent_sample_rows(40))), name="big",
                       role="intent", user=make_user("agent"))
    assert Dataset.objects.count() == 0


def test_same_upload_twice_is_one_dataset(make_user, media):
    agent = make_user("agent")
    body = rows_to_csv(intent_sample_rows(40))
    first = dataset_create(uploaded_file=upload(body), name="a", role="intent", user=agent)
    second = dataset_create(uploaded_file=upload(body), name="b", role="intent", user=agent)
    assert first.pk == second.pk
    assert first.rows == 40
    assert first.label_counts == {"account": 10, "order_status": 10, "payment": 10, "refund": 10}


def test_job_parameters_are_validated(make_user, media):
    agent = make_user("agent")
    dataset = dataset_create(uploaded_file=upload(rows_to_csv(intent_sample_rows(40))), name="a",
                             role="intent", user=agent)
    with pytest.raises(ValidationError, match="epochs"):
        training_job_create(dataset=dataset, method="lora", params={"epochs": 0}, user=agent)
    with pytest.raises(ValidationError, match="unknown"):
        training_job_create(dataset=dataset, method="lora", params={"dropout": 0.5}, user=agent)
    with pytest.raises(ValidationError, match="method"):
        training_job_create(dataset=dataset, method="magic", params={}, user=agent)
    assert TrainingJob.objects.count() == 0


def test_idempotency_key_returns_the_same_job(make_user, media, django_capture_on_commit_callbacks):
    agent = make_user("agent")
    dataset = dataset_create(uploaded_file=upload(rows_to_csv(intent_sample_rows(40))), name="a",
                             role="intent", user=agent)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = training_job_create(dataset=dataset, method="lora", params={}, user=agent, idempotency_key="k1")
        again = training_job_create(dataset=dataset, method="lora", params={}, user=agent, idempotency_key="k1")
    assert first.pk == again.pk
    assert len(callbacks) == 1  # enqueued once


def test_cancel_of_a_queued_job_ends_it(make_user, media, django_capture_on_commit_callbacks):
    agent = make_user("agent")
    dataset = dataset_create(uploaded_file=upload(rows_to_csv(intent_sample_rows(40))), name="a",
                             role="intent", user=agent)
    with django_capture_on_commit_callbacks(execute=False):
        job = training_job_create(dataset=dataset, method="lora", params={}, user=agent)
    job = training_job_cancel(job=job, user=agent)
    assert job.status == TrainingJob.Status.CANCELLED
    assert training_job_run(job.pk).status == TrainingJob.Status.CANCELLED  # a late delivery does nothing
    assert not ModelVersion.objects.exists()


def test_training_job_makes_one_candidate_that_beats_the_majority(make_user, media,
                                                                  django_capture_on_commit_callbacks):
    # given a small, clear 4-intent dataset
    agent = make_user("agent")
    dataset = dataset_create(uploaded_file=upload(rows_to_csv(intent_sample_rows(240))), name="intents",
                             role="intent", user=agent)
    with django_capture_on_commit_callbacks(execute=False):
        job = training_job_create(dataset=dataset, method="lora", params=FAST, user=agent)
    # when the job runs (as the Celery task would) and is delivered a second time
    job = training_job_run(job.pk)
    again = training_job_run(job.pk)
    # then it succeeded with per-epoch metrics and exactly one candidate version
    assert job.status == TrainingJob.Status.SUCCEEDED, job.error
    assert again.status == TrainingJob.Status.SUCCEEDED
    assert [h["epoch"] for h in job.metrics_history] == [1, 2, 3]
    assert "confusion_matrix" in job.metrics_history[-1]["dev"]
    versions = ModelVersion.objects.filter(training_job=job)
    assert versions.count() == 1
    version = versions.get()
    assert version.status == ModelVersion.Status.CANDIDATE
    assert version.kind == "lora-classifier"
    assert sorted(version.labels) == ["account", "order_status", "payment", "refund"]
    assert version.metrics["accuracy"] > version.metrics["majority_baseline_accuracy"] + 0.2


def test_chat_transcripts_are_validated_before_storing(make_user, media):
    agent = make_user("agent")
    bad = b'{"messages": [{"role": "user", "content": "hi"}]}\n{not json}\n'
    with pytest.raises(DatasetRejected) as caught:
        dataset_create(uploaded_file=upload(bad, "chats.jsonl"), name="chats", role="chat-lm", user=agent)
    assert any("line 2" in e for e in caught.value.report["errors"])
    good = b"\n".join(
        b'{"messages": [{"role": "user", "content": "where is my order"}, '
        b'{"role": "assistant", "content": "It ships tomorrow."}]}' for _ in range(3))
    dataset = dataset_create(uploaded_file=upload(good, "chats.jsonl"), name="chats", role="chat-lm", user=agent)
    assert dataset.task == "chat-transcripts"
    assert dataset.rows == 3
    with pytest.raises(ValidationError, match="LoRA only"):
        training_job_create(dataset=dataset, method="full", params={}, user=agent)


def test_chat_lm_lora_job_makes_a_candidate(make_user, media, django_capture_on_commit_callbacks):
    # given a dozen resolved conversations
    agent = make_user("agent")
    lines = [
        json.dumps({"messages": [{"role": "user", "content": f"Where is order {i}?"},
                                 {"role": "assistant", "content": f"Order {i} ships within two days."}]})
        for i in range(12)
    ]
    dataset = dataset_create(uploaded_file=upload("\n".join(lines).encode(), "chats.jsonl"), name="chats",
                             role="chat-lm", user=agent)
    with django_capture_on_commit_callbacks(execute=False):
        job = training_job_create(dataset=dataset, method="lora", user=agent,
                                  params={"max_steps": 2, "max_length": 64, "batch_size": 4})
    # when it runs
    job = training_job_run(job.pk)
    # then a LoRA chat-LM candidate exists with a held-out loss
    assert job.status == TrainingJob.Status.SUCCEEDED, job.error
    version = job.model_version
    assert version.kind == "lora-causal-lm"
    assert "eval_loss" in version.metrics


def test_fewshot_job_trains_in_seconds_and_beats_the_majority(make_user, media, django_capture_on_commit_callbacks):
    agent = make_user("agent")
    dataset = dataset_create(uploaded_file=upload(rows_to_csv(intent_sample_rows(120))), name="few",
                             role="intent", user=agent)
    with django_capture_on_commit_callbacks(execute=False):
        job = training_job_create(dataset=dataset, method="fewshot", params={}, user=agent)
    job = training_job_run(job.pk)
    assert job.status == TrainingJob.Status.SUCCEEDED, job.error
    version = job.model_version
    assert version.kind == "fewshot-classifier"
    assert version.metrics["accuracy"] > version.metrics["majority_baseline_accuracy"] + 0.3
    assert len(job.metrics_history) == 1


def test_a_job_with_a_fresh_heartbeat_is_not_started_twice_but_retried(make_user, media,
                                                                        django_capture_on_commit_callbacks):
    from django.utils import timezone

    from apps.mlops.services.training import JobRunningElsewhere

    agent = make_user("agent")
    dataset = dataset_create(uploaded_file=upload(rows_to_csv(intent_sample_rows(40))), name="a",
                             role="intent", user=agent)
    with django_capture_on_commit_callbacks(execute=False):
        job = training_job_create(dataset=dataset, method="fewshot", params={}, user=agent)
    # given another worker is running it (fresh heartbeat)
    TrainingJob.objects.filter(pk=job.pk).update(status="running", attempts=1, heartbeat_at=timezone.now())
    # when a redelivered message arrives, it is told to come back later, not dropped
    with pytest.raises(JobRunningElsewhere) as busy:
        training_job_run(job.pk)
    assert 0 < busy.value.retry_in <= 181
    assert TrainingJob.objects.get(pk=job.pk).attempts == 1
