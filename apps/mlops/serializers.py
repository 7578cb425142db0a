"""Input and output shapes of the mlops API (``/api/mlops/``).

Input serializers only validate; the services decide. Output serializers are read-only
views of the models. Names carry the entity so drf-spectacular's component names stay
unique across the project's apps.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.mlops.models import TRAINABLE_ROLES, Dataset, ModelRole, ModelVersion, TrainingJob
from apps.mlops.permissions import can_see_traceback
from apps.mlops.services.training import job_params_from
from ml import explain as explain_limits
from ml.finetune.params import ParamSpec, param_specs

IDEMPOTENCY_KEY_MAX_LENGTH = TrainingJob._meta.get_field("idempotency_key").max_length


# --- errors (documentation of the shared shape; apps.core.errors builds the bodies)


class MlopsErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField(child=serializers.JSONField(), required=False)


class MlopsErrorSerializer(serializers.Serializer):
    error = MlopsErrorDetailSerializer()


class DatasetRejectedDetailsSerializer(serializers.Serializer):
    """The validation report of a rejected upload (``error.details``).

    Optional fields: the same 400 also answers invalid form fields (code ``invalid``), whose
    ``details`` hold per-field messages instead.
    """

    ok = serializers.BooleanField(required=False)
    errors = serializers.ListField(child=serializers.CharField(), required=False)
    warnings = serializers.ListField(child=serializers.CharField(), required=False)
    label_counts = serializers.DictField(child=serializers.IntegerField(), required=False)
    n_rows = serializers.IntegerField(required=False)


class DatasetRejectedErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(default="dataset_rejected")
    message = serializers.CharField()
    details = DatasetRejectedDetailsSerializer()


class DatasetRejectedErrorSerializer(serializers.Serializer):
    error = DatasetRejectedErrorDetailSerializer()


class PromotionRefusedDetailsSerializer(serializers.Serializer):
    # Optional: the same 409 also answers a version whose state forbids promotion (code
    # ``conflict``, empty details).
    candidate_score = serializers.FloatField(allow_null=True, required=False)
    active_score = serializers.FloatField(allow_null=True, required=False)


class PromotionRefusedErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(default="promotion_refused")
    message = serializers.CharField()
    details = PromotionRefusedDetailsSerializer()


class PromotionRefusedErrorSerializer(serializers.Serializer):
    error = PromotionRefusedErrorDetailSerializer()


# --- filters (query strings)


class ModelRoleFilterSerializer(serializers.Serializer):
    role = serializers.ChoiceField(
        choices=ModelRole.choices, required=False, help_text="Only objects of this model role."
    )


class TrainingJobFilterSerializer(ModelRoleFilterSerializer):
    status = serializers.ChoiceField(choices=TrainingJob.Status.choices, required=False)


class ModelVersionFilterSerializer(ModelRoleFilterSerializer):
    status = serializers.ChoiceField(choices=ModelVersion.Status.choices, required=False)


# --- model versions


class ModelVersionOutputSerializer(serializers.ModelSerializer):
    macro_f1 = serializers.SerializerMethodField(help_text="Held-out macro-F1 from training, if a classifier.")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, read_only=True)
    promoted_by = serializers.CharField(source="promoted_by.username", allow_null=True, read_only=True)
    training_job = serializers.IntegerField(source="training_job_id", allow_null=True, read_only=True)
    previous_active = serializers.CharField(source="previous_active.version", allow_null=True, read_only=True)
    labels = serializers.ListField(child=serializers.CharField(), read_only=True)
    metrics = serializers.JSONField(read_only=True, help_text="Training report on the held-out split.")
    eval_report = serializers.JSONField(read_only=True, help_text="Latest evaluation-gate report.")

    class Meta:
        model = ModelVersion
        fields = (
            "id",
            "role",
            "version",
            "kind",
            "status",
            "macro_f1",
            "base_model",
            "labels",
            "metrics",
            "eval_report",
            "training_job",
            "previous_active",
            "created_by",
            "created_at",
            "promoted_by",
            "promoted_at",
        )
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.FLOAT)
    def get_macro_f1(self, obj: ModelVersion) -> float | None:
        value = (obj.metrics or {}).get("macro_f1")
        return float(value) if isinstance(value, int | float) else None


class ModelVersionPromoteInputSerializer(serializers.Serializer):
    force = serializers.BooleanField(default=False, help_text="Promote even when the evaluation gate refuses.")


class ModelVersionEvaluateInputSerializer(serializers.Serializer):
    dataset = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="Dataset to evaluate on; default: the version's held-out rows.",
    )


class ModelVersionAbstentionInputSerializer(serializers.Serializer):
    threshold = serializers.FloatField(
        min_value=0.0, max_value=1.0,
        help_text="Abstain ('not mine') when the in-scope score is below this: the calibrated top "
        "probability (method max_prob), the similarity to the training texts (method knn), a weighted "
        "mean of both (method knn_max_prob), or that mean (the similarity read to the predicted class's texts) "
        "less how close the nearest out-of-scope example comes to it (method knn_max_prob_oos).",
    )


class ModelVersionAbstentionOutputSerializer(serializers.Serializer):
    calibration = serializers.JSONField(
        allow_null=True, help_text="temperature, ece_before, ece_after, rows; null when never calibrated.")
    abstention = serializers.JSONField(
        allow_null=True, help_text="method, threshold, oos_label, auroc per scorer, dev figures, curve.")


class ModelVersionEvaluateOutputSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    dataset = serializers.IntegerField(allow_null=True)
    task_id = serializers.CharField(allow_blank=True)
    status = serializers.CharField(default="queued")


class ModelVersionExplainInputSerializer(serializers.Serializer):
    texts = serializers.ListField(
        child=serializers.CharField(max_length=explain_limits.MAX_CHARS, trim_whitespace=False),
        min_length=1,
        max_length=explain_limits.MAX_TEXTS,
        help_text=f"1-{explain_limits.MAX_TEXTS} texts of at most {explain_limits.MAX_CHARS} characters and "
        f"{explain_limits.MAX_WORDS} words each.",
    )
    target = serializers.CharField(
        required=False, allow_null=True, max_length=200,
        help_text="Label whose probability the attributions explain; default: each text's predicted label.",
    )
    steps = serializers.IntegerField(
        required=False, default=explain_limits.DEFAULT_STEPS, min_value=explain_limits.MIN_STEPS,
        max_value=explain_limits.MAX_STEPS,
        help_text="Integrated-gradients steps (transformer classifiers; more is slower and more exact).",
    )


class ExplanationWordSerializer(serializers.Serializer):
    text = serializers.CharField()
    start = serializers.IntegerField(help_text="Character offset of the word in the text.")
    end = serializers.IntegerField()
    attribution = serializers.FloatField(help_text="> 0 raised the target's probability, < 0 lowered it.")


class ExplanationSerializer(serializers.Serializer):
    text = serializers.CharField()
    tokens = ExplanationWordSerializer(many=True, help_text="The text's words (word pieces merged), in order.")
    label = serializers.CharField(help_text="Predicted label.")
    probability = serializers.FloatField()
    target = serializers.CharField(help_text="The label the attributions explain.")
    target_probability = serializers.FloatField()
    # A plain string, not an enum: a second enum of fields named "method" (training jobs have
    # one) would make drf-spectacular invent component names.
    method = serializers.CharField(
        help_text=f'"{explain_limits.INTEGRATED_GRADIENTS}" (transformers) or "{explain_limits.OCCLUSION}" '
        "(heads on frozen embeddings, int8 models)."
    )
    convergence_delta = serializers.FloatField(
        allow_null=True, help_text="Integrated gradients: sum of attributions minus p(text) - p(baseline)."
    )


class ModelVersionExplainOutputSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    explanations = ExplanationSerializer(many=True)


# --- roles


class ModelRoleOutputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ModelRole.choices)
    label = serializers.CharField()
    serving = serializers.CharField(help_text='Active version, or "default" for the bundled model.')
    active = ModelVersionOutputSerializer(allow_null=True)
    versions = serializers.IntegerField()
    candidates = serializers.IntegerField()
    trainable = serializers.BooleanField()
    registry_error = serializers.CharField(
        allow_null=True, help_text="Why this server could not load the promoted version."
    )


class ModelRoleRollbackOutputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ModelRole.choices)
    serving = serializers.CharField(help_text='Active version after the rollback, or "default".')
    active = ModelVersionOutputSerializer(allow_null=True)


# --- datasets


class DatasetCreateInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV/JSONL with text,label columns; JSONL transcripts for chat-lm.")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    # All roles in the choices (one enum in the schema); only trainable ones pass.
    role = serializers.ChoiceField(choices=ModelRole.choices)

    def validate_role(self, value: str) -> str:
        if value not in TRAINABLE_ROLES:
            raise serializers.ValidationError(
                f"{value} cannot be trained from a dataset; choose one of {sorted(map(str, TRAINABLE_ROLES))}."
            )
        return value


class DatasetOutputSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", allow_null=True, read_only=True)
    label_counts = serializers.DictField(child=serializers.IntegerField(), read_only=True)
    validation = serializers.JSONField(read_only=True, help_text="The full validation report.")

    class Meta:
        model = Dataset
        fields = (
            "id",
            "name",
            "role",
            "task",
            "source",
            "sha256",
            "size_bytes",
            "rows",
            "label_counts",
            "validation",
            "created_by",
            "created_at",
        )
        read_only_fields = fields


# --- training jobs


def param_serializer_field(spec: ParamSpec) -> serializers.Field:
    """A serializer field for one training knob: bounds and help from ``ml.finetune.params`` (in the schema)."""
    common: dict[str, Any] = {"required": False, "allow_null": True, "help_text": spec.help}
    if spec.choices is not None:
        return serializers.ChoiceField(choices=list(spec.choices), **common)
    field_class = serializers.IntegerField if spec.kind is int else serializers.FloatField
    return field_class(min_value=spec.kind(spec.low), max_value=spec.kind(spec.high), **common)


class TrainingJobCreateInputSerializer(serializers.Serializer):
    """Dataset, method and the knobs of ``ml.finetune.params`` (unset: the task's default).

    The chat LM takes the subset its task declares; the service refuses the others.
    """

    dataset = serializers.IntegerField(min_value=1)
    method = serializers.ChoiceField(choices=TrainingJob.Method.choices, default=TrainingJob.Method.LORA)
    allow_new_labels = serializers.BooleanField(
        required=False, default=False, help_text="Train even though the labels differ from the active model's."
    )
    base_model = serializers.CharField(
        required=False, allow_blank=True, max_length=500,
        help_text="Classifiers: the encoder to start from, a registered embedder version (default: MiniLM).",
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields.update({spec.name: param_serializer_field(spec) for spec in param_specs("classifier")})
        return fields

    def params(self) -> dict[str, Any]:
        """The training parameters the caller set (None and unset left out)."""
        return job_params_from(self.validated_data)


class TrainingJobOutputSerializer(serializers.ModelSerializer):
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", allow_null=True, read_only=True)
    model_version = serializers.IntegerField(source="model_version.pk", allow_null=True, read_only=True)
    params = serializers.JSONField(read_only=True)
    metrics_history = serializers.JSONField(read_only=True, help_text="One entry per epoch (train loss, dev report).")
    error = serializers.CharField(read_only=True, help_text="Why the job failed: one line, no server paths.")
    traceback = serializers.SerializerMethodField(
        help_text="Admins only: the stored traceback of a failed job (null for other roles)."
    )

    class Meta:
        model = TrainingJob
        fields = (
            "id",
            "dataset",
            "dataset_name",
            "role",
            "method",
            "params",
            "status",
            "progress",
            "epoch",
            "step",
            "total_steps",
            "metrics_history",
            "log_tail",
            "error",
            "traceback",
            "attempts",
            "resumed_from_step",
            "model_version",
            "created_by",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
        )
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_traceback(self, obj: TrainingJob) -> str | None:
        request = self.context.get("request")
        user = getattr(request, "user", None)
        return obj.traceback if user is not None and can_see_traceback(user) else None
