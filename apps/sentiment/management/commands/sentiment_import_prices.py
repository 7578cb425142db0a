"""``manage.py sentiment_import_prices``: daily prices of watched entities, from StockNet or a CSV.

manage.py sentiment_import_prices --stocknet [--symbols AAPL,MSFT]
manage.py sentiment_import_prices --csv prices.csv   # symbol,date,open,close,adj_close,volume
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.sentiment.services.prices import PricesRejected, prices_import_csv, prices_import_stocknet
from apps.sentiment.services.replay import DATASET


class Command(BaseCommand):
    help = "Imports daily prices for entities on the watchlist (StockNet price files or a CSV)."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument(
            "--stocknet", nargs="?", const=str(DATASET), metavar="PATH", help=f"the StockNet folder (default {DATASET})"
        )
        group.add_argument("--csv", metavar="FILE", help="a CSV: symbol,date,close (+ open, adj_close, volume)")
        parser.add_argument("--symbols", help="comma-separated tickers (StockNet; default: every entity)")

    def handle(self, *args, stocknet: str | None, csv: str | None, symbols: str | None, **options):
        try:
            if stocknet:
                wanted = [s.strip().upper() for s in symbols.split(",")] if symbols else None
                report = prices_import_stocknet(stocknet, symbols=wanted)
            else:
                report = prices_import_csv(Path(csv).read_bytes())
        except (FileNotFoundError, PricesRejected) as exc:
            raise CommandError(str(exc)) from exc
        for error in report.line_errors[:20]:
            self.stdout.write(self.style.WARNING(f"  line {error['line']}: {error['error']}"))
        self.stdout.write(
            self.style.SUCCESS(
                f"  prices: {report.stored} rows for {', '.join(report.symbols) or 'no symbol'}; "
                f"{report.rejected} rejected; unknown symbols: {', '.join(report.unknown_symbols) or 'none'}"
            )
        )
