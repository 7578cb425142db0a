"""Datasets, training jobs and model versions: the Django face of ``ml/``."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class ModelRole(models.TextChoices):
    EMBEDDER = "embedder", "Embeddings"
    CHAT_LM = "chat-lm", "Chat language model"
    INTENT = "intent", "Intent classifier"
    SENTIMENT = "sentiment", "Sentiment classifier"
    NER = "ner", "Entities"


# Roles that can be fine-tuned from a dataset, and which dataset task each takes.
TRAINABLE_ROLES = {
    ModelRole.INTENT: "text-classification",
    ModelRole.SENTIMENT: "text-classification",
    ModelRole.CHAT_LM: "chat-transcripts",
}


class DatasetTask(models.TextChoices):
    TEXT_CLASSIFICATION = "text-classification", "Text classification (text,label)"
    CHAT_TRANSCRIPTS = "chat-transcripts", "Chat transcripts (JSONL of messages)"


class Dataset(models.Model):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        FEEDBACK = "feedback", "Built from app feedback"

    name = models.CharField(max_length=200)
    role = models.CharField(max_length=20, choices=ModelRole.choices)
    task = models.CharField(max_length=30, choices=DatasetTask.choices)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.UPLOAD)
    file = models.FileField(upload_to="datasets/%Y/%m/")
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    rows = models.PositiveIntegerField()
    label_counts = models.JSONField(default=dict, blank=True)
    validation = models.JSONField(default=dict, blank=True)  # the full validation report
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [models.UniqueConstraint(fields=("role", "sha256"), name="dataset_unique_content_per_role")]

    def __str__(self) -> str:
        return f"{self.name} ({self.role}, {self.rows} rows)"


class TrainingJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        CANCELLING = "cancelling", "Cancelling"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    # Classifier methods are ml.finetune.peft_methods.METHODS plus few-shot (a test keeps them
    # in step); the chat LM trains with LoRA only.
    class Method(models.TextChoices):
        FULL = "full", "Full fine-tune"
        LORA = "lora", "LoRA"
        ADALORA = "adalora", "AdaLoRA (LoRA with an adaptive rank budget)"
        IA3 = "ia3", "IA3 (learned scaling vectors, fewest parameters)"
        PROMPT = "prompt", "Prompt tuning (learned virtual tokens)"
        FEWSHOT = "fewshot", "Few-shot (linear head on frozen embeddings, seconds)"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    # Names the job's artifact and checkpoint folders and is written into what it saves:
    # database ids repeat across databases (a reset, a restored backup, two deployments on
    # one artifacts store), so a folder named by id could hold another job's model.
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="jobs")
    role = models.CharField(max_length=20, choices=ModelRole.choices)
    method = models.CharField(max_length=12, choices=Method.choices, default=Method.LORA)
    params = models.JSONField(default=dict, blank=True)  # epochs, learning_rate, batch_size, ...
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0)  # 0..1
    epoch = models.PositiveIntegerField(default=0)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    metrics_history = models.JSONField(default=list, blank=True)  # one dict per epoch
    log_tail = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")  # one line, no server paths: every role holder sees it
    traceback = models.TextField(blank=True, default="")  # of a failure; admins only (it names server paths)
    attempts = models.PositiveSmallIntegerField(default=0)
    resumed_from_step = models.PositiveIntegerField(default=0)
    idempotency_key = models.CharField(max_length=100, null=True, blank=True, unique=True)
    celery_task_id = models.CharField(max_length=64, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"job {self.pk} {self.role} {self.method} [{self.status}]"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        CANDIDATE = "candidate", "Candidate"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    role = models.CharField(max_length=20, choices=ModelRole.choices, db_index=True)
    version = models.CharField(max_length=120, unique=True)  # the artifact manifest's version
    kind = models.CharField(max_length=40)
    artifact_path = models.CharField(max_length=500)
    base_model = models.CharField(max_length=500, blank=True, default="")
    labels = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True)  # from training (held-out test split)
    eval_report = models.JSONField(default=dict, blank=True)  # latest gate evaluation
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CANDIDATE, db_index=True)
    training_job = models.OneToOneField(TrainingJob, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="model_version")  # one job, at most one version
    previous_active = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")  # what was active before it; rollback target
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("role", "-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=("role",), condition=models.Q(status="active"),
                                    name="model_version_one_active_per_role"),
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.version} [{self.status}]"
