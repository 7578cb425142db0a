"""``manage.py recommend_fit``: embeds what is missing, rebuilds the index, fits the recommenders."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.recommend.services.engine import recommenders_fit
from apps.recommend.services.index import item_index_build


class Command(BaseCommand):
    help = "Rebuilds the item index and fits the recommenders in this process (what the tasks do)."

    def handle(self, *args, **options):
        self.stdout.write(f"index: {item_index_build()}")
        self.stdout.write(f"fit: {recommenders_fit()}")
