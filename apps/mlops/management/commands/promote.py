"""``manage.py promote --version V [--force] [--user admin]``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.services import command_origin
from apps.mlops.management.commands._lookup import user_get, version_get
from apps.mlops.permissions import can_promote
from apps.mlops.services.versions import PromotionRefused, model_version_promote


class Command(BaseCommand):
    help = (
        "Makes a model version the active one of its role. The candidate and the active version are "
        "scored on the same held-out rows first; a worse candidate is refused unless --force."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --version names a model version here; it replaces Django's "print the version" option.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--version", required=True, help="Version name or id (see `manage.py models`).")
        parser.add_argument("--force", action="store_true", help="Promote even when the evaluation gate refuses.")
        parser.add_argument("--user", help="Admin recorded as promoting it (default: none, shown as system).")

    def handle(self, *args: Any, **options: Any) -> None:
        version = version_get(options["version"])
        user = user_get(options["user"])
        if user is not None and not can_promote(user):
            raise CommandError(f"{user.username} is not an admin; only admins may promote models.")
        try:
            version = model_version_promote(version=version, user=user, force=options["force"],
                                            origin=command_origin("promote"))
        except PromotionRefused as exc:
            raise CommandError(f"Refused: {exc.message}") from exc
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        previous = version.previous_active.version if version.previous_active else "the bundled default"
        self.stdout.write(
            self.style.SUCCESS(f"{version.version} is now the active {version.role} model (replacing {previous}).")
        )
