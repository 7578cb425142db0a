"""Article Markdown to safe HTML, and highlighted search snippets.

Every page that shows an article goes through ``markdown_render`` (the ``kb_markdown``
template filter). Two layers: markdown-it-py with raw HTML off (a ``<script>`` in the source
comes out as text, and its link validator drops ``javascript:``/``vbscript:``/``data:`` URLs),
then nh3 (ammonia) keeps only ``ALLOWED_TAGS``/``ALLOWED_ATTRIBUTES`` and ``http``/``https``/
``mailto`` links, and gives every link ``rel="noopener nofollow"``.
"""

from __future__ import annotations

import re
from functools import lru_cache

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "strong",
    "em",
    "del",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "noopener nofollow"
SNIPPET_CHARS = 240
STOPWORDS = frozenset(
    "a an and are as at be but by can do does for from has have how i if in is it my of on or our so that the "
    "their them they this to was we what when where which who why will with you your".split()
)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # "commonmark" preset, raw HTML off, tables and strikethrough on; no linkify (bare URLs stay text).
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def markdown_render(source: str) -> SafeString:
    """Markdown -> sanitised HTML, safe to put in a page as it is."""
    html = _parser().render(source or "")
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=LINK_REL,
        strip_comments=True,
    )
    return mark_safe(clean)  # noqa: S308  # nosec B308 B703 - nh3 output: only the allowed tags and attributes remain


def query_terms(query: str) -> list[str]:
    """Words of a search query worth highlighting (3+ letters, not stopwords), longest first."""
    words = {w for w in re.findall(r"\w+", query.lower()) if len(w) >= 3 and w not in STOPWORDS}
    return sorted(words, key=len, reverse=True)


def snippet(text: str, query: str, *, limit: int = SNIPPET_CHARS) -> str:
    """Up to ``limit`` characters of ``text`` around the first query word found (plain text)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    lowered = flat.lower()
    hits = [lowered.find(term) for term in query_terms(query)]
    first = min((h for h in hits if h >= 0), default=0)
    start = max(0, min(first - limit // 4, len(flat) - limit))
    if start:  # begin at a word boundary
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < first else start
    piece = flat[start : start + limit].rstrip()
    return ("…" if start else "") + piece + ("…" if start + limit < len(flat) else "")


def snippet_highlight(text: str, query: str) -> SafeString:
    """``snippet`` as HTML with the query's words in ``<mark>``; everything else escaped."""
    terms = query_terms(query)
    if not terms:
        return mark_safe(escape(text))  # noqa: S308  # nosec B308 B703 - escaped
    pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)
    parts, last = [], 0
    for match in pattern.finditer(text):
        parts.append(escape(text[last : match.start()]))
        parts.append(f"<mark>{escape(match.group(0))}</mark>")
        last = match.end()
    parts.append(escape(text[last:]))
    return mark_safe("".join(parts))  # noqa: S308  # nosec B308 B703 - every piece of the text is escaped
