"""Learning-loop pages under ``/chat/`` (agents and admins): dataset exports, unanswered
questions, analytics. They call the same services as ``apps.chat.api_insights``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.roles import Role, role_required
from apps.chat.api_insights import export_payload, write_article_url
from apps.chat.forms_insights import DaysForm, ExportForm
from apps.chat.services.analytics import chat_analytics
from apps.chat.services.learning import (
    MIN_INTENT_ROWS,
    MIN_TRANSCRIPTS,
    ExportRejected,
    dataset_export,
    feedback_datasets,
)
from apps.chat.services.unanswered import unanswered_questions

agents = role_required(Role.AGENT)


def _days(request: HttpRequest) -> tuple[DaysForm, int]:
    form = DaysForm(request.GET or {"days": 30})
    return form, form.days_or_default()


@agents
def exports(request: HttpRequest) -> HttpResponse:
    form = ExportForm(request.POST or None)
    result = rejected = None
    if request.method == "POST" and form.is_valid():
        try:
            result = export_payload(dataset_export(**form.cleaned_data, user=request.user))
        except ExportRejected as exc:
            rejected = {"message": str(exc), "counts": exc.counts}
    return render(
        request,
        "chat/exports.html",
        {
            "form": form,
            "result": result,
            "rejected": rejected,
            "datasets": feedback_datasets(),
            "min_intent_rows": MIN_INTENT_ROWS,
            "min_transcripts": MIN_TRANSCRIPTS,
        },
    )


@agents
def unanswered(request: HttpRequest) -> HttpResponse:
    form, days = _days(request)
    report = unanswered_questions(days=days)
    groups = [(group, write_article_url(group.question)) for group in report.groups]
    return render(request, "chat/unanswered.html", {"form": form, "report": report, "groups": groups})


@agents
def analytics(request: HttpRequest) -> HttpResponse:
    form, days = _days(request)
    return render(request, "chat/analytics.html", {"form": form, "data": chat_analytics(days=days)})
