"""Passages of the knowledge base in a FAISS index, and ``kb_search``: the reply pipeline's way in.

A task (``apps.chat.tasks``) cuts articles into passages (``services.chunking``), embeds them
with the ``embedder`` in batches (vectors kept on the ``Chunk`` rows) and writes the index with
``ml.index`` under ``TRELLIS_KB_DIR``. Every write goes to a temp file renamed over the old
one, so readers see the old index or the new one. Web processes load the file and reload it
when it changes; a request never builds it. Ids in the index are ``Chunk`` primary keys; it
holds drafts too, and ``kb_search`` filters on ``Article.published`` in the database, so a
publish toggle needs no index write and takes effect at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.chat.models import Article, Chunk
from apps.chat.services.chunking import article_chunk
from apps.chat.services.rendering import snippet
from apps.mlops.services.serving import model_get
from ml.index import VectorIndex, build_atomic

log = logging.getLogger(__name__)

EMBED_BATCH = 64  # passages per embedder call: 64 x 256 word pieces keeps MiniLM's activations ~100 MB
ARTICLE_BATCH = 200  # articles re-chunked per transaction
RELOAD_CHECK_S = 1.0  # how often a reader looks at the index file for a newer version


@dataclass(frozen=True)
class Passage:
    """One search result: a passage of an article and how close it is to the query.

    ``score`` is the cosine similarity of the query and the passage (-1..1; with the default
    MiniLM embedder a real answer usually scores above ~0.4, an unrelated passage below ~0.2).
    ``text`` is the whole passage (what a reply should be grounded in); ``snippet`` a shorter
    piece of it around the query's words, for display.
    """

    chunk_id: int
    article_id: int
    article_title: str
    heading: str
    text: str
    snippet: str
    score: float
    published: bool
    tags: list[str] = field(default_factory=list)


def index_path() -> Path:
    return Path(settings.TRELLIS_KB_DIR) / "chunks.faiss"


def _embedder() -> Any:
    return model_get("embedder")


def article_text_hash(article: Article) -> str:
    return hashlib.sha256(f"{article.title}\n{article.body}".encode()).hexdigest()


def passage_input(title: str, heading: str, text: str) -> str:
    """What the embedder reads for a passage: the article title and heading give it context."""
    return ". ".join(part for part in (title, heading, text) if part)


def chunks_embed(chunks: list[Chunk]) -> int:
    """Embeds ``chunks`` in batches of EMBED_BATCH and stores the vectors on the rows."""
    if not chunks:
        return 0
    titles = dict(Article.objects.filter(pk__in={c.article_id for c in chunks}).values_list("pk", "title"))
    texts = [passage_input(titles.get(c.article_id, ""), c.heading, c.text) for c in chunks]
    vectors = _embedder().embed(texts, batch_size=EMBED_BATCH)
    for chunk, vector in zip(chunks, vectors, strict=True):
        chunk.embedding = np.asarray(vector, dtype=np.float32).tobytes()
    Chunk.objects.bulk_update(chunks, ["embedding"], batch_size=500)
    return len(chunks)


def articles_rechunk(article_ids: Iterable[int] | None = None) -> tuple[list[int], list[int]]:
    """Re-cuts articles whose text changed since their passages were made (all, or ``article_ids``).

    Returns:
        (ids of the new chunks, ids of the chunks deleted).
    """
    queryset = Article.objects.order_by("pk").only("pk", "title", "body", "indexed_hash")
    if article_ids is not None:
        queryset = queryset.filter(pk__in=list(article_ids))
    added: list[int] = []
    removed: list[int] = []
    stale = [a for a in queryset.iterator(ARTICLE_BATCH) if a.indexed_hash != article_text_hash(a)]
    for start in range(0, len(stale), ARTICLE_BATCH):
        batch = stale[start : start + ARTICLE_BATCH]
        with transaction.atomic():
            old = Chunk.objects.filter(article__in=batch)
            removed += list(old.values_list("pk", flat=True))
            old.delete()
            rows = [
                Chunk(
                    article_id=a.pk,
                    ordinal=span.ordinal,
                    heading=span.heading,
                    text=span.text,
                    char_start=span.char_start,
                    char_end=span.char_end,
                )
                for a in batch
                for span in article_chunk(a.body)
            ]
            created = Chunk.objects.bulk_create(rows, batch_size=500)
            if any(c.pk is None for c in created):  # backends without RETURNING ids
                created = list(Chunk.objects.filter(article__in=batch, embedding__isnull=True))
            chunks_embed(list(created))
            added += [c.pk for c in created]
            now = timezone.now()
            for article in batch:  # .update(): no post_save, so no new index task
                Article.objects.filter(pk=article.pk).update(indexed_hash=article_text_hash(article), indexed_at=now)
    return added, removed


def _vectors(chunk_ids: Iterable[int] | None = None) -> tuple[list[int], np.ndarray | None]:
    queryset = Chunk.objects.exclude(embedding__isnull=True).order_by("pk")
    if chunk_ids is not None:
        queryset = queryset.filter(pk__in=list(chunk_ids))
    ids, rows = [], []
    for pk, blob in queryset.values_list("pk", "embedding").iterator(2000):
        ids.append(pk)
        rows.append(np.frombuffer(bytes(blob), dtype=np.float32))
    return ids, (np.vstack(rows) if rows else None)


@contextmanager
def _writer_lock() -> Iterator[None]:
    """One writer at a time across processes (a full build and an update may overlap)."""
    path = index_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def kb_index_build() -> dict[str, Any]:
    """Re-chunks what changed, embeds what has no vector, writes a fresh index (atomic swap)."""
    added, _ = articles_rechunk()
    chunks_embed(list(Chunk.objects.filter(embedding__isnull=True)))
    with _writer_lock():
        ids, vectors = _vectors()
        if vectors is None:
            VectorIndex(_embedder().dim, "flat").save(index_path())
            count = 0
        else:
            count = len(build_atomic(index_path(), ids, vectors, kind="auto"))
    kb_index_cache.reset()  # this process sees it at once; others within RELOAD_CHECK_S
    log.info("kb index built: %s passages (%s new)", count, len(added))
    return {"count": count, "rechunked": len(added)}


def kb_index_update(*, article_ids: list[int], removed_chunk_ids: list[int]) -> dict[str, Any]:
    """Brings the saved index in step with ``article_ids`` (saved) and ``removed_chunk_ids``
    (passages of deleted articles). Builds the whole index when there is none yet."""
    if not index_path().is_file():
        return kb_index_build()
    added, removed = articles_rechunk(article_ids)
    removed += removed_chunk_ids
    if not added and not removed:
        return {"added": 0, "removed": 0}
    ids, vectors = _vectors(added)
    with _writer_lock():
        index = VectorIndex.load(index_path())
        gone = index.remove(removed) if removed else 0
        if vectors is not None:
            index.add(ids, vectors)
        index.save(index_path())
    kb_index_cache.reset()
    return {"added": len(ids), "removed": gone, "count": len(index)}


class _IndexCache:
    """The process's loaded index, reloaded when the file on disk is replaced."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: VectorIndex | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0

    def get(self) -> VectorIndex | None:
        now = time.monotonic()
        with self._lock:
            if self._index is not None and now - self._checked < RELOAD_CHECK_S:
                return self._index
            self._checked = now
            try:
                stat = index_path().stat()
            except FileNotFoundError:
                self._index, self._stamp = None, None
                return None
            stamp = (stat.st_mtime_ns, stat.st_ino)
            if stamp != self._stamp:
                try:
                    self._index, self._stamp = VectorIndex.load(index_path()), stamp
                except (OSError, ValueError, RuntimeError):
                    log.warning("could not load the kb index at %s", index_path(), exc_info=True)
            return self._index

    def reset(self) -> None:
        with self._lock:
            self._index, self._stamp, self._checked = None, None, 0.0


