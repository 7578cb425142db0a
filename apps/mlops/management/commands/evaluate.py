"""``manage.py evaluate --version V [--dataset-file PATH | --dataset ID]``: print its report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.mlops.management.commands._lookup import metric, version_get
from apps.mlops.models import Dataset, ModelVersion
from apps.mlops.services.datasets import DatasetRejected, dataset_create
from apps.mlops.services.versions import model_version_evaluate


class Command(BaseCommand):
    help = (
        "Scores a model version and the active one on the same rows (its held-out split, or a dataset) "
        "and prints the report; the report is stored on the version for the promotion gate."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --version names a model version here; it replaces Django's "print the version" option.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--version", required=True, help="Version name or id (see `manage.py models`).")
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--dataset-file", help="Evaluate on this CSV/JSONL (validated and stored as a dataset).")
        source.add_argument("--dataset", type=int, help="Evaluate on this stored dataset id.")
        parser.add_argument("--json", action="store_true", help="Print the raw report as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        version = version_get(options["version"])
        dataset = self._dataset(version, options)
        try:
            report = model_version_evaluate(version=version, dataset=dataset)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, default=str))
            return
        self._print(version, report)

    def _dataset(self, version: ModelVersion, options: dict[str, Any]) -> Dataset | None:
        if options["dataset"] is not None:
            dataset = Dataset.objects.filter(pk=options["dataset"]).first()
            if dataset is None:
                raise CommandError(f"No dataset {options['dataset']}.")
            if dataset.role != version.role:
                raise CommandError(f"Dataset {dataset.pk} is for {dataset.role}, not {version.role}.")
            return dataset
        if not options["dataset_file"]:
            return None
        path = Path(options["dataset_file"]).expanduser()
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        with path.open("rb") as handle:
            try:
                return dataset_create(
                    uploaded_file=File(handle, name=path.name), name=path.name, role=version.role, user=None
                )
            except DatasetRejected as exc:
                raise CommandError(f"{path.name} failed validation: {exc}") from exc

    def _print(self, version: ModelVersion, report: dict[str, Any]) -> None:
        if "candidate" not in report:
            self.stdout.write(f"{version.version} ({report.get('kind', version.kind)}): {report.get('note', '')}")
            self.stdout.write(json.dumps(report.get("metrics", {}), indent=2, default=str))
            return
        candidate, active = report["candidate"], report["active"]
        self.stdout.write(
            self.style.MIGRATE_HEADING(
                f"{version.version} vs active {active.get('version')} on {report['rows']} rows"
                + (f" of dataset {report['dataset']}" if report.get("dataset") else " (held-out split)")
            )
        )
        width = max(len(version.version), len(str(active.get("version"))), len("MODEL"))
        self.stdout.write(f"  {'MODEL':<{width}}  {'MACRO-F1':>8}  {'ACCURACY':>8}  {'WEIGHTED-F1':>11}")
        for name, rep in ((version.version, candidate), (str(active.get("version")), active)):
            self.stdout.write(
                f"  {name:<{width}}  {metric(rep.get('macro_f1')):>8}  {metric(rep.get('accuracy')):>8}"
                f"  {metric(rep.get('weighted_f1')):>11}"
            )
        per_class = candidate.get("per_class") or {}
        if per_class:
            label_width = max(len("LABEL"), *(len(label) for label in per_class))
            self.stdout.write(f"\n  {'LABEL':<{label_width}}  {'PRECISION':>9}  {'RECALL':>7}  {'F1':>7}  SUPPORT")
            for label, row in per_class.items():
                self.stdout.write(
                    f"  {label:<{label_width}}  {metric(row.get('precision')):>9}  "
                    f"{metric(row.get('recall')):>7}  {metric(row.get('f1')):>7}  {row.get('support')}"
                )
        ood = candidate.get("abstention")
        if ood:
            self.stdout.write(
                f"\n  out of scope ({ood['oos_label']!r}, threshold {metric(ood.get('threshold'), 3)}): in-scope "
                f"accuracy {metric(ood.get('in_scope_accuracy'))} (without abstention "
                f"{metric(ood.get('in_scope_accuracy_without_abstention'))}), precision "
                f"{metric(ood.get('oos_precision'))}, recall {metric(ood.get('oos_recall'))}, "
                f"AUROC {metric(ood.get('auroc'))}"
            )
            curve = ood.get("curve") or []
            if curve:
                self.stdout.write(f"  {'THRESHOLD':>9}  {'IN-SCOPE ACC':>12}  {'OOS PREC':>8}  {'OOS RECALL':>10}")
                for point in curve[::5]:  # every 0.1 of the 0.02-step curve
                    self.stdout.write(
                        f"  {point['threshold']:>9.2f}  {metric(point['in_scope_accuracy']):>12}  "
                        f"{metric(point['oos_precision']):>8}  {metric(point['oos_recall']):>10}"
                    )
