"""Forms of the model pages. They only validate input; the services decide."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms

from apps.mlops.models import TRAINABLE_ROLES, Dataset, DatasetTask, TrainingJob
from apps.mlops.permissions import can_train_role
from apps.mlops.services.training import PARAM_LIMITS, job_params_from


def trainable_role_choices(user: Any) -> list[tuple[str, str]]:
    """Model roles ``user`` may upload training data for."""
    return [(str(role), role.label) for role in TRAINABLE_ROLES if can_train_role(user, role)]


class DatasetUploadForm(forms.Form):
    file = forms.FileField(
        help_text="CSV or JSONL with text,label columns; JSONL transcripts for the chat LM.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.jsonl,.json,.ndjson"}),
    )
    name = forms.CharField(max_length=200, required=False, help_text="Defaults to the file name.")
    role = forms.ChoiceField(choices=())

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = trainable_role_choices(user)


def _bounded(name: str, **kwargs: Any) -> forms.Field:
    """A number field with the training service's own limits (the browser checks them too)."""
    kind, low, high = PARAM_LIMITS[name]
    if kind is int:
        return forms.IntegerField(required=False, min_value=int(low), max_value=int(high), **kwargs)
    return forms.FloatField(
        required=False, min_value=low, max_value=high, widget=forms.NumberInput(attrs={"step": "any"}), **kwargs
    )


class TrainingJobStartForm(forms.Form):
    method = forms.ChoiceField(choices=TrainingJob.Method.choices, initial=TrainingJob.Method.LORA)
    epochs = _bounded("epochs", initial=3)
    learning_rate = _bounded("learning_rate", help_text="Empty: 5e-5 for full, 5e-4 for LoRA.")
    batch_size = _bounded("batch_size", initial=16)
    max_train_rows = _bounded("max_train_rows", help_text="Cap the training rows for a quick run (optional).")
    allow_new_labels = forms.BooleanField(
        required=False, help_text="Train even though the labels differ from the active model's."
    )
    # One key per rendered form: a double submit starts one job, not two.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100, required=False)


    def __init__(self, *args: Any, dataset: Dataset, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["idempotency_key"].initial = f"form-{uuid.uuid4().hex}"
        if dataset.task == DatasetTask.CHAT_TRANSCRIPTS:
            self.fields["method"].choices = [(TrainingJob.Method.LORA, TrainingJob.Method.LORA.label)]
            del self.fields["allow_new_labels"]

    def params(self) -> dict[str, Any]:
        return job_params_from(self.cleaned_data)


class ModelVersionPromoteForm(forms.Form):
    force = forms.BooleanField(required=False, label="Force past the evaluation gate")


class ModelVersionEvaluateForm(forms.Form):
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.none(), required=False, empty_label="the version's own held-out rows"
    )

    def __init__(self, *args: Any, datasets: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets
