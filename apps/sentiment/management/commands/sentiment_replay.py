"""``manage.py sentiment_replay``: stream StockNet tweets through ingestion on an accelerated clock.

    manage.py sentiment_replay --symbols AAPL,MSFT --start 2015-01-01 --end 2015-02-01 --speed 3600
    manage.py sentiment_replay --symbols AAPL --start 2015-01-01 --end 2015-01-08 --no-sleep

``--speed 3600`` plays an hour of tweets each second; ``--no-sleep`` as fast as it can (tests,
backtests). Original tweet times become ``published_at``. Scoring runs in this process after
each chunk unless ``--score queue`` leaves it to the Celery workers.
"""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from apps.sentiment.models import Entity
from apps.sentiment.services.replay import DATASET, ReplayReport, replay_stocknet, replay_summary


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from exc


class Command(BaseCommand):
    help = "Replays StockNet tweets (and imports their prices) through sentiment ingestion."

    def add_arguments(self, parser):
        parser.add_argument("--symbols", required=True, help="comma-separated tickers, e.g. AAPL,MSFT")
        parser.add_argument("--start", type=_day, help="first day (UTC), default: the data's first")
        parser.add_argument("--end", type=_day, help="day after the last (UTC), default: the data's last")
        parser.add_argument("--speed", type=float, default=3600.0, help="data seconds per wall second")
        parser.add_argument("--no-sleep", action="store_true", help="do not wait for the clock")
        parser.add_argument(
            "--score",
            choices=("inline", "queue"),
            default="inline",
            help="score here after each chunk, or leave it to the workers",
        )
        parser.add_argument("--limit", type=int, help="stop after this many tweets")
        parser.add_argument("--no-prices", action="store_true", help="do not import the symbols' prices")
        parser.add_argument("--path", default=str(DATASET), help="the StockNet folder")

    def handle(
        self,
        *args,
        symbols: str,
        start,
        end,
        speed: float,
        no_sleep: bool,
        score: str,
        limit,
        no_prices,
        path: str,
        **options,
    ):
        wanted = [s.strip().lstrip("$").upper() for s in symbols.split(",") if s.strip()]
        if not wanted:
            raise CommandError("--symbols: name at least one ticker")
        missing = sorted(set(wanted) - set(Entity.objects.filter(symbol__in=wanted).values_list("symbol", flat=True)))
        if missing:
            self.stdout.write(
                self.style.WARNING(
                    f"  not on the watchlist: {', '.join(missing)} (their tweets are stored but form no series)"
                )
            )

        def progress(report: ReplayReport) -> None:
            self.stdout.write(
                f"  {report.tweets} tweets up to {report.last:%Y-%m-%d %H:%M}, {report.created} new, "
                f"{report.scored} scored"
            )

        try:
            report = replay_stocknet(
                symbols=wanted,
                start=start,
                end=end,
                path=path,
                speed=speed,
                sleep=not no_sleep,
                scoring=score,
                prices=not no_prices,
                limit=limit,
                progress=progress if options["verbosity"] > 1 else None,
            )
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        summary = replay_summary(report)
        self.stdout.write(
            self.style.SUCCESS(
                "  replay: {tweets} tweets ({created} new, {duplicates} duplicates, {rejected} rejected), "
                "{scored} scored, {prices} price rows, {first} .. {last}, {wall_s} s".format(**summary)
            )
        )
