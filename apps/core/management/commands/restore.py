"""``manage.py restore DIR [--force]``: a backup into an empty database and empty folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.backup import BackupError
from apps.core.restore import backup_restore


class Command(BaseCommand):
    help = (
        "Restores a folder written by `manage.py backup`: the database, ARTIFACTS_DIR and uploads. "
        "The backup is checked first; a database or folder that is not empty is refused unless --force. "
        "Afterwards every active model version's artifact is verified."
    )

    # It only reads and writes the database and folders; the system checks would import every URL
    # module and the ML stack behind them (seconds) for nothing.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", type=Path, help="The backup folder.")
        parser.add_argument("--force", action="store_true",
                            help="Replace a database and folders that are not empty.")
        parser.add_argument("--database", default="default", help="Database alias (default: default).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = backup_restore(options["source"], force=options["force"], alias=options["database"],
                                    log=lambda line: self.stdout.write(f"  {line}"))
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        for warning in report.warnings:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        active = ", ".join(f"{role}={version}" for role, version in sorted(report.active_versions.items())) or "none"
        moved = f"; {report.relocated} artifact path(s) moved to this ARTIFACTS_DIR" if report.relocated else ""
        self.stdout.write(self.style.SUCCESS(f"Restored and verified (active versions: {active}{moved})."))
