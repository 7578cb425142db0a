"""Promotion behind the evaluation gate, rollback, and what the registry serves meanwhile."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.mlops.models import ModelVersion
from apps.mlops.sample_data import intent_sample_rows, rows_to_csv
from apps.mlops.services.datasets import dataset_create
from apps.mlops.services.serving import model_get, registry_error, registry_sync, serving_reset
from apps.mlops.services.training import training_job_create, training_job_run
from apps.mlops.services.versions import PromotionRefused, model_version_promote, model_version_rollback
from ml.registry import default_registry

pytestmark = pytest.mark.django_db(transaction=True)

GOOD = {"epochs": 3, "max_length": 32, "batch_size": 16, "learning_rate": 3e-3}
# One epoch at a tiny learning rate: the head stays close to its random start.
POOR = {"epochs": 1, "max_length": 32, "batch_size": 16, "learning_rate": 1e-6, "max_train_rows": 16,
        "allow_new_labels": True}


@pytest.fixture(autouse=True)
def isolated(settings, tmp_path, monkeypatch):
    # Jobs are run in-process below; nothing goes to a broker.
    monkeypatch.setattr("apps.mlops.services.training.training_job_enqueue", lambda job_id: None)
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "media")}}}
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    registry = default_registry()
    registry.ensure_active("intent", None)
    serving_reset()
    yield
    registry.ensure_active("intent", None)
    registry.unload("intent")
    serving_reset()


def train(user, params, seed=7, n=240) -> ModelVersion:
    upload = SimpleUploadedFile(f"d{seed}.csv", rows_to_csv(intent_sample_rows(n, seed=seed)))
    dataset = dataset_create(uploaded_file=upload, name=f"intents-{seed}", role="intent", user=user)
    job = training_job_create(dataset=dataset, method="lora", params=params, user=user)
    job = training_job_run(job.pk)
    assert job.status == "succeeded", job.error
    return job.model_version


def test_promote_swaps_the_served_model_and_rollback_restores_it(make_user):
    admin = make_user("admin")
    # given the bundled zero-shot default serves "intent"
    before = model_get("intent")
    assert "human_agent" in before.labels
    # when a fine-tuned candidate is promoted (it beats the default on its held-out rows)
    version = train(admin, GOOD)
    promoted = model_version_promote(version=version, user=admin)
    # then the same process serves it without a restart
    assert promoted.status == ModelVersion.Status.ACTIVE
    served = model_get("intent")
    assert sorted(served.labels) == ["account", "order_status", "payment", "refund"]
    assert served.predict(["I was charged twice for the laptop"])[0].label == "payment"
    assert version.eval_report["candidate"]["macro_f1"] >= version.eval_report["active"]["macro_f1"]
    assert version.eval_report["active"]["version"] == "default"
    # when it is rolled back
    restored = model_version_rollback(role="intent", user=admin)
    # then the default serves again and the version is retired
    assert restored is None
    assert model_get("intent").labels == before.labels
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.RETIRED


def test_gate_refuses_a_worse_candidate_unless_forced(make_user):
    admin = make_user("admin")
    good = train(admin, GOOD)
    model_version_promote(version=good, user=admin)
    poor = train(admin, POOR, seed=11)
    with pytest.raises(PromotionRefused) as refused:
        model_version_promote(version=poor, user=admin)
    assert refused.value.candidate_score < refused.value.active_score
    good.refresh_from_db()
    assert good.status == ModelVersion.Status.ACTIVE  # nothing changed
    forced = model_version_promote(version=poor, user=admin, force=True)
    assert forced.status == ModelVersion.Status.ACTIVE
    assert forced.previous_active_id == good.pk
    # rollback goes back to the good one
    assert model_version_rollback(role="intent", user=admin).pk == good.pk


def test_missing_artifact_keeps_the_previous_version_serving(make_user):
    admin = make_user("admin")
    version = train(admin, GOOD)
    model_version_promote(version=version, user=admin)
    assert sorted(model_get("intent").labels) == ["account", "order_status", "payment", "refund"]
    # given another process promoted a version whose files are gone
    broken_dir = Path(version.artifact_path).with_name("broken")
    shutil.copytree(version.artifact_path, broken_dir)
    (broken_dir / "adapter_model.safetensors").unlink()
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.RETIRED)
    ModelVersion.objects.create(role="intent", version="intent-broken", kind="lora-classifier",
                                artifact_path=str(broken_dir), status=ModelVersion.Status.ACTIVE,
                                labels=version.labels)
    # when this process syncs with the database
    registry_sync("intent", force=True)
    # then it keeps serving the previous version and says why
    assert sorted(model_get("intent").labels) == ["account", "order_status", "payment", "refund"]
    assert "broken" in (registry_error("intent") or "")


def test_rollback_with_nothing_active_is_refused(make_user):
    with pytest.raises(ValueError, match="nothing to roll back"):
        model_version_rollback(role="intent", user=make_user("admin"))
