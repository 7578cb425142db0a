"""Objects the access matrix (tests/core/test_access_matrix.py) needs for the knowledge base."""

from __future__ import annotations

from typing import Any


def kb_access_objects(settings: Any, tmp_path: Any) -> dict[str, int]:
    """Two articles (one to delete) and an import; the index lives under ``tmp_path`` and is
    never written here (index tasks wait for a commit that the test's transaction never makes)."""
    from apps.chat.models import Article, KbImport
    from apps.chat.services import index

    settings.TRELLIS_KB_DIR = tmp_path / "kb"
    index.kb_index_cache.reset()
    article = Article.objects.create(title="Matrix returns policy", body="Return within 30 days.", published=True)
    doomed = Article.objects.create(title="Matrix doomed article", body="To be deleted.")
    run = KbImport.objects.create(
        filenames=["faq.csv"],
        total=1,
        created=1,
        report=[{"file": "faq.csv", "line": 2, "title": "x", "outcome": "created"}],
    )
    return {"kb_article": article.pk, "kb_doomed": doomed.pk, "kb_import": run.pk}
