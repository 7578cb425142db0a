"""Article rendering: Markdown in, only allowed HTML out."""

from __future__ import annotations

from apps.chat.services.rendering import markdown_render, snippet, snippet_highlight


def test_markdown_becomes_html():
    html = markdown_render("# Returns\n\n**Gold** members: [policy](https://shop.example/returns)\n\n- one\n- two")
    assert "<h1>Returns</h1>" in html
    assert "<strong>Gold</strong>" in html
    assert '<a href="https://shop.example/returns" rel="noopener nofollow">policy</a>' in html
    assert "<li>one</li>" in html


def test_raw_html_is_shown_as_text_never_as_markup():
    html = markdown_render('<script>alert(1)</script>\n\n<img src=x onerror="alert(2)">\n\n<div style="x">hi</div>')
    assert "<script" not in html and "<img" not in html and "<div" not in html
    assert "&lt;script&gt;" in html


def test_dangerous_links_are_dropped():
    html = markdown_render(
        "[a](javascript:alert(1)) [b](vbscript:x) [c](data:text/html;base64,PHNjcmlwdD4=) "
        "[d](JaVaScRiPt:alert(1)) <javascript:alert(3)>"
    )
    assert "href" not in html


def test_snippet_highlight_escapes_and_marks_query_words():
    html = snippet_highlight("Refund <b>policy</b> for gold members", "refund policy?")
    assert html == "<mark>Refund</mark> &lt;b&gt;<mark>policy</mark>&lt;/b&gt; for gold members"


def test_snippet_centres_on_the_first_query_word():
    text = " ".join(["filler"] * 200) + " the refund arrives in five days " + " ".join(["more"] * 100)
    piece = snippet(text, "when does my refund arrive", limit=120)
    assert "refund arrives" in piece and piece.startswith("…") and len(piece) <= 122
