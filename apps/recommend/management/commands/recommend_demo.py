"""``manage.py recommend_demo``: a slice of UCI Online Retail, then the index and the fit.

Run by ``make run`` (settings.TRELLIS_DEMO_COMMANDS). Skips with a message when the data
set is not beside the repository (../shared/datasets/uci_online_retail) or the catalogue
already has items.
"""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.recommend.models import Item
from apps.recommend.services.demo import DEMO_LINES, demo_load
from apps.recommend.services.engine import recommenders_fit
from apps.recommend.services.index import item_index_build

DATASET = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "uci_online_retail"


class Command(BaseCommand):
    help = "Loads a slice of UCI Online Retail into the catalogue, builds the index and fits the recommenders."

    def add_arguments(self, parser):
        parser.add_argument("--path", default=str(DATASET), help="the data set folder or online_retail.csv(.gz)")
        parser.add_argument("--lines", type=int, default=DEMO_LINES, help="lines of the file to read")
        parser.add_argument("--force", action="store_true", help="load even when the catalogue has items")

    def handle(self, *args, path: str, lines: int, force: bool, **options):
        source = Path(path)
        if not source.exists():
            self.stdout.write(self.style.WARNING(f"  recommend demo skipped: no data set at {source}"))
            return
        if Item.objects.exists() and not force:
            self.stdout.write("  recommend demo: the catalogue already has items; nothing loaded")
            return
        started = time.perf_counter()
        loaded = demo_load(source, lines=lines)
        self.stdout.write(f"  recommend demo: {loaded['items']} products, {loaded['customers']} customers, "
                          f"{loaded['events']} purchases ({time.perf_counter() - started:.1f} s)")
        index = item_index_build()
        self.stdout.write(f"  recommend demo: index of {index['count']} items ({time.perf_counter() - started:.1f} s)")
        fit = recommenders_fit()
        self.stdout.write(f"  recommend demo: recommenders fitted on {fit['events']} events "
                          f"({time.perf_counter() - started:.1f} s)")
