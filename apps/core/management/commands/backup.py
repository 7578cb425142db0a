"""``manage.py backup DIR``: the database, model artifacts and uploads, consistent with each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.backup import BackupError, backup_create


class Command(BaseCommand):
    help = (
        "Backs up the database (pg_dump, or SQLite's online backup), then ARTIFACTS_DIR and the uploaded "
        "files, into a new folder with a backup.json manifest. Stop the Celery worker (or wait until no "
        "training job runs) first, so that no artifact is half-written."
    )

    # It only reads and writes the database and folders; the system checks would import every URL
    # module and the ML stack behind them (seconds) for nothing.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("destination", type=Path, help="A new (or empty) folder for the backup.")
        parser.add_argument("--database", default="default", help="Database alias (default: default).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            manifest = backup_create(options["destination"], alias=options["database"],
                                     log=lambda line: self.stdout.write(f"  {line}"))
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        for warning in manifest["warnings"]:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        active = ", ".join(f"{v['role']}={v['version']}" for v in manifest["active_versions"]) or "none"
        size_mb = sum(part["size"] for part in (manifest["database"], manifest["artifacts"], manifest["media"] or {})
                      if part) / 1e6
        self.stdout.write(self.style.SUCCESS(
            f"Backup written to {options['destination']} ({size_mb:.1f} MB; active versions: {active})."))
