from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts.models import ApiToken, User


def token_list(user: User) -> QuerySet[ApiToken]:
    """``user``'s tokens that still work, newest first."""
    return ApiToken.objects.filter(Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()), user=user)
