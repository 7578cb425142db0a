"""Dashboard forms; they validate shapes, the services decide (the API serializers' twins)."""

from __future__ import annotations

import dataclasses
from typing import Any

from django import forms

from apps.sentiment.models import AlertRule, Entity, Label, SeriesBucket
from apps.sentiment.services.alert_rules import RULE_FIELDS, alert_rule_validate
from apps.sentiment.services.backtest import BacktestParams, basis_choices, param_fields


class AlertRuleForm(forms.ModelForm):
    """Create or edit a rule; ``alert_rule_validate`` (the API's check too) has the last word."""

    webhook_url = forms.URLField(
        max_length=1000,
        required=False,
        assume_scheme="https",
        help_text="POSTed a signed JSON body (optional); the secret is shown on the rule's page.",
    )

    class Meta:
        model = AlertRule
        fields = [f for f in RULE_FIELDS if f != "webhook_secret"]
        help_texts = {
            "threshold": "Level rules: a mean sentiment in [-1, 1]. Change rules: +0.3 fires on a rise of at "
            "least 0.3, -0.3 on a fall. Volume spikes: a z-score (e.g. 3).",
            "window": "Buckets the condition looks at (change rules compare two windows of this size).",
            "baseline": "Volume spikes: buckets before the current one that make the baseline.",
            "min_volume": "Fewer mentions than this in the window never fire.",
            "cooldown_s": "Seconds after an alert before the same rule fires again for the same entity.",
            "notify_email": "Comma-separated addresses (optional).",
        }
        labels = {"width_s": "Bucket width", "cooldown_s": "Cooldown (seconds)"}
        widgets = {"notify_email": forms.TextInput()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["entity"].queryset = Entity.objects.filter(active=True)
        self.fields["entity"].required = False
        self.fields["watchlist"].required = False

    def clean(self) -> dict[str, Any]:
        """The service's checks, on the rule as it would be saved: they say what to fix where
        the database constraint (entity xor watchlist) would only name itself."""
        data = super().clean()
        if not self.errors:
            probe = AlertRule(pk=self.instance.pk, **{name: data.get(name) for name in self.Meta.fields})
            alert_rule_validate(probe)
        return data

    def _post_clean(self) -> None:
        if not self.errors:  # else the model's own validation would repeat the same complaint
            super()._post_clean()


class CorrectionForm(forms.Form):
    label = forms.ChoiceField(choices=Label.choices)
    entity = forms.ModelChoiceField(
        queryset=Entity.objects.none(), required=False, empty_label="the whole document", to_field_name="symbol"
    )

    def __init__(self, *args: Any, document: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if document is not None:
            self.fields["entity"].queryset = Entity.objects.filter(mentions__document=document).distinct()


class CorrectionsExportForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="Dataset name (default: with today's date).")


class BacktestForm(forms.Form):
    """The fields of ``BacktestParams``, with its bounds and help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for f in param_fields():
            self.fields[f.name] = _param_field(f)

    def params(self) -> BacktestParams:
        data = dict(self.cleaned_data)
        data["symbols"] = tuple(s for s in data.get("symbols", "").replace(",", " ").split() if s)
        return BacktestParams(**data)


def _param_field(f: dataclasses.Field) -> forms.Field:
    meta, default = f.metadata, f.default
    common = {"help_text": meta["help"], "label": f.name.replace("_", " ").capitalize()}
    if f.name == "basis":
        return forms.ChoiceField(choices=[(b, b) for b in basis_choices()], initial=default, **common)
    if f.name in ("since", "until"):
        return forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), **common)
    if f.name == "symbols":
        return forms.CharField(required=False, max_length=1000, **common)
    field_class = forms.IntegerField if isinstance(default, int) else forms.FloatField
    return field_class(min_value=meta["low"], max_value=meta["high"], initial=default, **common)


class SeriesViewForm(forms.Form):
    """The entity page's chart switches (GET)."""

    width = forms.TypedChoiceField(choices=SeriesBucket.Width.choices, coerce=int, required=False)
    basis = forms.CharField(max_length=120, required=False)
