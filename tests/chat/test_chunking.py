"""Cutting articles into passages."""

from __future__ import annotations

from apps.chat.services.chunking import article_chunk


def test_sections_follow_headings_with_their_path():
    body = (
        "# Returns\n\nGold members get unlimited returns on every order they ever placed with the store.\n\n"
        "## Silver\n\nSilver members may return items within six months when they still have the receipt.\n"
    )
    passages = article_chunk(body)
    assert [p.heading for p in passages] == ["Returns", "Returns > Silver"]
    assert passages[1].text.startswith("Silver members may return")
    assert body[passages[1].char_start : passages[1].char_end].startswith("Silver members")


def test_long_section_becomes_overlapping_windows():
    body = "# Long\n\n" + " ".join(f"w{i}" for i in range(500))
    passages = article_chunk(body, words=160, overlap=40)
    words = [p.text.split() for p in passages]
    assert all(len(w) <= 160 for w in words)
    assert words[1][0] == "w120" and words[0][-1] == "w159"  # 40 words shared
    assert words[-1][-1] == "w499"  # nothing lost at the end
    assert [p.ordinal for p in passages] == list(range(len(passages)))


def test_short_sections_merge_and_markers_are_not_words():
    body = "Intro.\n\n# Title\n\n## Part\n\n" + " ".join(["word"] * 30)
    passages = article_chunk(body)
    assert len(passages) == 1
    assert "#" not in passages[0].text and passages[0].text.startswith("Intro. Title Part")
    assert passages[0].heading == "Title > Part"


def test_empty_body_gives_no_passage():
    assert article_chunk("") == []
    assert article_chunk("   \n\n") == []
