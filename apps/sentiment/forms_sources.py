"""Forms of the sources and watchlist pages; the services (sources, uploads, watchlist) validate."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.sentiment.models import Entity, Watchlist


class FeedForm(forms.Form):
    name = forms.CharField(max_length=200)
    url = forms.URLField(
        max_length=1000, label="Feed URL", assume_scheme="https", help_text="An RSS or Atom feed (http or https)."
    )
    poll_interval_s = forms.IntegerField(min_value=60, max_value=86_400, initial=300, label="Poll every (seconds)")


class UploadForm(forms.Form):
    file = forms.FileField(
        help_text="CSV with a header (text required; title, published_at, url, external_id, "
        "language optional) or JSON lines with the same keys; UTF-8."
    )
    format = forms.ChoiceField(
        choices=[("", "from the file name"), ("csv", "CSV"), ("jsonl", "JSON lines")], required=False
    )


def _names(raw: str) -> list[str]:
    return [part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()]


class EntityForm(forms.Form):
    symbol = forms.CharField(max_length=15, help_text="Ticker, e.g. AAPL or BRK.B (a cashtag $AAPL matches it).")
    name = forms.CharField(max_length=200, help_text="Company name as news writes it, e.g. Apple Inc.")
    aliases = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Other names, comma-separated or one per line (e.g. Apple, iPhone maker).",
    )
    exchange = forms.CharField(max_length=20, required=False, help_text="e.g. NASDAQ (matches NASDAQ:AAPL).")
    active = forms.BooleanField(required=False, initial=True, help_text="Inactive entities are not linked.")

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if editing:  # scores and series are filed under the symbol: it does not change
            self.fields["symbol"].disabled = True

    @staticmethod
    def initial_for(entity: Entity) -> dict[str, Any]:
        return {
            "symbol": entity.symbol,
            "name": entity.name,
            "aliases": "\n".join(entity.aliases or []),
            "exchange": entity.exchange,
            "active": entity.active,
        }

    def values(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["aliases"] = _names(data.get("aliases", ""))
        return data


class WatchlistForm(forms.Form):
    name = forms.CharField(max_length=100)
    symbols = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Symbols on the watchlist, comma- or space-separated.",
    )

    @staticmethod
    def initial_for(watchlist: Watchlist) -> dict[str, Any]:
        return {"name": watchlist.name, "symbols": ", ".join(watchlist.entities.values_list("symbol", flat=True))}

    def symbol_list(self) -> list[str]:
        return [s for s in self.cleaned_data.get("symbols", "").replace(",", " ").split() if s]
