"""The sentiment API: thin views that validate, call one service and serialize the result.
(Sources and ingestion: ``api_sources.py``.)

Analysts and admins (session or API token) use every endpoint; other roles get 403 and
anonymous callers 401. A news system pushes with an API token of an analyst user.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
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
from apps.sentiment import selectors
from apps.sentiment import serializers as s
from apps.sentiment.models import Entity, Watchlist
from apps.sentiment.services import watchlist as watch
from apps.sentiment.services.prices import PricesRejected, price_list, prices_import_csv
from apps.sentiment.services.scoring import rescore_request
from apps.sentiment.services.series import SeriesQueryError, series_get

Analyst = HasRole.of(Role.ANALYST)
ERROR = OpenApiResponse(ErrorSerializer, description="See the error's code and message.")


class SentimentPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


def _error(code: str, message: str, http: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response(error_body(code, message), status=http)


def _get(model: type, **lookup: Any) -> Any:
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        raise Http404
    return obj


def _entity(symbol: str) -> Entity:
    return _get(Entity, symbol=symbol.strip().lstrip("$").upper())


def _page(view: APIView, request: Request, rows: Any, serializer_class: type[serializers.Serializer]) -> Response:
    paginator = SentimentPagination()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


# --- documents


class DocumentListApi(APIView):
    permission_classes = (Analyst,)
    pagination_class = SentimentPagination

    @extend_schema(
        operation_id="sentiment_documents_list",
        parameters=[s.DocumentFilterSerializer],
        responses={200: s.DocumentOutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        filters = validated(s.DocumentFilterSerializer, request.query_params)
        return _page(self, request, selectors.document_list(**filters), s.DocumentOutputSerializer)


class DocumentDetailApi(APIView):
    permission_classes = (Analyst,)

    @extend_schema(operation_id="sentiment_documents_retrieve", responses={200: s.DocumentDetailSerializer})
    def get(self, request: Request, pk: int) -> Response:
        doc = selectors.document_get(pk)
        if doc is None:
            raise Http404
        return Response(s.DocumentDetailSerializer(doc).data)


# --- entities and watchlists


class EntityListCreateApi(APIView):
    permission_classes = (Analyst,)
    pagination_class = SentimentPagination

    @extend_schema(operation_id="sentiment_entities_list", responses={200: s.EntityOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return _page(self, request, Entity.objects.all(), s.EntityOutputSerializer)

    @extend_schema(
        operation_id="sentiment_entities_create",
        request=s.EntityInputSerializer,
        responses={201: s.EntityOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.EntityInputSerializer, request.data)
        try:
            entity = watch.entity_create(values=dict(data), user=request.user, request=request)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.EntityOutputSerializer(entity).data, status=status.HTTP_201_CREATED)


class EntityDetailApi(APIView):
    permission_classes = (Analyst,)

    @extend_schema(operation_id="sentiment_entities_retrieve", responses={200: s.EntityOutputSerializer})
    def get(self, request: Request, symbol: str) -> Response:
        return Response(s.EntityOutputSerializer(_entity(symbol)).data)

    @extend_schema(
        operation_id="sentiment_entities_update",
        request=s.EntityUpdateSerializer,
        responses={200: s.EntityOutputSerializer},
    )
    def patch(self, request: Request, symbol: str) -> Response:
        entity = _entity(symbol)
        data = validated(s.EntityUpdateSerializer, request.data)
        try:
            entity = watch.entity_update(entity=entity, values=dict(data), user=request.user, request=request)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.EntityOutputSerializer(entity).data)

    @extend_schema(operation_id="sentiment_entities_destroy", responses={204: None})
    def delete(self, request: Request, symbol: str) -> Response:
        watch.entity_delete(entity=_entity(symbol), user=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EntitySeriesApi(APIView):
    """Dense buckets over a time range: empty buckets have volume 0 and mean null."""

    permission_classes = (Analyst,)

    @extend_schema(
        operation_id="sentiment_entities_series",
        parameters=[s.SeriesQuerySerializer],
        responses={200: s.SeriesOutputSerializer},
    )
    def get(self, request: Request, symbol: str) -> Response:
        entity = _entity(symbol)
        query = validated(s.SeriesQuerySerializer, request.query_params)
        try:
            series = series_get(
                entity=entity,
                width=int(query["width"]),
                since=query.get("since"),
                until=query.get("until"),
                basis=query["basis"],
                rolling=query.get("rolling"),
            )
        except SeriesQueryError as exc:
            raise serializers.ValidationError({"non_field_errors": [str(exc)]}) from exc
        return Response(s.SeriesOutputSerializer(series).data)


class EntityPricesApi(APIView):
    permission_classes = (Analyst,)

    @extend_schema(
        operation_id="sentiment_entities_prices",
        parameters=[s.PriceQuerySerializer],
        responses={200: s.PriceOutputSerializer(many=True)},
    )
    def get(self, request: Request, symbol: str) -> Response:
        entity = _entity(symbol)
        query = validated(s.PriceQuerySerializer, request.query_params)
        return Response(s.PriceOutputSerializer(price_list(entity, **query), many=True).data)


class PriceImportApi(APIView):
    """Daily prices from a CSV (upserted by symbol and date); unknown symbols reported by line."""

    permission_classes = (Analyst,)
    parser_classes = (MultiPartParser, FormParser)

    @extend_schema(
        operation_id="sentiment_prices_import",
        request={"multipart/form-data": s.PriceImportInputSerializer},
        responses={200: s.PriceImportOutputSerializer, 400: ERROR},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.PriceImportInputSerializer, request.data)
        try:
            report = prices_import_csv(data["file"].read())
        except PricesRejected as exc:
            return _error("upload_rejected", str(exc))
        return Response(s.PriceImportOutputSerializer(report).data)


class WatchlistListCreateApi(APIView):
    permission_classes = (Analyst,)
    pagination_class = SentimentPagination

    @extend_schema(operation_id="sentiment_watchlists_list", responses={200: s.WatchlistOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return _page(self, request, Watchlist.objects.prefetch_related("entities"), s.WatchlistOutputSerializer)

    @extend_schema(
        operation_id="sentiment_watchlists_create",
        request=s.WatchlistInputSerializer,
        responses={201: s.WatchlistOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.WatchlistInputSerializer, request.data)
        try:
            watchlist = watch.watchlist_create(
                name=data["name"], symbols=data["entities"], user=request.user, request=request
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.WatchlistOutputSerializer(watchlist).data, status=status.HTTP_201_CREATED)


class WatchlistDetailApi(APIView):
    permission_classes = (Analyst,)

    @extend_schema(operation_id="sentiment_watchlists_retrieve", responses={200: s.WatchlistOutputSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.WatchlistOutputSerializer(_get(Watchlist, pk=pk)).data)

    @extend_schema(
        operation_id="sentiment_watchlists_update",
        request=s.WatchlistUpdateSerializer,
        responses={200: s.WatchlistOutputSerializer},
    )
    def patch(self, request: Request, pk: int) -> Response:
        watchlist = _get(Watchlist, pk=pk)
        data = validated(s.WatchlistUpdateSerializer, request.data)
        try:
            watchlist = watch.watchlist_update(
                watchlist=watchlist,
                name=data.get("name"),
                symbols=data.get("entities"),
                user=request.user,
                request=request,
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.WatchlistOutputSerializer(watchlist).data)

    @extend_schema(operation_id="sentiment_watchlists_destroy", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        watch.watchlist_delete(watchlist=_get(Watchlist, pk=pk), user=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- rescoring


class RescoreApi(APIView):
    """Scores the history with another version, beside the live scores ("as scored now")."""

    permission_classes = (Analyst,)

    @extend_schema(
        operation_id="sentiment_rescore", request=s.RescoreInputSerializer, responses={202: s.RescoreOutputSerializer}
    )
    def post(self, request: Request) -> Response:
        version = validated(s.RescoreInputSerializer, request.data)["version"]
        try:
            documents = rescore_request(version=version, user=request.user, request=request)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"version": exc.messages}) from exc
        return Response(
            {"queued": "rescore", "version": version, "documents": documents}, status=status.HTTP_202_ACCEPTED
        )
