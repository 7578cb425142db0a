"""The ABCD knowledge base on a throwaway embedded default, shared by the chat benchmarks
(``eval_chat_grounding.py``, ``calibrate_chat_min_score.py``).

``kb_bench_setup(prefix)`` points this process at a fresh temporary var dir (SQLite, KB index;
model artifacts from the usual artifacts dir, so the chat LM's one-off conversion is reused),
drops any PostgreSQL / Redis / broker settings and sets Django up: call it before importing
anything from ``apps``. ``kb_demo_build()`` then migrates, imports the ABCD guidelines
(``apps.chat.services.demo``) and builds the KB index in this process.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = REPO / "bench" / "data" / "chat_questions.jsonl"


def kb_bench_setup(prefix: str) -> None:
    """A fresh temporary var dir named ``prefix...``, one torch thread by default, Django set up."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    os.environ.setdefault("TRELLIS_TORCH_THREADS", "1")
    os.environ["TRELLIS_VAR_DIR"] = tempfile.mkdtemp(prefix=prefix)
    os.environ.setdefault("TRELLIS_ARTIFACTS_DIR", str(REPO / "var" / "artifacts"))
    os.environ["TRELLIS_KB_DIR"] = str(Path(os.environ["TRELLIS_VAR_DIR"]) / "kb")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()


def kb_demo_build() -> None:
    """Migrates the temporary database, imports the ABCD guidelines and indexes them."""
    from django.core.management import call_command

    from apps.chat.management.commands.kb_demo import DATASET
    from apps.chat.services.demo import demo_load
    from apps.chat.services.index import kb_index_build

    call_command("migrate", verbosity=0, skip_checks=True)
    demo_load(DATASET, queue_index=False)
    kb_index_build()
