"""``manage.py chat_demo``: the demo shop's widget route and the demo intent model.

Run by ``make run`` (settings.TRELLIS_DEMO_COMMANDS, after ``kb_demo``), which passes the
suite's own URL: the "demo" route allows it (and its localhost / 127.0.0.1 twin), so the shop
page /chat/shop/ and any page served there can embed the widget. The intent model is trained
from ../shared/datasets/bitext_customer_service_intent (skipped with a message when the data
set is missing), with out-of-scope examples from ../shared/datasets/banking77 when present.
Idempotent: a second start changes nothing and trains nothing.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import User
from apps.chat.services.intent_demo import FILES, PER_INTENT, intent_demo_train
from apps.chat.services.routes import demo_route_ensure

DATASET = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "bitext_customer_service_intent"
OOS_DATASET = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "banking77"


def _origins(url: str) -> list[str]:
    """The suite's URL, and the same port on the other loopback name (a browser may use either)."""
    parts = urlsplit(url)
    origins = [f"{parts.scheme}://{parts.netloc}"]
    twins = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}
    if parts.hostname in twins:
        port = f":{parts.port}" if parts.port else ""
        origins.append(f"{parts.scheme}://{twins[parts.hostname]}{port}")
    return origins


class Command(BaseCommand):
    help = "Creates the demo shop's widget route and trains the demo intent model (Bitext, few-shot)."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the suite's own URL (an allowed origin)")
        parser.add_argument("--path", default=str(DATASET), help="the bitext_customer_service_intent folder")
        parser.add_argument("--per-intent", type=int, default=PER_INTENT, help="training rows per intent")
        parser.add_argument("--oos-path", default=str(OOS_DATASET),
                            help="the banking77 folder whose banking questions are the out-of-scope examples")

    def handle(self, *args, url: str, path: str, per_intent: int, oos_path: str, **options):
        try:
            route = demo_route_ensure(origins=_origins(url))
        except Exception as exc:  # a bad --url: say which, as a command error
            raise CommandError(f"--url {url!r}: {exc}") from exc
        added = ", ".join(route.origins_added) or "none new"
        self.stdout.write(
            f"  chat demo: route {route.route.key!r} {'created' if route.created else 'kept'} "
            f"(origins added: {added}); shop page {url.rstrip('/')}/chat/shop/"
        )
        folder = Path(path)
        if not all((folder / name).is_file() for name in FILES):
            self.stdout.write(self.style.WARNING(f"  chat demo: intent model skipped: no Bitext data set at {folder}"))
            return
        owner = User.objects.filter(username="admin").first()
        try:
            result = intent_demo_train(folder, per_intent=per_intent, user=owner, oos_folder=Path(oos_path))
        except (OSError, ValueError) as exc:
            self.stdout.write(self.style.WARNING(f"  chat demo: intent model not trained: {exc}"))
            return
        what = "trained" if result.trained else "already trained"
        served = "serving as 'intent'" if result.promoted else "a candidate (another intent model is active)"
        accuracy = (
            f"; Bitext test accuracy {result.test_accuracy:.3f} on {result.test_rows} rows"
            if result.test_accuracy is not None
            else ""
        )
        if result.oos_recall is not None:
            accuracy += (f"; says 'not mine' to {result.oos_recall:.0%} of held-out banking questions "
                         f"({result.oos_recall_unseen or 0:.0%} of kinds it never saw), answers "
                         f"{result.in_scope_answered:.0%} of the shop's questions right")
        self.stdout.write(
            f"  chat demo: intent model {result.version} {what} ({result.labels} intents, "
            f"{result.train_rows} rows, {result.oos_rows} out-of-scope examples), {served}{accuracy} "
            f"({result.seconds:.1f} s)"
        )
