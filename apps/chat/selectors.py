"""Reading articles."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.chat.models import Article


def article_list(*, q: str = "", tag: str = "", published: bool | None = None) -> QuerySet[Article]:
    """Articles by title words, tag and state, in title order."""
    articles = Article.objects.select_related("created_by", "updated_by")
    for word in q.split()[:10]:
        articles = articles.filter(title__icontains=word)
    if tag:
        # JSON containment is not on SQLite: match the tag as a JSON string inside the list.
        articles = articles.filter(Q(tags__icontains=f'"{tag}"'))
    if published is not None:
        articles = articles.filter(published=published)
    return articles


def article_get(pk: int) -> Article | None:
    return Article.objects.select_related("created_by", "updated_by").filter(pk=pk).first()


def tag_list() -> list[str]:
    tags: set[str] = set()
    for row in Article.objects.values_list("tags", flat=True).iterator(1000):
        tags.update(row or [])
    return sorted(tags)
