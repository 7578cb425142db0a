"""Imports of each format: bad rows and files reported by line, the rest imported, idempotent."""

from __future__ import annotations

import json

import pytest

from apps.chat.models import Article
from apps.chat.services.imports import ImportRejected, kb_import_create

pytestmark = pytest.mark.django_db


def _outcomes(run):
    return [(e.get("line") or e.get("item"), e["outcome"]) for e in run.report]


def test_markdown_file_is_one_article_titled_by_its_first_heading():
    run = kb_import_create(files=[("returns.md", b"# Returns policy\n\nGold members get **unlimited** returns.\n")])
    article = Article.objects.get()
    assert (article.title, article.body) == ("Returns policy", "Gold members get **unlimited** returns.")
    assert (article.source_format, article.source_filename, article.published) == ("markdown", "returns.md", False)
    assert run.created == 1 and run.report[0]["article_id"] == article.pk


def test_markdown_without_heading_takes_the_file_name():
    kb_import_create(files=[("shipping-times.md", b"Orders ship in two days.")], publish=True)
    article = Article.objects.get()
    assert article.title == "shipping times" and article.published


def test_html_text_is_extracted_and_scripts_never_kept():
    page = (
        b"<html><head><title>Delivery times</title><script>alert('x')</script><style>p{}</style></head>"
        b'<body><h1>Delivery</h1><p onclick="steal()">Standard delivery takes three to five working days '
        b"for every order placed before noon.</p><script>document.cookie</script>"
        b"<p>Express delivery arrives the next day.<iframe src='https://evil.example'></iframe></p></body></html>"
    )
    kb_import_create(files=[("delivery.html", page)])
    article = Article.objects.get()
    assert article.title == "Delivery" and article.source_format == "html"  # trafilatura prefers the h1
    assert "three to five working days" in article.body and "next day" in article.body
    for bad in ("<script", "alert(", "document.cookie", "onclick", "<iframe", "<p", "p{}"):
        assert bad not in article.body


def test_json_items_imported_and_bad_items_reported_by_position():
    items = [
        {"title": "Refunds", "body": "Refunds take 5 days.", "tags": ["refunds"], "published": True},
        {"title": "", "body": "no title"},
        "not an object",
        {"title": "Boots", "body": "Waterproof.", "tags": "faq, boots", "published": "maybe"},
        {"title": "Jeans", "body": "Slim fit.", "tags": "faq; jeans", "external_id": "cms-7"},
    ]
    run = kb_import_create(files=[("faq.json", json.dumps(items).encode())])
    assert _outcomes(run) == [(1, "created"), (2, "rejected"), (3, "rejected"), (4, "rejected"), (5, "created")]
    assert "title" in run.report[1]["error"] and "published" in run.report[3]["error"]
    refunds, jeans = Article.objects.get(title="Refunds"), Article.objects.get(title="Jeans")
    assert refunds.published and refunds.tags == ["refunds"]
    assert jeans.tags == ["faq", "jeans"] and jeans.external_id == "cms-7" and not jeans.published


def test_csv_rows_reported_by_line():
    data = (
        b"title,body,tags,published\n"
        b"Refunds,Refunds take 5 days.,refunds,yes\n"
        b",Missing title,,\n"
        b'Boots,"Waterproof, and\nwarm.","faq,boots",false\n'
        b"Broken,row\n"
        b"Jacket,Warm,faq,perhaps\n"
    )
    run = kb_import_create(files=[("faq.csv", data)])
    assert _outcomes(run) == [(2, "created"), (3, "rejected"), (5, "created"), (6, "rejected"), (7, "rejected")]
    assert Article.objects.get(title="Boots").body == "Waterproof, and\nwarm."
    assert (run.total, run.created, run.rejected) == (5, 2, 3)


def test_bad_files_are_reported_and_the_others_imported():
    run = kb_import_create(
        files=[
            ("latin1.md", b"# Caf\xe9\n\nline two\n\xff"),
            ("empty.csv", b"  \n"),
            ("broken.json", b'[{"title": "a",\n "body": }]'),
            ("noheader.csv", b"name,text\nA,B\n"),
            ("notes.txt", b"hello"),
            ("good.md", b"# Good\n\nText."),
        ]
    )
    errors = {e["file"]: (e.get("line"), e["error"]) for e in run.report if e["outcome"] == "rejected"}
    assert errors["latin1.md"][0] == 1 and "UTF-8" in errors["latin1.md"][1]
    assert "empty" in errors["empty.csv"][1]
    assert errors["broken.json"][0] == 2 and "JSON" in errors["broken.json"][1]
    assert "title and body" in errors["noheader.csv"][1]
    assert "unknown file type" in errors["notes.txt"][1]
    assert list(Article.objects.values_list("title", flat=True)) == ["Good"]


def test_size_and_count_limits(settings):
    settings.TRELLIS_KB_MAX_IMPORT_BYTES = 100
    run = kb_import_create(files=[("big.md", b"# Big\n\n" + b"x" * 200), ("small.md", b"# Small\n\nok")])
    assert [e["outcome"] for e in run.report] == ["rejected", "created"] and "KiB" in run.report[0]["error"]
    settings.TRELLIS_KB_MAX_IMPORT_FILES = 1
    with pytest.raises(ImportRejected):
        kb_import_create(files=[("a.md", b"# A"), ("b.md", b"# B")])
    with pytest.raises(ImportRejected):
        kb_import_create(files=[])


def test_importing_again_is_idempotent_and_updates_changed_items():
    first = b"title,body,external_id\nRefunds,Five days.,r-1\nBoots,Waterproof.,\n"
    kb_import_create(files=[("faq.csv", first)])
    again = kb_import_create(files=[("faq.csv", first)])
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    changed = b"title,body,external_id\nRefunds (new),Three days.,r-1\nBoots,Waterproof and warm.,\n"
    third = kb_import_create(files=[("faq.csv", changed)])
    assert (third.created, third.updated) == (0, 2)
    assert Article.objects.count() == 2
    assert Article.objects.get(external_id="r-1").title == "Refunds (new)"
