"""Small helpers every app's API views share: validation, errors, lookups and pages.

Each keeps the project's error shape (``apps.core.errors.api_exception_handler`` turns what
they raise into it).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import Http404
from rest_framework import serializers
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


def validated(serializer_class: type[serializers.Serializer], data: Any, **kwargs: Any) -> dict[str, Any]:
    """The serializer's validated data; a 400 in the error shape when ``data`` is invalid."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def drf_validation_error(exc: DjangoValidationError) -> serializers.ValidationError:
    """A service's Django ``ValidationError`` as DRF's: field errors stay per field, the rest
    under ``non_field_errors``."""
    if hasattr(exc, "error_dict"):
        return serializers.ValidationError(
            {field.replace("__all__", "non_field_errors"): errors for field, errors in exc.message_dict.items()}
        )
    return serializers.ValidationError({"non_field_errors": exc.messages})


def first_or_404(queryset: QuerySet[Any], **lookup: Any) -> Any:
    """The first row matching ``lookup``; 404 otherwise (also for rows the caller may not see,
    when ``queryset`` is already narrowed to what they may see)."""
    obj = queryset.filter(**lookup).first()
    if obj is None:
        raise Http404
    return obj


def paginated(
    view: APIView,
    request: Request,
    rows: QuerySet[Any],
    serializer_class: type[serializers.Serializer],
    pagination_class: type[BasePagination],
    **serializer_kwargs: Any,
) -> Response:
    """One page of ``rows`` in the paginator's envelope (``count``, ``next``, ``results``...)."""
    paginator = pagination_class()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True, **serializer_kwargs).data)
