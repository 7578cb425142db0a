"""Forms of the learning-loop pages; the API validates the same fields with its serializers."""

from __future__ import annotations

from django import forms

from apps.chat.services.analytics import MAX_DAYS
from apps.chat.services.learning import KINDS

KIND_LABELS = {"intent": "Intent dataset (text, label)", "chat": "Chat-LM dataset (JSONL transcripts)"}


class ExportForm(forms.Form):
    kind = forms.ChoiceField(choices=[(k, KIND_LABELS[k]) for k in KINDS], label="Dataset")
    since = forms.DateField(required=False, label="From (day included)", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To (day included)", widget=forms.DateInput(attrs={"type": "date"}))


class DaysForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=MAX_DAYS, initial=30, label="Days back")

    def days_or_default(self) -> int:
        return self.cleaned_data["days"] if self.is_valid() else 30
