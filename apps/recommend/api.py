"""The recommend API: thin views that validate, call one service and serialize the result.

Merchandisers and admins (session or API token) use every endpoint except the widget ones;
a shop's server integrates with an API token of a merchandiser user. The widget endpoints
(``widget_api.py``) take a public widget key instead and answer only origins that key lists.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import HasRole
from apps.accounts.roles import Role
from apps.core.api import drf_validation_error, validated
from apps.core.errors import error_body
from apps.core.schema import ErrorSerializer
from apps.recommend import serializers as s
from apps.recommend.models import ABTest, CatalogueImport, EvaluationRun, Item
from apps.recommend.services.abtests import abtest_create, abtest_results, abtest_stop
from apps.recommend.services.background import enqueue
from apps.recommend.services.catalogue import (
    ImportRejected,
    catalogue_import_create,
    item_create,
    item_delete,
    item_update,
)
from apps.recommend.services.evaluation import evaluation_create
from apps.recommend.services.events import event_batch_ingest, session_merge
from apps.recommend.services.recommendations import (
    NotReady,
    RecommendationList,
    impression_click,
    impressions_save,
    recommendation_list,
    similar_list,
)

Merchandiser = HasRole.of(Role.MERCHANDISER)
ERROR = OpenApiResponse(ErrorSerializer, description="See the error's code and message.")
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such impression (or item).")
NOT_READY = OpenApiResponse(ErrorSerializer, description="No recommender fitted yet (code recommender_not_ready).")


class RecommendPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


def _item_or_404(external_id: str) -> Item:
    item = Item.objects.filter(external_id=external_id).defer("embedding").first()
    if item is None:
        raise Http404
    return item


def _not_ready(exc: NotReady) -> Response:
    return Response(error_body("recommender_not_ready", str(exc)), status=status.HTTP_503_SERVICE_UNAVAILABLE)


class ImpressionsAfterResponse(Response):
    """Stores the list's impressions in ``close()``, which the server calls once the body is
    sent: the shopper does not wait for the write (their ids are in the body already)."""

    def __init__(self, data: Any, result: RecommendationList) -> None:
        super().__init__(data)
        self._recommendations = result

    def close(self) -> None:
        try:
            impressions_save(self._recommendations)
        finally:
            super().close()


# --- catalogue


class ItemListCreateApi(APIView):
    permission_classes = (Merchandiser,)
    pagination_class = RecommendPagination

    @extend_schema(
        operation_id="recommend_items_list",
        parameters=[s.ItemFilterSerializer],
        responses={200: s.ItemOutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        filters = validated(s.ItemFilterSerializer, request.query_params)
        items = Item.objects.defer("embedding")
        if filters.get("q"):
            items = items.filter(Q(title__icontains=filters["q"]) | Q(external_id__icontains=filters["q"]))
        if filters.get("category"):
            items = items.filter(category=filters["category"])
        paginator = RecommendPagination()
        page = paginator.paginate_queryset(items, request, view=self)
        return paginator.get_paginated_response(s.ItemOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="recommend_items_create", request=s.ItemInputSerializer, responses={201: s.ItemOutputSerializer}
    )
    def post(self, request: Request) -> Response:
        data = validated(s.ItemInputSerializer, request.data)
        try:
            item = item_create(values=dict(data))
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.ItemOutputSerializer(item).data, status=status.HTTP_201_CREATED)


class ItemDetailApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(operation_id="recommend_items_retrieve", responses={200: s.ItemOutputSerializer})
    def get(self, request: Request, external_id: str) -> Response:
        return Response(s.ItemOutputSerializer(_item_or_404(external_id)).data)

    @extend_schema(
        operation_id="recommend_items_update", request=s.ItemInputSerializer, responses={200: s.ItemOutputSerializer}
    )
    def patch(self, request: Request, external_id: str) -> Response:
        item = _item_or_404(external_id)
        data = validated(s.ItemInputSerializer, request.data)
        try:
            item = item_update(item=item, values=dict(data))
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.ItemOutputSerializer(item).data)

    @extend_schema(operation_id="recommend_items_destroy", responses={204: None})
    def delete(self, request: Request, external_id: str) -> Response:
        item_delete(item=_item_or_404(external_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CatalogueImportCreateApi(APIView):
    """Upload a CSV or JSON-lines catalogue. A file that cannot be read as a whole is refused
    (400, code import_rejected, nothing stored); bad rows are listed by line and skipped."""

    permission_classes = (Merchandiser,)
    parser_classes = (MultiPartParser, FormParser)

    @extend_schema(
        operation_id="recommend_imports_create",
        request={"multipart/form-data": s.CatalogueImportInputSerializer},
        responses={202: s.CatalogueImportOutputSerializer, 400: ERROR},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.CatalogueImportInputSerializer, request.data)
        try:
            run = catalogue_import_create(uploaded_file=data["file"], file_format=data.get("format"), user=request.user)
        except ImportRejected as exc:
            return Response(error_body("import_rejected", str(exc)), status=status.HTTP_400_BAD_REQUEST)
        return Response(s.CatalogueImportOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class CatalogueImportDetailApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(operation_id="recommend_imports_retrieve", responses={200: s.CatalogueImportOutputSerializer})
    def get(self, request: Request, pk: int) -> Response:
        run = CatalogueImport.objects.filter(pk=pk).first()
        if run is None:
            raise Http404
        return Response(s.CatalogueImportOutputSerializer(run).data)


# --- events, clicks


class EventBatchApi(APIView):
    """Up to TRELLIS_RECOMMEND_MAX_EVENTS events; unknown items are rejected per event."""

    permission_classes = (Merchandiser,)

    @extend_schema(
        operation_id="recommend_events_create",
        request=s.EventBatchInputSerializer,
        responses={200: s.EventBatchOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.EventBatchInputSerializer, request.data)
        result = event_batch_ingest([dict(e) for e in data["events"]])
        return Response(s.EventBatchOutputSerializer(result).data)


class SessionMergeApi(APIView):
    """Call on a shopper's login: their anonymous session's events become theirs."""

    permission_classes = (Merchandiser,)

    @extend_schema(
        operation_id="recommend_sessions_merge",
        request=s.SessionMergeInputSerializer,
        responses={200: s.SessionMergeOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.SessionMergeInputSerializer, request.data)
        return Response({"merged": session_merge(session_key=data["session"], user_key=data["user"])})


class ClickApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(
        operation_id="recommend_clicks_create",
        request=s.ClickInputSerializer,
        responses={200: s.ClickOutputSerializer, 404: NOT_FOUND},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.ClickInputSerializer, request.data)
        impression = impression_click(impression_id=data["impression_id"])
        if impression is None:
            raise Http404
        return Response(s.ClickOutputSerializer(impression).data)


# --- recommendations


class UserRecommendationsApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(
        operation_id="recommend_users_recommendations",
        parameters=[s.RecommendQuerySerializer],
        responses={200: s.RecommendationListOutputSerializer, 503: NOT_READY},
    )
    def get(self, request: Request, user_key: str) -> Response:
        query = validated(s.RecommendQuerySerializer, request.query_params)
        try:
            result = recommendation_list(
                user_key=user_key,
                session_key=query["session"],
                k=query["k"],
                category=query["category"],
                exclude_category=query["exclude_category"],
                log_later=True,
            )
        except NotReady as exc:
            return _not_ready(exc)
        return ImpressionsAfterResponse(s.recommendation_list_data(result), result)


class ItemSimilarApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(
        operation_id="recommend_items_similar",
        parameters=[s.SimilarQuerySerializer],
        responses={200: s.RecommendationListOutputSerializer},
    )
    def get(self, request: Request, external_id: str) -> Response:
        query = validated(s.SimilarQuerySerializer, request.query_params)
        result = similar_list(item=_item_or_404(external_id), k=query["k"], log_later=True)
        return ImpressionsAfterResponse(s.recommendation_list_data(result), result)


# --- model work on demand


class IndexRebuildApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(operation_id="recommend_index_rebuild", request=None, responses={202: s.TaskQueuedSerializer})
    def post(self, request: Request) -> Response:
        enqueue("item_index_build_task")
        return Response({"queued": "item_index_build"}, status=status.HTTP_202_ACCEPTED)


class FitApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(operation_id="recommend_fit", request=None, responses={202: s.TaskQueuedSerializer})
    def post(self, request: Request) -> Response:
        enqueue("recommenders_fit_task")
        return Response({"queued": "recommenders_fit"}, status=status.HTTP_202_ACCEPTED)


# --- A/B tests


def _abtest_payload(test: ABTest) -> dict[str, Any]:
    return s.ABTestOutputSerializer(
        {
            **{f: getattr(test, f) for f in ("id", "name", "status", "variants", "winner", "created_at", "stopped_at")},
            "results": abtest_results(test),
        }
    ).data


class ABTestListCreateApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(operation_id="recommend_abtests_list", responses={200: s.ABTestOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(s.ABTestOutputSerializer(ABTest.objects.all()[:100], many=True).data)

    @extend_schema(
        operation_id="recommend_abtests_create",
        request=s.ABTestInputSerializer,
        responses={201: s.ABTestOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.ABTestInputSerializer, request.data)
        try:
            test = abtest_create(name=data["name"], variants=[dict(v) for v in data["variants"]], user=request.user)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(_abtest_payload(test), status=status.HTTP_201_CREATED)


def _abtest_or_404(pk: int) -> ABTest:
    test = ABTest.objects.filter(pk=pk).first()
    if test is None:
        raise Http404
    return test


class ABTestDetailApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(operation_id="recommend_abtests_retrieve", responses={200: s.ABTestOutputSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(_abtest_payload(_abtest_or_404(pk)))


class ABTestStopApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(
        operation_id="recommend_abtests_stop",
        request=s.ABTestStopInputSerializer,
        responses={200: s.ABTestOutputSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        test = _abtest_or_404(pk)
        data = validated(s.ABTestStopInputSerializer, request.data)
        try:
            test = abtest_stop(test=test, winner=data["winner"], make_default=data["make_default"])
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(_abtest_payload(test))


# --- offline evaluation


class EvaluationListCreateApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(operation_id="recommend_evaluations_list", responses={200: s.EvaluationOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(s.EvaluationOutputSerializer(EvaluationRun.objects.all()[:100], many=True).data)

    @extend_schema(
        operation_id="recommend_evaluations_create",
        request=s.EvaluationInputSerializer,
        responses={202: s.EvaluationOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.EvaluationInputSerializer, request.data)
        run = evaluation_create(cutoff=data["cutoff"], k=data["k"], kinds=data["kinds"], user=request.user)
        return Response(s.EvaluationOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class EvaluationDetailApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(operation_id="recommend_evaluations_retrieve", responses={200: s.EvaluationOutputSerializer})
    def get(self, request: Request, pk: int) -> Response:
        run = EvaluationRun.objects.filter(pk=pk).first()
        if run is None:
            raise Http404
        return Response(s.EvaluationOutputSerializer(run).data)