kb_index_cache = _IndexCache()


def kb_index_status() -> dict[str, Any]:
    index = kb_index_cache.get()
    return {
        "built": index is not None,
        "passages": len(index) if index is not None else 0,
        "articles": Article.objects.count(),
        "published": Article.objects.filter(published=True).count(),
        "pending": Article.objects.exclude(indexed_hash="").count() < Article.objects.count(),
    }


def kb_search(
    query: str, k: int = 5, *, published_only: bool = True, vector: np.ndarray | None = None
) -> list[Passage]:
    """The ``k`` passages of the knowledge base closest in meaning to ``query``, best first.

    This is the contract the reply pipeline calls. With ``published_only`` (the default, and
    the only setting for anything customers see) passages of draft articles never come back;
    agents may search drafts too. An article can give several passages. Returns ``[]`` when
    the query is blank or no index has been built yet (run ``manage.py kb_index_build``).
    Each call embeds the query once (~5 ms with MiniLM on a CPU thread) and searches the
    index (exact below 50,000 passages); ``vector`` is the query's embedding when the caller
    has it already (``akb_search``).
    """
    query = (query or "").strip()
    if not query or k < 1:
        return []
    index = kb_index_cache.get()
    if index is None or len(index) == 0:
        return []
    if vector is None:
        vector = _embedder().embed([query], batch_size=1)[0]
    fetch = min(len(index), k * 4 if published_only else k)
    while True:
        hits = index.search(vector, fetch)[0]
        chunks = Chunk.objects.filter(pk__in=[pk for pk, _ in hits]).select_related("article").defer("embedding")
        if published_only:
            chunks = chunks.filter(article__published=True)
        by_id = {c.pk: c for c in chunks}
        ranked = [(by_id[pk], score) for pk, score in hits if pk in by_id]
        if len(ranked) >= k or fetch >= len(index):
            break
        fetch = min(len(index), fetch * 4)  # drafts (or stale ids) took places: look further
    return [
        Passage(
            chunk_id=c.pk,
            article_id=c.article_id,
            article_title=c.article.title,
            heading=c.heading,
            text=c.text,
            snippet=snippet(c.text, query),
            score=round(float(score), 4),
            published=c.article.published,
            tags=list(c.article.tags or []),
        )
        for c, score in ranked[:k]
    ]


async def akb_search(query: str, k: int = 5, *, published_only: bool = True) -> list[Passage]:
    """``kb_search`` for async callers (the reply pipeline): the query is embedded on the
    process's compute lane (``aembed``, batched with other requests), so no second OpenMP team
    runs beside it; the index search and the database in a worker thread."""
    query = (query or "").strip()
    if not query or k < 1:
        return []
    index = await sync_to_async(kb_index_cache.get)()
    if index is None or len(index) == 0:
        return []  # no model needed for an empty knowledge base
    embedder = await sync_to_async(_embedder)()
    aembed = getattr(embedder, "aembed", None)
    vector = (await aembed([query]))[0] if aembed is not None else None
    return await sync_to_async(kb_search)(query, k, published_only=published_only, vector=vector)
