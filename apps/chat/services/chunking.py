"""Articles into passages: by heading first, then windows of words with overlap.

A passage keeps its heading path ("Returns > Gold members") and its character span in the
article body. Sections shorter than ``MIN_WORDS`` are merged into the next one so that a
lone heading or a one-line intro does not become a passage of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
WORD = re.compile(r"\S+")
MARKS = re.compile(r"^(#{1,6}|[-*_=]{3,})$")  # heading markers and rules: not words of the passage
MIN_WORDS = 12


@dataclass(frozen=True)
class ChunkSpan:
    ordinal: int
    heading: str
    text: str
    char_start: int
    char_end: int


@dataclass
class _Section:
    heading: str
    start: int
    end: int


def _sections(body: str) -> list[_Section]:
    sections: list[_Section] = []
    path: list[tuple[int, str]] = []  # (level, title) of the headings above
    start, heading = 0, ""
    for match in HEADING.finditer(body):
        sections.append(_Section(heading, start, match.start()))
        level = len(match.group(1))
        path = [(lv, title) for lv, title in path if lv < level] + [(level, match.group(2).strip())]
        heading = " > ".join(title for _, title in path)
        start = match.end()
    sections.append(_Section(heading, start, len(body)))
    return [s for s in sections if body[s.start : s.end].strip()]


def _merge_short(body: str, sections: list[_Section]) -> list[_Section]:
    merged: list[_Section] = []
    carry: _Section | None = None
    for section in sections:
        if carry is not None:
            section = _Section(section.heading or carry.heading, carry.start, section.end)
            carry = None
        if len(WORD.findall(body[section.start : section.end])) < MIN_WORDS:
            carry = section
            continue
        merged.append(section)
    if carry is not None:
        if merged:
            merged[-1] = _Section(merged[-1].heading, merged[-1].start, carry.end)
        else:
            merged.append(carry)
    return merged


def article_chunk(body: str, *, words: int | None = None, overlap: int | None = None) -> list[ChunkSpan]:
    """Passages of ``body`` (Markdown); windows of ``words`` words, ``overlap`` shared."""
    size = words or settings.TRELLIS_KB_CHUNK_WORDS
    shared = settings.TRELLIS_KB_CHUNK_OVERLAP if overlap is None else overlap
    if not 0 <= shared < size:
        raise ValueError(f"overlap must be in [0, {size}), got {shared}")
    passages: list[ChunkSpan] = []
    for section in _merge_short(body, _sections(body)):
        spans = [
            (m.start() + section.start, m.end() + section.start)
            for m in WORD.finditer(body[section.start : section.end])
        ]
        # One window when the section fits in 1.25 windows: no tiny tail passage.
        step = size - shared
        starts = [0] if len(spans) <= size * 5 // 4 else list(range(0, len(spans) - shared, step))
        for first in starts:
            window = spans[first : first + size] if len(starts) > 1 else spans
            if first and len(window) <= shared:
                break
            char_start, char_end = window[0][0], window[-1][1]
            text = " ".join(w for w in WORD.findall(body[char_start:char_end]) if not MARKS.match(w))
            passages.append(ChunkSpan(len(passages), section.heading[:500], text, char_start, char_end))
    return passages
