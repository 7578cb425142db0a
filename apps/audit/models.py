"""The audit log: who changed what, when and from where. Rows are only ever added.

Append-only is enforced three times: the model refuses ``save()`` of an existing row and
``delete()``; the default manager's queryset refuses ``update()`` and ``delete()``; on
PostgreSQL a trigger (migration 0002) rejects UPDATE and DELETE from any client.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AuditLogImmutable(Exception):
    """An attempt to change or delete an audit event."""


class AuditAction:
    """The actions recorded so far (a dotted ``<object>.<verb>``; apps add their own).

    Not field choices: a new action must not need a migration.
    """

    MODEL_PROMOTE = "model.promote"
    MODEL_ROLLBACK = "model.rollback"
    MODEL_ABSTENTION = "model.abstention"  # an abstention threshold edited
    TOKEN_ROTATE = "token.rotate"  # noqa: S105 - an action code, not a secret
    TOKEN_REVOKE = "token.revoke"  # noqa: S105 - an action code, not a secret
    ALERT_RULE_UPDATE = "alert_rule.update"
    CONVERSATION_TAKEOVER = "conversation.takeover"
    DATA_EXPORT = "data.export"

    ALL = (MODEL_PROMOTE, MODEL_ROLLBACK, MODEL_ABSTENTION, TOKEN_ROTATE, TOKEN_REVOKE, ALERT_RULE_UPDATE,
           CONVERSATION_TAKEOVER, DATA_EXPORT)


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AuditLogImmutable("audit events cannot be changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditLogImmutable("audit events cannot be deleted")


class AuditEvent(models.Model):
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # The username is copied so the event still names the person after the account is
    # deleted (the FK is then set to NULL; the PostgreSQL trigger allows exactly that change).
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_username = models.CharField(max_length=150, blank=True, default="")
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=100, blank=True, default="")  # app_label.model
    target_id = models.CharField(max_length=64, blank=True, default="")
    summary = models.CharField(max_length=500, blank=True, default="")
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True, default="")

    # The default manager refuses bulk changes. Django's deletion collector uses the plain
    # base manager, so deleting a user still sets ``actor`` to NULL on that user's events.
    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["created_at"], name="audit_event_created_idx"),
            models.Index(fields=["action", "created_at"], name="audit_event_action_idx"),
            models.Index(fields=["target_type", "target_id"], name="audit_event_target_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_username or 'system'} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogImmutable("audit events cannot be changed once recorded")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditLogImmutable("audit events cannot be deleted")
