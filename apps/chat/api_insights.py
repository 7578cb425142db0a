"""``/api/chat/``: the learning loop's exports, unanswered questions and analytics (agents, admins).

Anonymous callers get 401, other roles 403. Thin views: validate, call one service, return.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import HasRole
from apps.accounts.roles import Role
from apps.chat.services.analytics import MAX_DAYS, chat_analytics
from apps.chat.services.learning import KINDS, ExportRejected, ExportResult, dataset_export
from apps.chat.services.unanswered import unanswered_questions
from apps.core.api import validated
from apps.core.errors import error_body
from apps.core.schema import ErrorSerializer

Agent = HasRole.of(Role.AGENT)
FREE_FORM = inline_serializer("ChatInsights", fields={})


class ExportInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=KINDS, help_text="intent: text,label rows; chat: JSONL transcripts.")
    since = serializers.DateField(required=False, allow_null=True, default=None, help_text="First day (included).")
    until = serializers.DateField(required=False, allow_null=True, default=None, help_text="Last day (included).")


class DaysSerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=MAX_DAYS, default=30, help_text="Days back, today included.")


def export_payload(result: ExportResult) -> dict[str, Any]:
    dataset = result.dataset
    return {
        "dataset_id": dataset.pk,
        "dataset_url": reverse("mlops:dataset", args=[dataset.pk]),
        "name": dataset.name,
        "role": dataset.role,
        "kind": result.kind,
        "rows": dataset.rows,
        "created": result.created,
        "counts": result.counts,
    }


def write_article_url(question: str) -> str:
    from urllib.parse import urlencode

    return f"{reverse('kb:article_new')}?{urlencode({'title': question[:300]})}"


class ChatExportApi(APIView):
    """Builds a dataset from feedback: 201 when new, 200 when the same rows were exported before."""

    permission_classes = (Agent,)

    @extend_schema(
        operation_id="chat_exports_create",
        request=ExportInputSerializer,
        responses={
            201: FREE_FORM,
            200: FREE_FORM,
            400: OpenApiResponse(ErrorSerializer, description="Too little data or a bad range (export_rejected)."),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(ExportInputSerializer, request.data)
        try:
            result = dataset_export(**data, user=request.user)
        except ExportRejected as exc:
            return Response(
                error_body("export_rejected", str(exc), {"counts": exc.counts}), status=status.HTTP_400_BAD_REQUEST
            )
        return Response(
            export_payload(result), status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        )


class ChatUnansweredApi(APIView):
    """Questions the knowledge base could not answer, grouped, most asked first."""

    permission_classes = (Agent,)

    @extend_schema(operation_id="chat_unanswered_list", parameters=[DaysSerializer], responses={200: FREE_FORM})
    def get(self, request: Request) -> Response:
        report = unanswered_questions(**validated(DaysSerializer, request.query_params)).as_dict()
        for group in report["groups"]:
            group["write_article_url"] = write_article_url(group["question"])
        return Response(report)


class ChatAnalyticsApi(APIView):
    """Conversations per day, resolution and hand-off rates, time to first token, intents, thumbs, rating."""

    permission_classes = (Agent,)

    @extend_schema(operation_id="chat_analytics_retrieve", parameters=[DaysSerializer], responses={200: FREE_FORM})
    def get(self, request: Request) -> Response:
        return Response(chat_analytics(**validated(DaysSerializer, request.query_params)))
