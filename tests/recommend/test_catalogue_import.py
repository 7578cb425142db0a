"""Catalogue import (CSV, JSON lines): per-line report, whole-file refusals, upserts; item CRUD."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.recommend.models import CatalogueImport, Item
from apps.recommend.services.index import item_index_get

pytestmark = pytest.mark.django_db

GOOD = (
    "external_id,title,description,category,price,available,attributes\n"
    "m1,Red mug,A red ceramic mug,Kitchen,4.50,yes,\"{\"\"colour\"\": \"\"red\"\"}\"\n"
    "m2,Blue mug,,Kitchen,not-a-price,yes,\n"
    "m3,Garden hose,\"Twenty metres,\nreinforced\",Garden,19,no,\n"
    "bad id!,Broken,,Kitchen,1,yes,\n"
    "m1,Red mug again,,Kitchen,1,yes,\n"
    "m4,Spade,,Garden,,,\n"
)


def upload(client, content: bytes, name: str = "items.csv", **extra):
    return client.post("/api/recommend/imports/", {"file": SimpleUploadedFile(name, content), **extra},
                       format="multipart")


def test_good_rows_imported_bad_rows_reported_by_line(merch_client):
    response = upload(merch_client, GOOD.encode())

    assert response.status_code == 202, response.content
    run = CatalogueImport.objects.get()
    assert run.status == "succeeded" and run.progress == 1.0
    assert (run.total_rows, run.created, run.rejected) == (3, 3, 3)
    assert run.line_errors == [
        {"line": 3, "error": "price: not a number ('not-a-price')"},
        {"line": 6, "error": "external_id: use 1-100 letters, digits, '.', '_', ':' or '-'"},
        {"line": 7, "error": "external_id m1 repeats line 2"},
    ]
    mug = Item.objects.get(external_id="m1")
    assert (mug.price, mug.attributes, mug.available) == (pytest.approx(4.5), {"colour": "red"}, True)
    assert Item.objects.get(external_id="m3").description == "Twenty metres,\nreinforced"
    assert Item.objects.get(external_id="m3").available is False
    # The import's task queued the index update: every imported item is embedded and indexed.
    assert len(item_index_get()) == 3
    assert merch_client.get(f"/api/recommend/imports/{run.pk}/").json()["line_errors"][0]["line"] == 3


def test_reimport_updates_and_re_embeds_changed_text_only(merch_client):
    upload(merch_client, b"external_id,title,category\nm1,Red mug,Kitchen\nm2,Blue mug,Kitchen\n")
    before = {i.external_id: i.embedded_at for i in Item.objects.all()}

    upload(merch_client, b"external_id,title,category,price\nm1,Red mug,Kitchen,3\nm2,Navy mug,Kitchen,\n")

    run = CatalogueImport.objects.first()
    assert (run.created, run.updated) == (0, 2)
    after = {i.external_id: i for i in Item.objects.all()}
    assert after["m1"].embedded_at == before["m1"]  # only the price changed
    assert after["m2"].embedded_at != before["m2"] and after["m2"].title == "Navy mug"


@pytest.mark.parametrize(("content", "code", "message"), [
    (b"external_id,title\nm1,\"Unclosed quote\nm2,Fine\n", "import_rejected", "The CSV is broken"),
    ("external_id,title\nm1,Caf\u00e9\n".encode("latin-1"), "import_rejected", "not UTF-8"),
    (b"id,name\nm1,Mug\n", "import_rejected", "missing external_id, title"),
    (b"\n\n", "import_rejected", "empty"),
    (b"", "invalid", "empty"),
])
def test_unreadable_files_are_refused_whole(merch_client, content, code, message):
    response = upload(merch_client, content)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert message in response.json()["error"]["message"]
    assert not Item.objects.exists() and not CatalogueImport.objects.exists()


def test_jsonl_import_reports_lines(merch_client):
    content = b'{"external_id": "j1", "title": "Lamp", "price": 12}\nnot json\n[1]\n{"external_id": "j2"}\n'

    response = upload(merch_client, content, name="items.jsonl")

    assert response.status_code == 202
    assert [e["line"] for e in response.json()["line_errors"]] == [2, 3, 4]
    assert list(Item.objects.values_list("external_id", flat=True)) == ["j1"]


def test_item_crud_through_the_api_keeps_the_index_in_step(merch_client):
    created = merch_client.post("/api/recommend/items/", {"external_id": "x1", "title": "Oak table",
                                                          "category": "Furniture", "price": "120.00"})
    assert created.status_code == 201, created.content
    assert merch_client.post("/api/recommend/items/", {"external_id": "x1", "title": "Again"}).status_code == 400
    merch_client.post("/api/recommend/items/", {"external_id": "x2", "title": "Oak chair"})
    assert len(item_index_get()) == 2

    patched = merch_client.patch("/api/recommend/items/x1/", {"available": False, "price": "99"})
    assert patched.status_code == 200 and patched.json()["available"] is False

    assert merch_client.delete("/api/recommend/items/x2/").status_code == 204
    assert merch_client.get("/api/recommend/items/x2/").status_code == 404
    index = item_index_get()
    assert len(index) == 1 and index.search(index_vector("x1"), 5)[0][0][0] == Item.objects.get().pk
    listed = merch_client.get("/api/recommend/items/?q=oak").json()
    assert [row["external_id"] for row in listed["results"]] == ["x1"]


def index_vector(external_id: str):
    from apps.recommend.services.index import vector_of

    return vector_of(Item.objects.get(external_id=external_id))
