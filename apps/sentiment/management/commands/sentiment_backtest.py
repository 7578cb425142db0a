"""``manage.py sentiment_backtest``: did daily sentiment predict the next day's return?

Every knob of ``services.backtest.BacktestParams`` is a flag (its bounds and help come from
there). Prints the per-symbol and pooled table and stores the run (the Backtest page shows it).
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.sentiment.services.backtest import BacktestParams, backtest_run, param_fields


def _flag_type(f: dataclasses.Field) -> Any:
    if f.name in ("since", "until"):
        return date.fromisoformat
    if f.name == "symbols":
        return lambda raw: tuple(s for s in raw.replace(",", " ").split() if s)
    return type(f.default)


class Command(BaseCommand):
    help = "Backtests daily sentiment against the next trading day's return and stores the run."

    def add_arguments(self, parser: CommandParser) -> None:
        for f in param_fields():
            bounds = f" ({f.metadata['low']:g}-{f.metadata['high']:g})" if f.metadata["low"] is not None else ""
            parser.add_argument(
                f"--{f.name.replace('_', '-')}",
                dest=f.name,
                type=_flag_type(f),
                default=argparse.SUPPRESS,
                help=f.metadata["help"] + bounds,
            )

    def handle(self, *args: Any, **options: Any) -> None:
        values = {f.name: options[f.name] for f in param_fields() if f.name in options}
        try:
            run = backtest_run(params=BacktestParams(**values))
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(run.results["table"])
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"run #{run.pk}: {run.results['summary']}"))
        self.stdout.write(f"see /sentiment/backtests/{run.pk}/")
