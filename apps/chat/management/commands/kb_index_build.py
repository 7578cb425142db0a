"""``manage.py kb_index_build``: re-chunks changed articles, embeds and writes the whole index."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.chat.services.index import kb_index_build


class Command(BaseCommand):
    help = "Builds the knowledge-base search index from every article (atomic swap of the index file)."

    def handle(self, *args, **options):
        result = kb_index_build()
        self.stdout.write(f"kb index: {result['count']} passages ({result['rechunked']} re-cut)")
