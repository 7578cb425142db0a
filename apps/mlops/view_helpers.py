"""What the model pages share: paging, 404 for objects a user may not see, permission checks."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from apps.accounts.roles import Role
from apps.mlops.models import ModelRole
from apps.mlops.permissions import can_promote, can_train_role, can_view_role

ANY_ROLE = tuple(Role)
PAGE_SIZE = 25  # rows per list page; a job row is light, a version row carries its gate


def paginate(request: HttpRequest, items: QuerySet[Any], param: str = "page") -> tuple[Page, str]:
    """One page of ``items`` (out-of-range numbers give the nearest page) and the query
    string of the other parameters, which the page links keep (filters)."""
    page = Paginator(items, PAGE_SIZE).get_page(request.GET.get(param))
    others = request.GET.copy()
    others.pop(param, None)
    return page, others.urlencode()


def visible_or_404(queryset: QuerySet[Any], pk: int) -> Any:
    """The object ``pk`` of ``queryset`` (the rows the user may see), else 404."""
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise Http404("No such object.")
    return obj


def require_train(user: Any, role: str) -> None:
    if not can_train_role(user, role):
        raise PermissionDenied(f"Your role may not train or change {role} models.")


def require_promote(user: Any) -> None:
    if not can_promote(user):
        raise PermissionDenied("Only admins may promote or roll back models.")


def visible_role_or_404(user: Any, role: str) -> str:
    if role not in ModelRole.values or not can_view_role(user, role):
        raise Http404("No such model role.")
    return role
