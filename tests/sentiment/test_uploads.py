"""CSV / JSON-lines uploads: bad lines (non-UTF-8 included) reported by number, the rest ingested."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.sentiment.models import Document, Source
from apps.sentiment.services.uploads import UploadRejected, documents_upload

pytestmark = pytest.mark.django_db

CSV = (
    b"text,title,published_at,url,external_id,language,desk\n"
    b"Apple beats estimates,Apple Q1,2025-03-03T09:00:00Z,https://n.example/1,n-1,en,tech\n"
    b",empty text,2025-03-03,,n-2,,tech\n"
    b"Tesla misses,Tesla,next tuesday,,n-3,,autos\n"
    b"Caf\xe9 chain Starbucks rises,,2025-03-03,,n-4,,food\n"
    b"too,few,columns\n"
    b'"Microsoft, quoted, with commas",MS,1741000000,,n-6,,tech\n'
)


def test_csv_bad_lines_are_reported_by_number_and_the_rest_ingested(watchlist):
    report = documents_upload(data=CSV, filename="news.csv")

    assert (report.rows, report.created, report.rejected) == (6, 2, 4)
    assert {e["line"]: e["error"] for e in report.line_errors} == {
        3: "text: required",
        4: "published_at: not a date or time ('next tuesday'); use ISO 8601",
        5: "not UTF-8: byte 0xe9 in text",
        6: "3 columns, the header has 7",
    }
    assert report.ignored_columns == ["desk"]
    docs = {d.external_id: d for d in Document.objects.all()}
    assert set(docs) == {"n-1", "n-6"}
    assert docs["n-1"].source.name == "Uploads" and docs["n-1"].title == "Apple Q1"
    assert docs["n-6"].text == "Microsoft, quoted, with commas"
    assert docs["n-6"].published_at.isoformat() == "2025-03-03T11:06:40+00:00"  # epoch seconds
    assert docs["n-1"].scores.get().label == "positive"


def test_jsonl_bad_lines_are_reported_and_a_second_upload_is_all_duplicates(watchlist):
    lines = [
        json.dumps({"text": "Apple upgraded to buy", "external_id": "j-1"}).encode(),
        b"{not json",
        b"[1, 2]",
        json.dumps({"text": "Tesla recall widens"}).encode().replace(b"recall", b"r\xffcall"),
        json.dumps({"text": 42}).encode(),
        json.dumps({"text": "Microsoft slumps", "published_at": "2025-03-03"}).encode(),
    ]
    data = b"\n".join(lines) + b"\n"

    report = documents_upload(data=data, filename="news.jsonl")
    again = documents_upload(data=data, filename="news.jsonl")

    assert report.created == 2
    assert [e["line"] for e in report.line_errors] == [2, 3, 4, 5]
    assert report.line_errors[2]["error"] == "not UTF-8: byte 0xff"
    assert report.line_errors[3]["error"] == "text: required"
    assert (again.created, again.duplicates) == (0, 2)
    assert Document.objects.count() == 2


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"title,url\nx,y\n", "no 'text' column"),
        (b"", "empty"),
        (b"text\n" + b"x" * 200, "limit"),
    ],
)
def test_an_unreadable_file_is_refused_whole(data, why, settings):
    settings.TRELLIS_SENTIMENT_MAX_UPLOAD_BYTES = 100

    with pytest.raises(UploadRejected, match=why):
        documents_upload(data=data, filename="x.csv")
    assert not Document.objects.exists()


def test_upload_api_reports_lines_and_refuses_files_in_the_error_shape(analyst_client, watchlist):
    ok = analyst_client.post(
        "/api/sentiment/uploads/",
        {"file": SimpleUploadedFile("news.csv", CSV, content_type="text/csv")},
        format="multipart",
    )
    refused = analyst_client.post(
        "/api/sentiment/uploads/", {"file": SimpleUploadedFile("x.csv", b"title\nx\n")}, format="multipart"
    )
    push = Source.objects.create(name="wire", kind=Source.Kind.PUSH)
    wrong = analyst_client.post(
        "/api/sentiment/uploads/", {"file": SimpleUploadedFile("x.csv", CSV), "source": push.pk}, format="multipart"
    )

    assert ok.status_code == 200, ok.content
    assert (ok.json()["created"], ok.json()["rejected"]) == (2, 4)
    assert ok.json()["line_errors"][0] == {"line": 3, "error": "text: required"}
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "upload_rejected"
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "wrong_kind"
