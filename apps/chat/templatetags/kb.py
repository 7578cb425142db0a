"""``{% load kb %}``: ``{{ article.body|kb_markdown }}`` and ``{{ text|kb_highlight:q }}``."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from apps.chat.services.rendering import markdown_render, snippet_highlight

register = template.Library()


@register.filter
def kb_markdown(source: str) -> SafeString:
    return markdown_render(source)


@register.filter
def kb_highlight(text: str, query: str) -> SafeString:
    return snippet_highlight(text or "", query or "")
