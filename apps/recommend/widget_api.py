"""Widget keys (merchandisers: create, list, rotate, revoke; the signing secret is shown
only in the answer that creates or rotates it) and the widget's own endpoints (public, a widget key).

The widget endpoints read no cookies and no token: the key in the query or body, and the
browser's Origin header, which must be one the key lists (django-cors-headers adds the CORS
headers for those origins only; see signals.py).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import drf_validation_error, validated
from apps.core.errors import error_body
from apps.recommend import serializers as s
from apps.recommend.api import (
    ERROR,
    NOT_FOUND,
    NOT_READY,
    ImpressionsAfterResponse,
    Merchandiser,
    _not_ready,
)
from apps.recommend.models import Item, Surface, WidgetKey
from apps.recommend.services.recommendations import NotReady, impression_click, recommendation_list, similar_list
from apps.recommend.services.widget import (
    signed_user,
    widget_key_create,
    widget_key_deactivate,
    widget_key_for,
    widget_key_rotate,
)


class WidgetKeyListCreateApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(operation_id="recommend_widget_keys_list", responses={200: s.WidgetKeyOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(s.WidgetKeyOutputSerializer(WidgetKey.objects.all()[:100], many=True).data)

    @extend_schema(
        operation_id="recommend_widget_keys_create",
        request=s.WidgetKeyInputSerializer,
        responses={201: s.WidgetKeyOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.WidgetKeyInputSerializer, request.data)
        try:
            key = widget_key_create(
                name=data["name"], allowed_origins=data["allowed_origins"], user=request.user, request=request
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.WidgetKeySecretSerializer(key).data, status=status.HTTP_201_CREATED)


class WidgetKeyRotateApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(
        operation_id="recommend_widget_keys_rotate",
        request=None,
        responses={200: s.WidgetKeySecretSerializer, 404: NOT_FOUND},
    )
    def post(self, request: Request, pk: int) -> Response:
        key = get_object_or_404(WidgetKey, pk=pk)
        key = widget_key_rotate(key=key, user=request.user, request=request)
        return Response(s.WidgetKeySecretSerializer(key).data)


class WidgetKeyRevokeApi(APIView):
    permission_classes = (Merchandiser,)

    @extend_schema(
        operation_id="recommend_widget_keys_revoke",
        request=None,
        responses={200: s.WidgetKeyOutputSerializer, 404: NOT_FOUND},
    )
    def post(self, request: Request, pk: int) -> Response:
        key = get_object_or_404(WidgetKey, pk=pk)
        if key.active:
            key = widget_key_deactivate(key=key, user=request.user, request=request)
        return Response(s.WidgetKeyOutputSerializer(key).data)


class WidgetApiBase(APIView):
    """Public: a widget key from a listed origin. No cookies are read (no session, no CSRF)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    def _key(self, request: Request, public_key: str) -> WidgetKey:
        key = widget_key_for(public_key, request.headers.get("Origin", ""))
        if key is None:
            raise _WidgetForbidden()
        return key


class _WidgetForbidden(Exception):
    pass


def _widget_forbidden() -> Response:
    return Response(
        error_body("widget_key_refused", "Unknown or inactive widget key, or a page origin the key does not list."),
        status=status.HTTP_403_FORBIDDEN,
    )


class WidgetRecommendationsApi(WidgetApiBase):
    @extend_schema(
        operation_id="recommend_widget_recommendations",
        parameters=[s.WidgetQuerySerializer],
        responses={200: s.WidgetOutputSerializer, 403: ERROR, 404: NOT_FOUND, 503: NOT_READY},
    )
    def get(self, request: Request) -> Response:
        query = validated(s.WidgetQuerySerializer, request.query_params)
        try:
            key = self._key(request, query["key"])
        except _WidgetForbidden:
            return _widget_forbidden()
        user = signed_user(key, query["user"], query["signature"]) or ""
        try:
            if query["item"]:
                item = Item.objects.filter(external_id=query["item"]).first()
                if item is None:
                    raise Http404
                result = similar_list(
                    item=item,
                    k=query["k"],
                    user_key=user,
                    session_key=query["session"],
                    surface=Surface.WIDGET,
                    log_later=True,
                )
            else:
                result = recommendation_list(
                    user_key=user, session_key=query["session"], k=query["k"], surface=Surface.WIDGET, log_later=True
                )
        except NotReady as exc:
            return _not_ready(exc)
        return ImpressionsAfterResponse(s.widget_list_data(result), result)


class WidgetClickApi(WidgetApiBase):
    @extend_schema(
        operation_id="recommend_widget_clicks",
        request=s.WidgetClickInputSerializer,
        responses={204: None, 403: ERROR, 404: NOT_FOUND},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.WidgetClickInputSerializer, request.data)
        try:
            self._key(request, data["key"])
        except _WidgetForbidden:
            return _widget_forbidden()
        if impression_click(impression_id=data["impression_id"]) is None:
            raise Http404
        return Response(status=status.HTTP_204_NO_CONTENT)
