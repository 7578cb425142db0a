"""The knowledge-base API: thin views that validate, call one service and serialize the result.

Agents and admins (session or API token) use every endpoint; other roles get 403, anonymous
callers 401. Customers never reach articles through this API: the chat reply pipeline calls
``apps.chat.services.index.kb_search`` with ``published_only=True``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
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
from apps.chat import serializers as s
from apps.chat.models import KbImport
from apps.chat.selectors import article_get, article_list
from apps.chat.services.articles import article_create, article_delete, article_update
from apps.chat.services.background import enqueue
from apps.chat.services.imports import ImportRejected, kb_import_create
from apps.chat.services.index import kb_search
from apps.core.api import drf_validation_error, validated
from apps.core.errors import error_body
from apps.core.schema import ErrorSerializer

Agent = HasRole.of(Role.AGENT)
REJECTED = OpenApiResponse(ErrorSerializer, description="No files, or too many (code import_rejected).")


class KbPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


def _article_or_404(pk: int) -> Any:
    article = article_get(pk)
    if article is None:
        raise Http404
    return article


class ArticleListCreateApi(APIView):
    permission_classes = (Agent,)
    pagination_class = KbPagination  # the schema documents the list as paginated (what get returns)

    @extend_schema(
        operation_id="kb_articles_list",
        parameters=[s.ArticleFilterSerializer],
        responses={200: s.ArticleOutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        filters = validated(s.ArticleFilterSerializer, request.query_params)
        paginator = KbPagination()
        page = paginator.paginate_queryset(article_list(**filters), request, view=self)
        return paginator.get_paginated_response(s.ArticleOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="kb_articles_create", request=s.ArticleInputSerializer, responses={201: s.ArticleOutputSerializer}
    )
    def post(self, request: Request) -> Response:
        data = validated(s.ArticleInputSerializer, request.data)
        try:
            article = article_create(values=dict(data), user=request.user, request=request)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.ArticleOutputSerializer(article).data, status=status.HTTP_201_CREATED)


class ArticleDetailApi(APIView):
    permission_classes = (Agent,)

    @extend_schema(operation_id="kb_articles_retrieve", responses={200: s.ArticleOutputSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.ArticleOutputSerializer(_article_or_404(pk)).data)

    @extend_schema(
        operation_id="kb_articles_update",
        request=s.ArticleInputSerializer(partial=True),
        responses={200: s.ArticleOutputSerializer},
    )
    def patch(self, request: Request, pk: int) -> Response:
        article = _article_or_404(pk)
        serializer = s.ArticleInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            article = article_update(
                article=article, values=dict(serializer.validated_data), user=request.user, request=request
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.ArticleOutputSerializer(article).data)

    @extend_schema(operation_id="kb_articles_destroy", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        article_delete(article=_article_or_404(pk), user=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class KbSearchApi(APIView):
    """Passages closest in meaning to ``q``; published articles only unless ``drafts=true``."""

    permission_classes = (Agent,)

    @extend_schema(
        operation_id="kb_search", parameters=[s.SearchQuerySerializer], responses={200: s.SearchOutputSerializer}
    )
    def get(self, request: Request) -> Response:
        query = validated(s.SearchQuerySerializer, request.query_params)
        passages = kb_search(query["q"], query["k"], published_only=not query["drafts"])
        return Response(s.SearchOutputSerializer({"query": query["q"], "results": passages}).data)


class KbImportCreateApi(APIView):
    """Upload files; each item is imported or reported (by line) in the answer's ``report``."""

    permission_classes = (Agent,)
    parser_classes = (MultiPartParser, FormParser)

    @extend_schema(
        operation_id="kb_imports_create",
        request={"multipart/form-data": s.KbImportInputSerializer},
        responses={201: s.KbImportOutputSerializer, 400: REJECTED},
    )
    def post(self, request: Request) -> Response:
        files = request.FILES.getlist("files") or request.FILES.getlist("file")
        data = validated(s.KbImportInputSerializer, {"files": files, "publish": request.data.get("publish", False)})
        try:
            run = kb_import_create(
                files=[(f.name, f.read()) for f in data["files"]],
                publish=data["publish"],
                user=request.user,
                request=request,
            )
        except ImportRejected as exc:
            return Response(error_body("import_rejected", str(exc)), status=status.HTTP_400_BAD_REQUEST)
        return Response(s.KbImportOutputSerializer(run).data, status=status.HTTP_201_CREATED)


class KbImportDetailApi(APIView):
    permission_classes = (Agent,)

    @extend_schema(operation_id="kb_imports_retrieve", responses={200: s.KbImportOutputSerializer})
    def get(self, request: Request, pk: int) -> Response:
        run = KbImport.objects.filter(pk=pk).first()
        if run is None:
            raise Http404
        return Response(s.KbImportOutputSerializer(run).data)


class KbIndexRebuildApi(APIView):
    permission_classes = (Agent,)

    @extend_schema(operation_id="kb_index_rebuild", request=None, responses={202: s.KbTaskQueuedSerializer})
    def post(self, request: Request) -> Response:
        enqueue("kb_index_build_task")
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)
