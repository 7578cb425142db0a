"""Analyst dashboard: overview with the live feed, entities, documents, alerts, rules,
corrections, backtests. Sources and the watchlist are in ``views_sources.py``.

Every page is for analysts and admins (``role_required``); the pages call the same services
as the API (``api_alerts.py`` and sentcore's ``api.py``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts.roles import Role, role_required
from apps.sentiment.forms import AlertRuleForm, BacktestForm, CorrectionForm, CorrectionsExportForm, SeriesViewForm
from apps.sentiment.models import Alert, AlertDelivery, AlertRule, BacktestRun, Document, Entity, SeriesBucket
from apps.sentiment.services import dashboard
from apps.sentiment.services.alert_rules import (
    alert_acknowledge,
    alert_counts,
    alert_list,
    alert_resolve,
    alert_rule_delete,
    alert_rule_list,
    alert_rule_save,
)
from apps.sentiment.services.backtest import backtest_run
from apps.sentiment.services.corrections import correction_list, correction_save, corrections_export
from apps.sentiment.services.delivery import alert_delivery_retry_now
from apps.sentiment.services.feed_live import live_feed_recent
from apps.sentiment.services.series import series_bases

analysts = role_required(Role.ANALYST)
PAGE_SIZE = 50


def _object_or_404(model_or_queryset: Any, **lookup: Any) -> Any:
    rows = getattr(model_or_queryset, "objects", model_or_queryset)
    obj = rows.filter(**lookup).first()
    if obj is None:
        raise Http404("No such object.")
    return obj


def _page(request: HttpRequest, rows: Any) -> Any:
    return Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))


@analysts
def overview(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "sentiment/overview.html",
        {
            "feed": dashboard.with_segments(live_feed_recent()),
            "tiles": dashboard.watchlist_tiles(dashboard.overview_entities()),
            "counts": alert_counts(),
            "recent_alerts": alert_list(status=Alert.Status.OPEN)[:5],
            "model": dashboard.model_status(),
        },
    )


@analysts
def entity_detail(request: HttpRequest, symbol: str) -> HttpResponse:
    entity = _object_or_404(Entity, symbol=symbol.upper())
    form = SeriesViewForm(request.GET)
    width, basis = SeriesBucket.Width.HOUR.value, SeriesBucket.LIVE
    bases = series_bases(entity) or [SeriesBucket.LIVE]
    if form.is_valid():
        width = form.cleaned_data["width"] or width
        basis = form.cleaned_data["basis"] if form.cleaned_data["basis"] in bases else basis
    return render(
        request,
        "sentiment/entity.html",
        {
            "entity": entity,
            "chart": dashboard.entity_chart(entity=entity, width=width, basis=basis),
            "width": width,
            "basis": basis,
            "bases": bases,
            "widths": SeriesBucket.Width.choices,
            "documents": dashboard.entity_documents(entity),
            "alerts": alert_list(symbol=entity.symbol)[:10],
            "model": dashboard.model_status(),
        },
    )


@analysts
def document_detail(request: HttpRequest, pk: int) -> HttpResponse:
    document = _object_or_404(Document.objects.select_related("source"), pk=pk)
    return _document_page(request, document, CorrectionForm(document=document))


def _document_page(request: HttpRequest, document: Document, form: CorrectionForm, status: int = 200) -> HttpResponse:
    return render(
        request,
        "sentiment/document.html",
        {
            "document": document,
            "detail": dashboard.document_detail(document),
            "form": form,
            "corrections": correction_list().filter(document=document),
            "explain_url": reverse("api-sentiment-document-explain", args=[document.pk]),
            "model": dashboard.model_status(),
        },
        status=status,
    )


@analysts
@require_POST
def document_correct(request: HttpRequest, pk: int) -> HttpResponse:
    document = _object_or_404(Document.objects.select_related("source"), pk=pk)
    form = CorrectionForm(request.POST, document=document)
    if form.is_valid():
        try:
            correction_save(
                document=document,
                label=form.cleaned_data["label"],
                entity=form.cleaned_data["entity"],
                user=request.user,
                request=request,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Thank you: the correction is saved and will be in the next export.")
            return redirect("sentiment:document", pk=document.pk)
    return _document_page(request, document, form, status=400)


# --- alerts


@analysts
def alert_inbox(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", Alert.Status.OPEN)
    if status not in (*Alert.Status.values, "all"):
        status = Alert.Status.OPEN
    alerts = alert_list(status="" if status == "all" else status).prefetch_related("documents")
    counts = alert_counts()
    return render(
        request,
        "sentiment/alerts.html",
        {
            "page_obj": _page(request, alerts),
            "status": status,
            "tabs": [*((v, label, counts[v]) for v, label in Alert.Status.choices), ("all", "All", None)],
        },
    )


@analysts
def alert_detail(request: HttpRequest, pk: int) -> HttpResponse:
    alert = _object_or_404(
        Alert.objects.select_related("rule__watchlist", "entity", "acknowledged_by", "resolved_by"), pk=pk
    )
    return render(
        request,
        "sentiment/alert_detail.html",
        {
            "alert": alert,
            "documents": alert.documents.order_by("-published_at")[:200],
            "deliveries": alert.deliveries.all(),
        },
    )


def _alert_action(request: HttpRequest, pk: int, action: Any, done: str) -> HttpResponse:
    alert = _object_or_404(Alert, pk=pk)
    try:
        action(alert=alert, user=request.user)
        messages.success(request, f"Alert {alert.pk} {done}.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    target = request.POST.get("next", "")
    return redirect(target if target.startswith("/sentiment/") else reverse("sentiment:alerts"))


@analysts
@require_POST
def alert_acknowledge_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _alert_action(request, pk, alert_acknowledge, "acknowledged")


@analysts
@require_POST
def alert_resolve_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _alert_action(request, pk, alert_resolve, "resolved")


@analysts
@require_POST
def delivery_retry_view(request: HttpRequest, pk: int, delivery_pk: int) -> HttpResponse:
    delivery = _object_or_404(AlertDelivery, pk=delivery_pk, alert_id=pk)
    if delivery.status == AlertDelivery.Status.FAILED:
        alert_delivery_retry_now(delivery)
        messages.info(request, f"The {delivery.get_channel_display().lower()} delivery is being retried.")
    return redirect("sentiment:alert", pk=pk)


# --- rules


def _rule_values(form: AlertRuleForm) -> dict[str, Any]:
    return {name: form.cleaned_data[name] for name in form.Meta.fields}


@analysts
def rule_index(request: HttpRequest) -> HttpResponse:
    form = AlertRuleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            rule = alert_rule_save(values=_rule_values(form), user=request.user, request=request)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Rule {rule.name!r} created.")
            return redirect("sentiment:rule", pk=rule.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "sentiment/rules.html", {"rules": alert_rule_list(), "form": form}, status=status)


@analysts
def rule_detail(request: HttpRequest, pk: int) -> HttpResponse:
    rule = _object_or_404(AlertRule, pk=pk)
    form = AlertRuleForm(request.POST or None, instance=rule)
    if request.method == "POST" and form.is_valid():
        try:
            alert_rule_save(values=_rule_values(form), rule=rule, user=request.user, request=request)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Rule saved.")
            return redirect("sentiment:rule", pk=rule.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "sentiment/rule_detail.html",
        {
            "rule": AlertRule.objects.get(pk=rule.pk),
            "form": form,
            "alerts": alert_list().filter(rule=rule)[:20],
        },
        status=status,
    )


@analysts
@require_POST
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = _object_or_404(AlertRule, pk=pk)
    alert_rule_delete(rule=rule, user=request.user, request=request)
    messages.success(request, f"Rule {rule.name!r} deleted.")
    return redirect("sentiment:rules")


# --- corrections and backtests


@analysts
def correction_index(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "sentiment/corrections.html",
        {
            "page_obj": _page(request, correction_list()),
            "export_form": CorrectionsExportForm(),
        },
    )


@analysts
@require_POST
def corrections_export_view(request: HttpRequest) -> HttpResponse:
    form = CorrectionsExportForm(request.POST)
    name = form.cleaned_data["name"] if form.is_valid() else ""
    try:
        dataset = corrections_export(user=request.user, name=name, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("sentiment:corrections")
    messages.success(request, f"Exported as dataset #{dataset.pk} ({dataset.rows} rows): train a model on it here.")
    return redirect("mlops:dataset", pk=dataset.pk)


@analysts
def backtest_index(request: HttpRequest) -> HttpResponse:
    form = BacktestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = backtest_run(params=form.params(), user=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("sentiment:backtest", pk=run.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "sentiment/backtests.html", {"runs": BacktestRun.objects.all()[:50], "form": form}, status=status
    )


@analysts
def backtest_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "sentiment/backtest_detail.html", {"run": _object_or_404(BacktestRun, pk=pk)})
