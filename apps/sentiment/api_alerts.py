"""The alert side of ``/api/sentiment/``: alerts (list, acknowledge, resolve), alert rules,
corrections (and their export as a training dataset), backtests, and explanations.

Thin views: validate, call one service, serialize. Analysts and admins only (session or API
token): anonymous callers get 401, other roles 403; errors in the Trellis shape.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import HasRole
from apps.accounts.roles import Role
from apps.core.api import drf_validation_error, first_or_404, paginated, validated
from apps.core.schema import ErrorSerializer
from apps.mlops.services.explain import model_version_explain
from apps.sentiment import serializers_alerts as s
from apps.sentiment.models import Alert, AlertRule, BacktestRun, Document, Entity
from apps.sentiment.services.alert_rules import (
    alert_acknowledge,
    alert_list,
    alert_resolve,
    alert_rule_delete,
    alert_rule_list,
    alert_rule_save,
)
from apps.sentiment.services.backtest import BacktestParams, backtest_run
from apps.sentiment.services.corrections import correction_list, correction_save, corrections_export
from apps.sentiment.services.document_explain import NotExplainable, document_explain_plan
from apps.serving.asyncapi import AsyncApiView
from ml.explain import ExplainError

Analyst = HasRole.of(Role.ANALYST)
ERROR = OpenApiResponse(ErrorSerializer, description="See the error's code and message.")
CONFLICT = OpenApiResponse(ErrorSerializer, description="The alert is resolved already (code invalid_state).")


class SentimentPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class InvalidState(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "invalid_state"
    default_detail = "The object is not in a state that allows this."


class ModelUnavailableError(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "model_unavailable"
    default_detail = "No sentiment model can explain this here."


# --- alerts


class AlertListApi(APIView):
    permission_classes = (Analyst,)
    pagination_class = SentimentPagination

    @extend_schema(
        operation_id="sentiment_alerts_list",
        parameters=[s.AlertFilterSerializer],
        responses={200: s.AlertOutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        filters = validated(s.AlertFilterSerializer, request.query_params)
        return paginated(self, request, alert_list(**filters), s.AlertOutputSerializer, SentimentPagination)


class AlertDetailApi(APIView):
    permission_classes = (Analyst,)

    @extend_schema(operation_id="sentiment_alerts_retrieve", responses={200: s.AlertDetailSerializer})
    def get(self, request: Request, pk: int) -> Response:
        alert = first_or_404(alert_list().prefetch_related("deliveries"), pk=pk)
        return Response(s.AlertDetailSerializer(alert).data)


class AlertAcknowledgeApi(APIView):
    permission_classes = (Analyst,)

    @extend_schema(
        operation_id="sentiment_alerts_acknowledge",
        request=None,
        responses={200: s.AlertOutputSerializer, 409: CONFLICT},
    )
    def post(self, request: Request, pk: int) -> Response:
        try:
            alert = alert_acknowledge(alert=first_or_404(Alert.objects, pk=pk), user=request.user)
        except DjangoValidationError as exc:
            raise InvalidState(" ".join(exc.messages)) from exc
        return Response(s.AlertOutputSerializer(alert_list().get(pk=alert.pk)).data)


class AlertResolveApi(APIView):
    permission_classes = (Analyst,)

    @extend_schema(operation_id="sentiment_alerts_resolve", request=None, responses={200: s.AlertOutputSerializer})
    def post(self, request: Request, pk: int) -> Response:
        alert = alert_resolve(alert=first_or_404(Alert.objects, pk=pk), user=request.user)
        return Response(s.AlertOutputSerializer(alert_list().get(pk=alert.pk)).data)


# --- rules


class AlertRuleListCreateApi(APIView):
    permission_classes = (Analyst,)
    pagination_class = SentimentPagination

    @extend_schema(operation_id="sentiment_rules_list", responses={200: s.AlertRuleSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return paginated(self, request, alert_rule_list(), s.AlertRuleSerializer, SentimentPagination)

    @extend_schema(
        operation_id="sentiment_rules_create", request=s.AlertRuleSerializer, responses={201: s.AlertRuleSerializer}
    )
    def post(self, request: Request) -> Response:
        values = validated(s.AlertRuleSerializer, request.data)
        try:
            rule = alert_rule_save(values=dict(values), user=request.user, request=request)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.AlertRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class AlertRuleDetailApi(APIView):
    permission_classes = (Analyst,)

    @extend_schema(operation_id="sentiment_rules_retrieve", responses={200: s.AlertRuleSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.AlertRuleSerializer(first_or_404(alert_rule_list(), pk=pk)).data)

    @extend_schema(
        operation_id="sentiment_rules_update", request=s.AlertRuleSerializer, responses={200: s.AlertRuleSerializer}
    )
    def patch(self, request: Request, pk: int) -> Response:
        rule = first_or_404(AlertRule.objects, pk=pk)
        values = validated(s.AlertRuleSerializer, request.data, instance=rule, partial=True)
        try:
            rule = alert_rule_save(values=dict(values), rule=rule, user=request.user, request=request)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.AlertRuleSerializer(rule).data)

    @extend_schema(operation_id="sentiment_rules_destroy", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        alert_rule_delete(rule=first_or_404(AlertRule.objects, pk=pk), user=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- corrections


class CorrectionListCreateApi(APIView):
    permission_classes = (Analyst,)
    pagination_class = SentimentPagination

    @extend_schema(operation_id="sentiment_corrections_list", responses={200: s.CorrectionOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return paginated(self, request, correction_list(), s.CorrectionOutputSerializer, SentimentPagination)

    @extend_schema(
        operation_id="sentiment_corrections_create",
        request=s.CorrectionInputSerializer,
        responses={201: s.CorrectionOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.CorrectionInputSerializer, request.data)
        document = Document.objects.filter(pk=data["document"]).first()
        if document is None:
            raise serializers.ValidationError({"document": [f"No document {data['document']}."]})
        entity = None
        if data.get("entity"):
            entity = Entity.objects.filter(symbol=data["entity"].upper()).first()
            if entity is None:
                raise serializers.ValidationError({"entity": [f"No entity {data['entity']!r}."]})
        try:
            correction = correction_save(
                document=document, label=data["label"], entity=entity, user=request.user, request=request
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.CorrectionOutputSerializer(correction).data, status=status.HTTP_201_CREATED)


class CorrectionsExportApi(APIView):
    permission_classes = (Analyst,)

    @extend_schema(
        operation_id="sentiment_corrections_export",
        request=s.CorrectionsExportInputSerializer,
        responses={201: s.CorrectionsExportOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.CorrectionsExportInputSerializer, request.data)
        try:
            dataset = corrections_export(user=request.user, name=data.get("name", ""), request=request)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        body = {"dataset": dataset.pk, "rows": dataset.rows, "label_counts": dataset.label_counts}
        return Response(s.CorrectionsExportOutputSerializer(body).data, status=status.HTTP_201_CREATED)


# --- backtests


class BacktestListCreateApi(APIView):
    permission_classes = (Analyst,)
    pagination_class = SentimentPagination

    @extend_schema(operation_id="sentiment_backtests_list", responses={200: s.BacktestOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return paginated(self, request, BacktestRun.objects.all(), s.BacktestOutputSerializer, SentimentPagination)

    @extend_schema(
        operation_id="sentiment_backtests_create",
        request=s.BacktestInputSerializer,
        responses={201: s.BacktestOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = dict(validated(s.BacktestInputSerializer, request.data))
        data["symbols"] = tuple(data.get("symbols") or ())
        try:
            run = backtest_run(params=BacktestParams(**data), user=request.user)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.BacktestOutputSerializer(run).data, status=status.HTTP_201_CREATED)


class BacktestDetailApi(APIView):
    permission_classes = (Analyst,)

    @extend_schema(operation_id="sentiment_backtests_retrieve", responses={200: s.BacktestOutputSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.BacktestOutputSerializer(first_or_404(BacktestRun.objects, pk=pk)).data)


# --- explanations


class DocumentExplainApi(AsyncApiView):
    """Which words of the document made the model choose its label (integrated gradients for
    fine-tuned transformers, occlusion for heads on frozen embeddings)."""

    permission_classes = (Analyst,)
    input_serializer = s.ExplainInputSerializer

    def prepare(self, request: Request, data: Any) -> Any:
        document = first_or_404(Document.objects, pk=self.kwargs["pk"])
        try:
            return document.pk, document_explain_plan(document, target=data.get("target"))
        except NotExplainable as exc:
            raise ModelUnavailableError(str(exc)) from exc

    @extend_schema(
        operation_id="sentiment_documents_explain",
        request=s.ExplainInputSerializer,
        responses={
            200: s.ExplainOutputSerializer,
            503: OpenApiResponse(
                ErrorSerializer,
                description="No sentiment model can be loaded here to explain it (code model_unavailable).",
            ),
        },
    )
    async def post(self, request: Request, pk: int) -> Response:
        document_id, plan = self.prepared
        try:
            explanations = await model_version_explain(
                classifier=plan.classifier, texts=[plan.text], target=plan.target
            )
        except ExplainError as exc:
            raise serializers.ValidationError({exc.field: [exc.message]}) from exc
        body = {
            "document": document_id,
            "version": plan.version,
            "scored_by": plan.scored_by,
            "truncated": plan.truncated,
            "note": plan.note,
            "explanation": explanations[0],
        }
        return Response(s.ExplainOutputSerializer(body).data)
