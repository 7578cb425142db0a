"""Dashboard forms; they validate shapes, the services decide (the API serializers' twins)."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.recommend.models import CatalogueImport, EventKind
from apps.recommend.services.blends import DEFAULT_WEIGHTS, MEMBERS


class CatalogueImportForm(forms.Form):
    file = forms.FileField(help_text="CSV with a header (external_id,title,description,category,price,available,"
                                     "attributes) or JSON lines with the same keys.")
    format = forms.ChoiceField(choices=[("", "from the file name"), *CatalogueImport.Format.choices], required=False)


class ABTestForm(forms.Form):
    """Two variants, each a blend: a name and one weight per recommender."""

    name = forms.CharField(max_length=100)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for prefix, label, tweak in (("a", "A", {}), ("b", "B", {"popularity": 1.0})):
            self.fields[f"{prefix}_name"] = forms.CharField(max_length=40, initial=label, label=f"Variant {label} name")
            for member in MEMBERS:
                self.fields[f"{prefix}_{member}"] = forms.FloatField(
                    min_value=0, max_value=100, initial=tweak.get(member, DEFAULT_WEIGHTS[member]),
                    label=f"{label}: {member} weight")
            self.fields[f"{prefix}_diversity"] = forms.FloatField(
                min_value=0, max_value=1, initial=0, required=False, label=f"{label}: diversity (MMR, 0-1)")

    def variants(self) -> list[dict[str, Any]]:
        data = self.cleaned_data
        return [{"name": data[f"{p}_name"], "weights": {m: data[f"{p}_{m}"] for m in MEMBERS},
                 "diversity": data.get(f"{p}_diversity") or 0.0} for p in ("a", "b")]


class ABTestStopForm(forms.Form):
    winner = forms.CharField(max_length=40, required=False)
    make_default = forms.BooleanField(required=False, label="Make the winner the default blend")


class EvaluationForm(forms.Form):
    cutoff = forms.DateTimeField(help_text="Train on events before it, test on events after (e.g. 2011-10-01).")
    k = forms.IntegerField(min_value=1, max_value=100, initial=10)
    kinds = forms.MultipleChoiceField(choices=EventKind.choices, initial=["purchase"],
                                      widget=forms.CheckboxSelectMultiple)


class WidgetKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    allowed_origins = forms.CharField(help_text="One origin per line, e.g. https://shop.example",
                                      widget=forms.Textarea(attrs={"rows": 3}))

    def origins(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["allowed_origins"].splitlines() if line.strip()]
