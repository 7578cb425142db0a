from __future__ import annotations

from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """Trellis user. Roles are Django groups (see ``apps.accounts.roles``)."""

    class Meta:
        ordering = ("username",)
