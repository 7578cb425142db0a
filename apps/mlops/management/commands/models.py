"""``manage.py models``: every model role, what serves it and its versions."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.mlops.management.commands._lookup import metric
from apps.mlops.models import TRAINABLE_ROLES, ModelRole, ModelVersion


class Command(BaseCommand):
    help = "Lists the model roles, the version serving each (or the bundled default) and all versions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", choices=ModelRole.values, help="Only this model role.")

    def handle(self, *args: Any, **options: Any) -> None:
        roles = [options["role"]] if options["role"] else ModelRole.values
        for role in roles:
            versions = list(ModelVersion.objects.filter(role=role).order_by("-created_at", "-id"))
            active = next((v for v in versions if v.status == ModelVersion.Status.ACTIVE), None)
            trainable = " (trainable)" if role in TRAINABLE_ROLES else ""
            self.stdout.write(self.style.MIGRATE_HEADING(f"{role}: {ModelRole(role).label}{trainable}"))
            self.stdout.write(f"  serving: {active.version if active else 'default (bundled)'}")
            if not versions:
                self.stdout.write("  no fine-tuned versions")
                continue
            width = max(len("VERSION"), *(len(v.version) for v in versions))
            self.stdout.write(f"  {'VERSION':<{width}}  {'STATUS':<9}  {'MACRO-F1':>8}  {'ACCURACY':>8}  CREATED")
            for v in versions:
                metrics = v.metrics or {}
                line = (
                    f"  {v.version:<{width}}  {v.status:<9}  {metric(metrics.get('macro_f1')):>8}  "
                    f"{metric(metrics.get('accuracy')):>8}  {v.created_at:%Y-%m-%d %H:%M}"
                )
                self.stdout.write(self.style.SUCCESS(line) if v.status == ModelVersion.Status.ACTIVE else line)
