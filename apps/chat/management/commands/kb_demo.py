"""``manage.py kb_demo``: the ABCD store policies as published articles, then the index.

Run by ``make run`` (settings.TRELLIS_DEMO_COMMANDS). Skips with a message when the data set
is not beside the repository (../shared/datasets/abcd_kb_only). Idempotent: articles are
matched by their external id, and the index only re-embeds what changed.
"""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.chat.services.demo import FILES, demo_load
from apps.chat.services.index import kb_index_build

DATASET = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "abcd_kb_only"


class Command(BaseCommand):
    help = "Imports the ABCD store policies as published knowledge-base articles and builds the search index."

    def add_arguments(self, parser):
        parser.add_argument("--path", default=str(DATASET), help="the abcd_kb_only folder")

    def handle(self, *args, path: str, **options):
        folder = Path(path)
        if not all((folder / name).is_file() for name in FILES):
            self.stdout.write(self.style.WARNING(f"  kb demo skipped: no ABCD data set at {folder}"))
            return
        started = time.perf_counter()
        counts = demo_load(folder, queue_index=False)
        index = kb_index_build()  # here, once, rather than by a worker that may not run yet
        self.stdout.write(
            f"  kb demo: {counts['created']} articles created, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged; index of {index['count']} passages "
            f"({time.perf_counter() - started:.1f} s)"
        )
