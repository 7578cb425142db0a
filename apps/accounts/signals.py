"""A new password or a deactivation revokes every API token of the user and closes their sockets.

Whatever the path (``set_password`` + ``save``, the admin, the password change form,
``manage.py changepassword``), the password is saved through ``User.save``; so is a
deactivation. A transparent re-hash of an unchanged password at login (a stronger hasher)
does not count: it saves without ``set_password`` having recorded a new raw password.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from apps.accounts.models import User
from apps.accounts.services.tokens import tokens_revoke_all

WATCHED = {"password", "is_active"}


@receiver(pre_save, sender=User, dispatch_uid="accounts.credentials_before_save")
def _credentials_before_save(sender: type[User], instance: User, raw: bool = False,
                             update_fields: Any = None, **kwargs: Any) -> None:
    instance._revoke_tokens = False
    if raw or instance.pk is None or (update_fields is not None and not WATCHED & set(update_fields)):
        return
    before = User.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if before is None:
        return
    # AbstractBaseUser keeps the raw password in _password from set_password() until save().
    new_password = before["password"] != instance.password and (
        getattr(instance, "_password", None) is not None or not instance.has_usable_password()
    )
    deactivated = before["is_active"] and not instance.is_active
    instance._revoke_tokens = new_password or deactivated
    instance._revoke_reason = "password changed" if new_password else "account deactivated"


@receiver(post_save, sender=User, dispatch_uid="accounts.credentials_after_save")
def _credentials_after_save(sender: type[User], instance: User, **kwargs: Any) -> None:
    if getattr(instance, "_revoke_tokens", False):
        instance._revoke_tokens = False
        tokens_revoke_all(instance, reason=getattr(instance, "_revoke_reason", ""))
