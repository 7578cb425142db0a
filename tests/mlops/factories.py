"""factory_boy factories for the mlops tests (no models loaded, no files trained)."""

from __future__ import annotations

import hashlib
from typing import Any

import factory
from django.contrib.auth.models import Group

from apps.accounts.models import User
from apps.accounts.roles import Role
from apps.mlops.models import Dataset, DatasetTask, ModelVersion, TrainingJob

CSV = b"text,label\nwhere is my parcel,order_status\nrefund my laptop please,refund\n"


def report(labels: list[str], macro_f1: float = 0.8, accuracy: float = 0.85) -> dict[str, Any]:
    """A classification report shaped like ``ml.metrics.classification_report``."""
    n = len(labels)
    return {
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "weighted_f1": macro_f1,
        "per_class": {
            label: {"precision": macro_f1, "recall": macro_f1, "f1": macro_f1, "support": 10} for label in labels
        },
        "confusion_matrix": [[8 if i == j else 1 for j in range(n)] for i in range(n)],
        "labels": labels,
        "support": 10 * n,
    }


class UserFactory(factory.django.DjangoModelFactory):
    """``UserFactory(roles=["analyst"])``; admins are superusers, as ``user_create`` makes them."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user-{n}")
    password = factory.django.Password("pw-for-tests-123")

    @factory.post_generation
    def roles(self, create: bool, extracted: list[str] | None, **kwargs: Any) -> None:
        if not create or not extracted:
            return
        groups = [Group.objects.get_or_create(name=Role(role).value)[0] for role in extracted]
        self.groups.set(groups)
        if Role.ADMIN.value in extracted:
            self.is_staff = self.is_superuser = True
            self.save(update_fields=["is_staff", "is_superuser"])


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    name = factory.Sequence(lambda n: f"dataset-{n}")
    role = "intent"
    task = DatasetTask.TEXT_CLASSIFICATION
    file = factory.django.FileField(filename="data.csv", data=CSV)
    sha256 = factory.Sequence(lambda n: hashlib.sha256(f"dataset-{n}".encode()).hexdigest())
    size_bytes = len(CSV)
    rows = 2
    label_counts = factory.LazyFunction(lambda: {"order_status": 1, "refund": 1})
    validation = factory.LazyAttribute(
        lambda o: {
            "ok": True,
            "errors": [],
            "warnings": [],
            "n_rows": o.rows,
            "label_counts": o.label_counts,
            "task": o.task,
        }
    )
    created_by = None


class TrainingJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrainingJob

    dataset = factory.SubFactory(DatasetFactory)
    role = factory.SelfAttribute("dataset.role")
    method = TrainingJob.Method.LORA
    params = factory.LazyFunction(lambda: {"epochs": 2})
    status = TrainingJob.Status.QUEUED


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    role = "intent"
    version = factory.Sequence(lambda n: f"intent-test-{n:04d}")
    kind = "lora-classifier"
    artifact_path = factory.LazyAttribute(lambda o: f"/nonexistent/artifacts/{o.role}/{o.version}")
    base_model = "all-MiniLM-L6-v2"
    labels = factory.LazyFunction(lambda: ["order_status", "refund"])
    metrics = factory.LazyAttribute(lambda o: report(list(o.labels)))
    status = ModelVersion.Status.CANDIDATE


def media_in(settings: Any, tmp_path: Any) -> None:
    """Points file storage at ``tmp_path`` so tests leave nothing under var/."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"


# A tiny valid two-class sentiment upload.
GOOD_CSV = (
    b"text,label\nprofits beat every estimate,positive\nshares slump after the warning,negative\n"
    b"record quarter for the bank,positive\nregulator fines the lender,negative\n"
)


def isolate(settings: Any, tmp_path: Any, monkeypatch: Any) -> None:
    """Uploads go under ``tmp_path`` and no job reaches a broker (app-logic tests)."""
    media_in(settings, tmp_path)
    monkeypatch.setattr("apps.mlops.services.training.training_job_enqueue", lambda job_id: None)
