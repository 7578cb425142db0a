"""``manage.py calibrate VERSION --data dev.csv [--oos-label oos]``: calibrate and set abstention.

``manage.py calibrate default --role intent --data dev.csv`` does it for a role's bundled default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.mlops.management.commands._lookup import metric, version_get
from apps.mlops.services.abstention import AbstentionUnavailable, model_version_calibrate, role_default_calibrate
from ml.finetune.data import DatasetInvalid, load_rows
from ml.ood import OOS_LABEL


class Command(BaseCommand):
    help = (
        "Fits a classifier version's confidence calibration (temperature scaling) and its out-of-scope "
        "abstention threshold on labelled rows (rows labelled with the out-of-scope label are the examples "
        "to abstain on), and stores both in the version's manifest. Works for any classifier, the bundled "
        "zero-shot default registered as a version included."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("version", help="Version name or id (see `manage.py models`), or 'default' with --role.")
        parser.add_argument("--role", help="With version 'default': the role whose bundled default to calibrate.")
        parser.add_argument("--data", required=True, help="Held-out CSV/JSONL with text and label columns.")
        parser.add_argument("--oos-label", default=OOS_LABEL, help=f"Out-of-scope label (default {OOS_LABEL!r}).")

    def handle(self, *args: Any, **options: Any) -> None:
        bundled = options["version"] == "default"
        if bundled and not options["role"]:
            raise CommandError("Name the role whose bundled default to calibrate: --role intent (or sentiment).")
        version = None if bundled else version_get(options["version"])
        name = f"the bundled {options['role']} default" if bundled else version.version
        path = Path(options["data"]).expanduser()
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        try:
            rows = load_rows(path)
            if version is None:
                result = role_default_calibrate(role=options["role"], rows=rows, oos_label=options["oos_label"])
            else:
                result = model_version_calibrate(version=version, rows=rows, oos_label=options["oos_label"])
        except DatasetInvalid as exc:
            raise CommandError(f"{path}: {exc}") from exc
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        except AbstentionUnavailable as exc:
            raise CommandError(str(exc)) from exc
        calibration, rule = result["calibration"], result["abstention"]
        dev = rule["dev"]
        self.stdout.write(self.style.SUCCESS(f"{name} calibrated on {calibration['rows']} in-scope and "
                                             f"{rule['rows']['oos']} out-of-scope rows"))
        self.stdout.write(f"  temperature {calibration['temperature']:.3f}; expected calibration error "
                          f"{metric(calibration['ece_before'])} -> {metric(calibration['ece_after'])}")
        aurocs = ", ".join(f"{m} {metric(v)}" for m, v in rule["auroc"].items())
        self.stdout.write(f"  abstains below {rule['threshold']:.3f} ({rule['method']}, {rule['basis']}); "
                          f"AUROC {aurocs}")
        self.stdout.write(f"  on these rows: in-scope accuracy {metric(dev['in_scope_accuracy'])}, out-of-scope "
                          f"precision {metric(dev['oos_precision'])}, recall {metric(dev['oos_recall'])}")
