"""Dashboard forms; they check shapes, the services decide (twins of the API serializers)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from apps.chat.services.articles import TITLE_MAX


class ArticleForm(forms.Form):
    title = forms.CharField(max_length=TITLE_MAX)
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 18, "class": "kb-editor"}),
        required=False,
        strip=False,
        max_length=settings.TRELLIS_KB_MAX_BODY_CHARS,
        help_text="Markdown: # headings, **bold**, lists, [links](https://…). Raw HTML shows as text.",
    )
    tags = forms.CharField(required=False, max_length=1000, help_text="Separated by commas.")
    published = forms.BooleanField(required=False, help_text="Published articles answer customers.")

    def values(self) -> dict[str, Any]:
        return dict(self.cleaned_data)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        files = data if isinstance(data, list | tuple) else [data] if data else []
        if not files and self.required:
            raise forms.ValidationError("Choose at least one file.")
        return [super(MultipleFileField, self).clean(f, initial) for f in files]


class KbImportForm(forms.Form):
    files = MultipleFileField(
        help_text="Markdown (.md: one article each), HTML (.html), JSON (a list of "
        "{title, body, tags, published}) or CSV (title,body,tags,published)."
    )
    publish = forms.BooleanField(required=False, help_text="Publish the items that do not say themselves.")
