"""Look-ups the mlops commands share (the leading underscore keeps Django from listing it)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from apps.mlops.models import ModelVersion


def version_get(ref: str) -> ModelVersion:
    """A version by its name (``intent-20250101-...``) or its database id."""
    ref = (ref or "").strip()
    version = ModelVersion.objects.filter(version=ref).first()
    if version is None and ref.isdigit():
        version = ModelVersion.objects.filter(pk=int(ref)).first()
    if version is None:
        known = ", ".join(ModelVersion.objects.values_list("version", flat=True)[:10]) or "none yet"
        raise CommandError(
            f"No model version {ref!r} (by name or id). Known versions: {known}. Run `manage.py models` to list them."
        )
    return version


def user_get(username: str | None) -> Any:
    """The user a command acts as; None (recorded as "system") when not given."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user {username!r}.")
    return user


def metric(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"
