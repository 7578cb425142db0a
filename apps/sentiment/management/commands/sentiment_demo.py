"""``manage.py sentiment_demo``: the demo watchlist, a real demo model, a StockNet replay, alerts.

Run by ``make run`` (settings.TRELLIS_DEMO_COMMANDS). Skips with a message when the data sets
are not beside the repository (../shared/datasets); the dashboard then says plainly that the
scores come from the chance-level default. See ``apps.sentiment.services.demo``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from apps.sentiment.services.demo import DATASETS, demo_run


class Command(BaseCommand):
    help = "Loads the sentiment demo: watchlist, few-shot model (if none is active), StockNet replay, rules, backtest."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--path", default=str(DATASETS), help="the folder holding the data sets")
        parser.add_argument("--tweet-limit", type=int, help="replay at most this many tweets")

    def handle(self, *args: Any, path: str, tweet_limit: int | None, **options: Any) -> None:
        user = get_user_model().objects.filter(username="admin").first()
        report = demo_run(
            root=Path(path),
            user=user,
            tweet_limit=tweet_limit,
            say=lambda line: self.stdout.write(f"  sentiment demo: {line}"),
        )
        if report.skipped:
            self.stdout.write(
                self.style.WARNING(
                    f"  sentiment demo skipped: {report.skipped}; scores come from the zero-shot default "
                    "(chance level) until a model is trained"
                )
            )
            return
        model = report.model
        if model.get("trained"):
            self.stdout.write(
                f"  sentiment demo: trained and promoted {model['version']}: weighted F1 "
                f"{model['valid_weighted_f1']:.3f} on the tweets' validation split "
                f"({model['rows']} rows; the zero-shot default: {model['default_weighted_f1']:.3f})"
            )
        self.stdout.write(
            f"  sentiment demo: {report.rules} rules, {report.alerts} alerts; "
            f"backtest #{report.backtest['run']}: {report.backtest['summary']} "
            f"({report.seconds['total']:.0f} s)"
        )
