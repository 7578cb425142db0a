"""The mlops management commands: models, train, evaluate, promote, rollback (models faked)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.mlops.models import Dataset, ModelVersion, TrainingJob
from apps.mlops.services.versions import PromotionRefused
from tests.mlops.factories import ModelVersionFactory, UserFactory, media_in, report

GOOD_CSV = (
    "text,label\nwhere is my parcel,order_status\nmy order has not arrived,order_status\n"
    "refund my laptop please,refund\nI want my money back,refund\n"
)


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path, monkeypatch):
    media_in(settings, tmp_path)
    monkeypatch.setattr("apps.mlops.services.training.training_job_enqueue", lambda job_id: None)


def run(*args: str, **options) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "intents.csv"
    path.write_text(GOOD_CSV, encoding="utf-8")
    return path


# --- models


@pytest.mark.django_db
def test_models_lists_every_role_with_what_serves_it():
    # given one active and one candidate intent version
    ModelVersionFactory(
        version="intent-active", status=ModelVersion.Status.ACTIVE, metrics=report(["a", "b"], macro_f1=0.9123)
    )
    ModelVersionFactory(version="intent-candidate")
    # when the table is printed
    output = run("models")
    # then every role appears with its serving version or the default, and versions with macro-F1
    for role in ("embedder", "chat-lm", "intent", "sentiment", "ner"):
        assert f"{role}:" in output
    assert "serving: intent-active" in output
    assert "serving: default (bundled)" in output
    assert "0.9123" in output
    assert "candidate" in output


@pytest.mark.django_db
def test_models_for_one_role():
    output = run("models", "--role", "sentiment")
    assert "sentiment:" in output
    assert "intent:" not in output


# --- promote and rollback


@pytest.mark.django_db
def test_promote_an_unknown_version_is_a_command_error():
    with pytest.raises(CommandError, match="No model version 'nope'"):
        run("promote", "--version", "nope")


@pytest.mark.django_db
def test_promote_reports_the_gate_refusal(monkeypatch):
    version = ModelVersionFactory()

    def refuse(*, version, user, force=False, **audit):
        raise PromotionRefused("candidate is worse: 0.5000 vs 0.8000", 0.5, 0.8)

    monkeypatch.setattr("apps.mlops.management.commands.promote.model_version_promote", refuse)
    with pytest.raises(CommandError, match="Refused: candidate is worse"):
        run("promote", "--version", version.version)


@pytest.mark.django_db
def test_promote_by_id_with_force_as_an_admin(monkeypatch):
    version = ModelVersionFactory()
    admin = UserFactory(roles=["admin"])
    seen = []

    def promote(*, version, user, force=False, **audit):
        seen.append((version.pk, user, force))
        return version

    monkeypatch.setattr("apps.mlops.management.commands.promote.model_version_promote", promote)
    output = run("promote", "--version", str(version.pk), "--force", "--user", admin.username)
    assert seen == [(version.pk, admin, True)]
    assert f"{version.version} is now the active intent model" in output


@pytest.mark.django_db
def test_promote_as_a_non_admin_is_refused():
    version = ModelVersionFactory()
    analyst = UserFactory(roles=["analyst"])
    with pytest.raises(CommandError, match="not an admin"):
        run("promote", "--version", version.version, "--user", analyst.username)


@pytest.mark.django_db
def test_rollback_with_nothing_active_is_a_command_error():
    with pytest.raises(CommandError, match="nothing to roll back"):
        run("rollback", "--role", "intent")


@pytest.mark.django_db
def test_rollback_of_an_unknown_role_is_a_command_error():
    with pytest.raises(CommandError, match="invalid choice"):
        run("rollback", "--role", "weather")


# --- evaluate


@pytest.mark.django_db
def test_evaluate_an_unknown_version_is_a_command_error():
    with pytest.raises(CommandError, match="No model version"):
        run("evaluate", "--version", "missing")


@pytest.mark.django_db
def test_evaluate_prints_both_models_and_the_per_class_table(monkeypatch):
    version = ModelVersionFactory(version="intent-new")

    def evaluate(*, version, dataset=None):
        return {
            "rows": 20,
            "dataset": None,
            "candidate": report(["order_status", "refund"], macro_f1=0.8125),
            "active": {"version": "default", **report(["order_status", "refund"], macro_f1=0.5)},
        }

    monkeypatch.setattr("apps.mlops.management.commands.evaluate.model_version_evaluate", evaluate)
    output = run("evaluate", "--version", version.version)
    assert "intent-new vs active default on 20 rows" in output
    assert "0.8125" in output and "0.5000" in output
    assert "order_status" in output and "refund" in output


@pytest.mark.django_db
def test_evaluate_on_a_missing_file_is_a_command_error():
    version = ModelVersionFactory()
    with pytest.raises(CommandError, match="No such file"):
        run("evaluate", "--version", version.version, "--dataset-file", "/nonexistent/data.csv")


# --- train


@pytest.mark.django_db
def test_train_with_a_missing_file_is_a_command_error():
    with pytest.raises(CommandError, match="No such file"):
        run("train", "--dataset-file", "/nonexistent/data.csv", "--role", "intent")


@pytest.mark.django_db
def test_train_with_an_invalid_file_stores_nothing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,a\nhi,a\n", encoding="utf-8")
    with pytest.raises(CommandError, match="failed validation"):
        run("train", "--dataset-file", str(bad), "--role", "intent")
    assert Dataset.objects.count() == 0


@pytest.mark.django_db
def test_train_with_bad_parameters_is_a_command_error(csv_file):
    with pytest.raises(CommandError, match="epochs"):
        run("train", "--dataset-file", str(csv_file), "--role", "intent", "--epochs", "0", "--async")


@pytest.mark.django_db
def test_train_async_stores_the_dataset_and_queues_the_job(csv_file):
    # when a dataset file is trained on with --async
    output = run(
        "train",
        "--dataset-file",
        str(csv_file),
        "--role",
        "intent",
        "--method",
        "full",
        "--epochs",
        "2",
        "--learning-rate",
        "1e-4",
        "--max-train-rows",
        "100",
        "--name",
        "intents",
        "--async",
    )
    # then the dataset is stored and a job is queued with those parameters
    dataset = Dataset.objects.get()
    job = TrainingJob.objects.get()
    assert (dataset.name, dataset.rows, dataset.role) == ("intents", 4, "intent")
    assert (job.method, job.status, job.dataset) == ("full", "queued", dataset)
    assert job.params == {"epochs": 2, "learning_rate": 1e-4, "max_train_rows": 100}
    assert "queued" in output


@pytest.mark.django_db(transaction=True)
def test_train_waits_for_the_job_and_reports_the_version(csv_file, monkeypatch):
    # given a fake training run (in the command's worker thread) that reports steps and registers a version
    def fake_run(job_id: int) -> TrainingJob:
        job = TrainingJob.objects.get(pk=job_id)
        TrainingJob.objects.filter(pk=job_id).update(
            status="running", total_steps=4, step=2, epoch=1, metrics_history=[{"epoch": 1, "train_loss": 0.5}]
        )
        ModelVersionFactory(version="intent-trained", training_job=job, metrics=report(["a", "b"], macro_f1=0.875))
        TrainingJob.objects.filter(pk=job_id).update(status="succeeded", step=4, progress=1.0)
        return TrainingJob.objects.get(pk=job_id)

    monkeypatch.setattr("apps.mlops.management.commands.train.training_job_run", fake_run)
    # when train runs in the foreground
    output = run("train", "--dataset-file", str(csv_file), "--role", "intent", "--poll-interval", "0.05")
    # then it waits for the end and names the new candidate
    assert "succeeded: candidate intent-trained" in output
    assert "0.8750" in output
    assert "manage.py promote --version intent-trained" in output


@pytest.mark.django_db(transaction=True)
def test_train_reports_a_failed_job(csv_file, monkeypatch):
    def fail(job_id: int) -> TrainingJob:
        TrainingJob.objects.filter(pk=job_id).update(status="failed", error="RuntimeError: out of memory")
        return TrainingJob.objects.get(pk=job_id)

    monkeypatch.setattr("apps.mlops.management.commands.train.training_job_run", fail)
    with pytest.raises(CommandError, match="out of memory"):
        run("train", "--dataset-file", str(csv_file), "--role", "intent", "--poll-interval", "0.05")
