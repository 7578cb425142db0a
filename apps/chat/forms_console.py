"""Forms of the agent console's pages; they check shapes, ``services.saved_replies`` decides."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.chat.services.saved_replies import SHORTCUT_MAX, TITLE_MAX, text_max_chars


class SavedReplyForm(forms.Form):
    shortcut = forms.CharField(
        max_length=SHORTCUT_MAX + 1,  # a leading "/" is allowed and dropped
        help_text="Typed as /shortcut in the console's reply box: lower-case letters, digits, - and _.",
    )
    title = forms.CharField(max_length=TITLE_MAX, help_text="Shown in the console's picker.")
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}), max_length=text_max_chars(), strip=False, help_text="What is sent."
    )

    def values(self) -> dict[str, Any]:
        return dict(self.cleaned_data)
