"""The passage index follows article saves and deletes (tasks run inline); drafts stay hidden."""

from __future__ import annotations

import numpy as np
import pytest

from apps.chat.models import Article, Chunk
from apps.chat.services.articles import article_create, article_delete, article_update
from apps.chat.services.index import VectorIndex, index_path, kb_index_build, kb_search

pytestmark = pytest.mark.django_db


def _indexed_ids() -> set[int]:
    """Every id in the saved index (an exact index: a search for len(index) returns all)."""
    index = VectorIndex.load(index_path())
    if len(index) == 0:
        return set()
    return {pk for pk, _ in index.search(np.ones(index.dim, dtype=np.float32), len(index))[0]}


def _article(title: str, body: str, *, published: bool = True) -> Article:
    return article_create(values={"title": title, "body": body, "published": published})


def test_saving_an_article_indexes_its_passages():
    article = _article("Garden hose", "The garden hose is green and twenty metres long.")
    chunks = list(Chunk.objects.filter(article=article))
    assert len(chunks) == 1 and chunks[0].embedding is not None
    assert _indexed_ids() == {chunks[0].pk}
    assert kb_search("garden hose", 3)[0].article_id == article.pk


def test_editing_the_text_replaces_the_passages_and_a_publish_toggle_does_not():
    article = _article("Hose", "The garden hose is green.")
    old = set(Chunk.objects.values_list("pk", flat=True))
    article_update(article=article, values={"body": "The watering can holds ten litres."})
    new = set(Chunk.objects.values_list("pk", flat=True))
    assert old.isdisjoint(new) and _indexed_ids() == new
    assert kb_search("watering can litres", 1)[0].text == "The watering can holds ten litres."
    article_update(article=article, values={"published": False, "tags": ["garden"]})
    assert set(Chunk.objects.values_list("pk", flat=True)) == new  # same passages, no re-embedding


def test_deleting_an_article_removes_its_passages_from_the_index():
    keep = _article("Mug", "A red ceramic mug for tea.")
    doomed = _article("Teapot", "A glass teapot for green tea.")
    doomed_chunks = set(Chunk.objects.filter(article=doomed).values_list("pk", flat=True))
    article_delete(article=doomed)
    assert _indexed_ids() == set(Chunk.objects.filter(article=keep).values_list("pk", flat=True))
    assert not doomed_chunks & _indexed_ids()
    assert all(p.article_id == keep.pk for p in kb_search("glass teapot green tea", 5))


def test_drafts_are_hidden_from_published_only_search():
    draft = _article("Secret sale", "The secret winter sale starts on Friday with half prices.", published=False)
    public = _article("Opening hours", "The shop opens at nine in the morning.")
    assert [p.article_id for p in kb_search("secret winter sale", 5)] == [public.pk]
    assert kb_search("secret winter sale", 5, published_only=False)[0].article_id == draft.pk


def test_published_search_looks_past_many_drafts():
    for n in range(12):
        _article(f"Draft {n}", "refund policy draft text number", published=False)
    public = _article("Refund policy", "refund policy for customers")
    results = kb_search("refund policy draft text", 1)
    assert [p.article_id for p in results] == [public.pk]


def test_full_build_matches_the_articles_and_empty_queries_find_nothing():
    a = _article("One", "first article text")
    Chunk.objects.filter(article=a).update(embedding=None)  # as after a crash mid-embedding
    result = kb_index_build()
    assert result["count"] == Chunk.objects.count() == 1
    assert kb_search("", 5) == [] and kb_search("first", 0) == []
