"""Analyst pages for what comes in: sources (feed health, add a feed, upload a file) and the
watchlist (entities with their names and aliases, watchlists of them).

Thin: the services are the ingestion side's (``services/sources.py``, ``uploads.py``,
``watchlist.py``), the same the API calls.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.roles import Role, role_required
from apps.sentiment.forms_sources import EntityForm, FeedForm, UploadForm, WatchlistForm
from apps.sentiment.models import Entity, Source, Watchlist
from apps.sentiment.services.background import enqueue
from apps.sentiment.services.sources import source_create
from apps.sentiment.services.uploads import UploadRejected, documents_upload
from apps.sentiment.services.watchlist import (
    entity_create,
    entity_update,
    watchlist_create,
    watchlist_update,
)

analysts = role_required(Role.ANALYST)


def _object_or_404(model: Any, **lookup: Any) -> Any:
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        raise Http404("No such object.")
    return obj


def _sources_page(
    request: HttpRequest,
    *,
    feed_form: FeedForm | None = None,
    upload_form: UploadForm | None = None,
    report: Any = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "sentiment/sources.html",
        {
            "sources": Source.objects.all(),
            "feed_form": feed_form or FeedForm(),
            "upload_form": upload_form or UploadForm(),
            "report": report,
        },
        status=status,
    )


@analysts
def source_index(request: HttpRequest) -> HttpResponse:
    """GET: every source with its health. POST: add a feed."""
    if request.method != "POST":
        return _sources_page(request)
    form = FeedForm(request.POST)
    if form.is_valid():
        try:
            source = source_create(
                values={**form.cleaned_data, "kind": Source.Kind.FEED}, user=request.user, request=request
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            enqueue("source_poll_task", source.pk)
            messages.success(
                request, f"Feed {source.name!r} added; a worker polls it now and every {source.poll_interval_s} s."
            )
            return redirect("sentiment:sources")
    return _sources_page(request, feed_form=form, status=400)


@analysts
@require_POST
def source_upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _sources_page(request, upload_form=form, status=400)
    upload = form.cleaned_data["file"]
    try:
        report = documents_upload(
            data=upload.read(), filename=upload.name, file_format=form.cleaned_data["format"] or None
        )
    except UploadRejected as exc:
        form.add_error("file", str(exc))
        return _sources_page(request, upload_form=form, status=400)
    return _sources_page(request, report=report)


@analysts
@require_POST
def source_poll(request: HttpRequest, pk: int) -> HttpResponse:
    source = _object_or_404(Source, pk=pk, kind=Source.Kind.FEED)
    enqueue("source_poll_task", source.pk)
    messages.info(request, f"{source.name} is being polled by a worker; reload to see the result.")
    return redirect("sentiment:sources")


# --- watchlist


def _watchlist_page(
    request: HttpRequest,
    *,
    entity_form: EntityForm | None = None,
    watchlist_form: WatchlistForm | None = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "sentiment/watchlists.html",
        {
            "entities": Entity.objects.prefetch_related("watchlists"),
            "watchlists": Watchlist.objects.prefetch_related("entities"),
            "entity_form": entity_form or EntityForm(),
            "watchlist_form": watchlist_form or WatchlistForm(),
        },
        status=status,
    )


@analysts
def watchlist_index(request: HttpRequest) -> HttpResponse:
    """GET: entities and watchlists. POST ``entity``: add an entity; POST ``watchlist``: add a watchlist."""
    if request.method != "POST":
        return _watchlist_page(request)
    if "watchlist" in request.POST:
        form = WatchlistForm(request.POST)
        if form.is_valid():
            try:
                watchlist_create(
                    name=form.cleaned_data["name"], symbols=form.symbol_list(), user=request.user, request=request
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Watchlist {form.cleaned_data['name']!r} created.")
                return redirect("sentiment:watchlists")
        return _watchlist_page(request, watchlist_form=form, status=400)
    form = EntityForm(request.POST)
    if form.is_valid():
        try:
            entity = entity_create(values=form.values(), user=request.user, request=request)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"{entity.symbol} added: new documents naming it are linked to it.")
            return redirect("sentiment:watchlists")
    return _watchlist_page(request, entity_form=form, status=400)


@analysts
def watchlist_detail(request: HttpRequest, pk: int) -> HttpResponse:
    watchlist = _object_or_404(Watchlist, pk=pk)
    form = WatchlistForm(request.POST or None, initial=WatchlistForm.initial_for(watchlist))
    if request.method == "POST" and form.is_valid():
        try:
            watchlist_update(
                watchlist=watchlist,
                name=form.cleaned_data["name"],
                symbols=form.symbol_list(),
                user=request.user,
                request=request,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Watchlist saved.")
            return redirect("sentiment:watchlists")
    status = 400 if request.method == "POST" else 200
    return render(request, "sentiment/watchlist_detail.html", {"watchlist": watchlist, "form": form}, status=status)


@analysts
def entity_edit(request: HttpRequest, symbol: str) -> HttpResponse:
    entity = _object_or_404(Entity, symbol=symbol.upper())
    form = EntityForm(request.POST or None, initial=EntityForm.initial_for(entity), editing=True)
    if request.method == "POST" and form.is_valid():
        try:
            entity_update(entity=entity, values=form.values(), user=request.user, request=request)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"{entity.symbol} saved.")
            return redirect("sentiment:entity", symbol=entity.symbol)
    status = 400 if request.method == "POST" else 200
    return render(request, "sentiment/entity_edit.html", {"entity": entity, "form": form}, status=status)
