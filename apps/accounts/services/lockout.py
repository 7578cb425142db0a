"""Login lockout (django-axes): how long a locked username + address still has to wait."""

from __future__ import annotations

import math

from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max
from django.utils import timezone


def lockout_remaining_s(*, username: str, ip_address: str) -> int:
    """Seconds until ``username`` may try again from ``ip_address`` (at least 1).

    The lock runs ``AXES_COOLOFF_TIME`` from the last failure that counted (failures while
    locked do not extend it: ``AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False``).
    """
    cool_off = settings.AXES_COOLOFF_TIME
    latest = AccessAttempt.objects.filter(username=username, ip_address=ip_address).aggregate(
        latest=Max("attempt_time")
    )["latest"]
    if latest is None:
        return max(1, int(cool_off.total_seconds()))
    return max(1, math.ceil((latest + cool_off - timezone.now()).total_seconds()))
