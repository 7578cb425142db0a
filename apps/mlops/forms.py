"""Forms of the model pages. They only validate input; the services decide."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms

from apps.mlops.models import TRAINABLE_ROLES, Dataset, TrainingJob
from apps.mlops.permissions import can_train_role
from apps.mlops.services.training import job_params_from, param_task
from ml.finetune.params import ParamSpec, param_specs


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


def param_form_field(spec: ParamSpec) -> forms.Field:
    """A form field for one training knob: its bounds, default and help (the browser checks them too)."""
    common: dict[str, Any] = {"required": False, "initial": spec.default, "help_text": spec.help,
                              "label": spec.name.replace("_", " ").capitalize()}
    if spec.choices is not None:
        return forms.ChoiceField(choices=[(c, c) for c in spec.choices], **common)
    if spec.kind is int:
        return forms.IntegerField(min_value=int(spec.low), max_value=int(spec.high), **common)
    return forms.FloatField(min_value=spec.low, max_value=spec.high, widget=forms.NumberInput(attrs={"step": "any"}),
                            **common)


class TrainingJobStartForm(forms.Form):
    """Method and every knob of ``ml.finetune.params`` that applies to the dataset's task."""

    method = forms.ChoiceField(choices=TrainingJob.Method.choices, initial=TrainingJob.Method.LORA)
    allow_new_labels = forms.BooleanField(
        required=False, help_text="Train even though the labels differ from the active model's."
    )
    # One key per rendered form: a double submit starts one job, not two.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100, required=False)

    def __init__(self, *args: Any, dataset: Dataset, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["idempotency_key"].initial = f"form-{uuid.uuid4().hex}"
        task = param_task(dataset.task)
        knobs = {spec.name: param_form_field(spec) for spec in param_specs(task)}
        tail = {name: self.fields.pop(name) for name in ("allow_new_labels", "idempotency_key")}
        self.fields.update(knobs)
        self.fields.update(tail)
        if task == "chat-lm":
            self.fields["method"].choices = [(TrainingJob.Method.LORA, TrainingJob.Method.LORA.label)]
            del self.fields["allow_new_labels"]

    def params(self) -> dict[str, Any]:
        return job_params_from(self.cleaned_data)


class ModelVersionPromoteForm(forms.Form):
    force = forms.BooleanField(required=False, label="Force past the evaluation gate")


class ModelVersionAbstentionForm(forms.Form):
    threshold = forms.FloatField(
        min_value=0.0, max_value=1.0, label="Abstention threshold",
        help_text="Abstain ('not mine') when the in-scope score is below this (0: never, 1: almost always).",
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "1"}),
    )


class ModelVersionEvaluateForm(forms.Form):
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.none(), required=False, empty_label="the version's own held-out rows"
    )

    def __init__(self, *args: Any, datasets: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets
