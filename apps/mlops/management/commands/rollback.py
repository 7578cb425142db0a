"""``manage.py rollback --role R``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.services import command_origin
from apps.mlops.management.commands._lookup import user_get
from apps.mlops.models import ModelRole
from apps.mlops.permissions import can_promote
from apps.mlops.services.versions import model_version_rollback


class Command(BaseCommand):
    help = "Re-activates the version that served a role before the current one (or the bundled default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", required=True, choices=ModelRole.values)
        parser.add_argument("--user", help="Admin recorded as rolling back (default: none, shown as system).")

    def handle(self, *args: Any, **options: Any) -> None:
        user = user_get(options["user"])
        if user is not None and not can_promote(user):
            raise CommandError(f"{user.username} is not an admin; only admins may roll models back.")
        try:
            active = model_version_rollback(role=options["role"], user=user, origin=command_origin("rollback"))
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        serving = active.version if active else "the bundled default"
        self.stdout.write(self.style.SUCCESS(f"{options['role']} rolled back; now serving {serving}."))
