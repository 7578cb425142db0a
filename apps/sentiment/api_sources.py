"""The sentiment API for sources and ingestion: sources (with their health), polling a feed
now, pushing a batch of documents, uploading a file. Helpers and roles as in ``api.py``."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import drf_validation_error, validated
from apps.core.schema import ErrorSerializer
from apps.sentiment import selectors
from apps.sentiment import serializers as s
from apps.sentiment.api import ERROR, Analyst, SentimentPagination, _error, _get, _page
from apps.sentiment.models import Source
from apps.sentiment.services import sources as source_services
from apps.sentiment.services.background import enqueue
from apps.sentiment.services.documents import IngestItem, documents_ingest
from apps.sentiment.services.uploads import UploadRejected, documents_upload

IN_USE = OpenApiResponse(ErrorSerializer, description="The source has documents (code source_in_use): disable it.")
WRONG_KIND = OpenApiResponse(ErrorSerializer, description="The source is not of the kind this needs (code wrong_kind).")
PUSH_REFUSED = OpenApiResponse(
    ErrorSerializer, description="Not a push source (code wrong_kind), or a disabled one (code source_disabled)."
)


# --- sources


class SourceListCreateApi(APIView):
    permission_classes = (Analyst,)
    pagination_class = SentimentPagination

    @extend_schema(operation_id="sentiment_sources_list", responses={200: s.SourceOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return _page(self, request, selectors.source_list(), s.SourceOutputSerializer)

    @extend_schema(
        operation_id="sentiment_sources_create",
        request=s.SourceInputSerializer,
        responses={201: s.SourceOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.SourceInputSerializer, request.data)
        try:
            source = source_services.source_create(values=dict(data), user=request.user, request=request)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.SourceOutputSerializer(source).data, status=status.HTTP_201_CREATED)


class SourceDetailApi(APIView):
    permission_classes = (Analyst,)

    @extend_schema(operation_id="sentiment_sources_retrieve", responses={200: s.SourceOutputSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.SourceOutputSerializer(_get(Source, pk=pk)).data)

    @extend_schema(
        operation_id="sentiment_sources_update",
        request=s.SourceUpdateSerializer,
        responses={200: s.SourceOutputSerializer},
    )
    def patch(self, request: Request, pk: int) -> Response:
        source = _get(Source, pk=pk)
        data = validated(s.SourceUpdateSerializer, request.data)
        try:
            source = source_services.source_update(source=source, values=dict(data), user=request.user, request=request)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.SourceOutputSerializer(source).data)

    @extend_schema(operation_id="sentiment_sources_destroy", responses={204: None, 409: IN_USE})
    def delete(self, request: Request, pk: int) -> Response:
        try:
            source_services.source_delete(source=_get(Source, pk=pk), user=request.user, request=request)
        except source_services.SourceInUse as exc:
            return _error("source_in_use", str(exc), status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourcePollApi(APIView):
    """Polls a feed now (its health fields show the outcome)."""

    permission_classes = (Analyst,)

    @extend_schema(
        operation_id="sentiment_sources_poll",
        request=None,
        responses={202: s.SentimentQueuedSerializer, 409: WRONG_KIND},
    )
    def post(self, request: Request, pk: int) -> Response:
        source = _get(Source, pk=pk)
        if source.kind != Source.Kind.FEED:
            return _error(
                "wrong_kind",
                f"{source.name} is a {source.kind} source; only feeds are polled",
                status.HTTP_409_CONFLICT,
            )
        enqueue("source_poll_task", source.pk)
        return Response({"queued": "source_poll"}, status=status.HTTP_202_ACCEPTED)


# --- ingestion


class DocumentPushApi(APIView):
    """A batch of documents for a push source. Idempotent: an external id or a text seen
    before is counted in ``duplicates``; bad items are listed in ``rejected``, the rest stored."""

    permission_classes = (Analyst,)

    @extend_schema(
        operation_id="sentiment_documents_push",
        request=s.DocumentPushInputSerializer,
        responses={200: s.IngestReportSerializer, 409: PUSH_REFUSED},
    )
    def post(self, request: Request, pk: int) -> Response:
        source = _get(Source, pk=pk)
        if source.kind != Source.Kind.PUSH:
            return _error(
                "wrong_kind",
                f"{source.name} is a {source.kind} source; push to a push source",
                status.HTTP_409_CONFLICT,
            )
        if not source.enabled:
            return _error("source_disabled", f"{source.name} is disabled", status.HTTP_409_CONFLICT)
        data = validated(s.DocumentPushInputSerializer, request.data)
        report = documents_ingest(source, [IngestItem(**item) for item in data["documents"]])
        return Response(s.IngestReportSerializer(report).data)


class DocumentUploadApi(APIView):
    """A CSV or JSON-lines file of documents. A file that cannot be read as a whole is
    refused (400, code upload_rejected, nothing stored); bad lines are reported by number."""

    permission_classes = (Analyst,)
    parser_classes = (MultiPartParser, FormParser)

    @extend_schema(
        operation_id="sentiment_uploads_create",
        request={"multipart/form-data": s.UploadInputSerializer},
        responses={200: s.UploadReportSerializer, 400: ERROR, 409: WRONG_KIND},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.UploadInputSerializer, request.data)
        source = None
        if data.get("source"):
            source = Source.objects.filter(pk=data["source"]).first()
            if source is None:
                raise serializers.ValidationError({"source": ["no such source"]})
            if source.kind != Source.Kind.UPLOAD:
                return _error(
                    "wrong_kind",
                    f"{source.name} is a {source.kind} source; upload to an upload source",
                    status.HTTP_409_CONFLICT,
                )
        upload = data["file"]
        try:
            report = documents_upload(
                data=upload.read(), filename=upload.name or "", file_format=data.get("format"), source=source
            )
        except UploadRejected as exc:
            return _error("upload_rejected", str(exc))
        return Response(s.UploadReportSerializer(report).data)
