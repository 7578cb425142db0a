"""``manage.py sentiment_score``: score pending documents now, or rescore the history.

manage.py sentiment_score                    # every document without a live score
manage.py sentiment_score --rescore VERSION  # the live-scored history with another version
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.sentiment.services.scoring import VersionUnavailable, documents_rescore, documents_score_pending


class Command(BaseCommand):
    help = "Scores documents without a live score (or rescores the history with --rescore VERSION)."

    def add_arguments(self, parser):
        parser.add_argument("--rescore", metavar="VERSION", help="a sentiment model version")
        parser.add_argument("--batch-size", type=int, help="documents per transaction (default: the setting)")
        parser.add_argument("--max-batches", type=int, help="stop after this many batches")

    def handle(self, *args, rescore: str | None, batch_size: int | None, max_batches: int | None, **options):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be >= 1")
        try:
            if rescore:
                result = documents_rescore(version=rescore, batch_size=batch_size, max_batches=max_batches)
            else:
                result = documents_score_pending(batch_size=batch_size, max_batches=max_batches)
        except VersionUnavailable as exc:
            raise CommandError(str(exc)) from exc
        state = "all done" if result["finished"] else "more pending"
        self.stdout.write(
            self.style.SUCCESS(
                f"  scored {result['documents']} documents ({result['entity_scores']} entity scores) with "
                f"{result['version']} in {result['batches']} batches; {state}"
            )
        )
