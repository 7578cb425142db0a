"""Hostile uploads (deep JSON nesting, huge label sets, long labels) get a clear 400, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.mlops.models import Dataset
from ml.finetune.data import MAX_LABEL_CHARS, MAX_LABELS
from tests.mlops.factories import UserFactory, isolate

pytestmark = pytest.mark.django_db

API = "/api/mlops/datasets/"
DEEP_JSONL = b'{"text": "profits beat estimates", "label": "positive"}\n' + b"[" * 100_000 + b"\n"
DEEP_TRANSCRIPT = (
    b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    + b'{"messages": ' * 50_000 + b"\n"
)


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path, monkeypatch):
    isolate(settings, tmp_path, monkeypatch)


def _stored_files(settings) -> list[Path]:
    root = Path(settings.STORAGES["default"]["OPTIONS"]["location"])
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.parametrize(
    ("role", "name", "body"),
    [("sentiment", "deep.jsonl", DEEP_JSONL), ("chat-lm", "chats.jsonl", DEEP_TRANSCRIPT)],
    ids=["classification", "chat-transcripts"],
)
def test_deeply_nested_jsonl_is_a_400_naming_the_line(api_client, settings, role, name, body):
    # given an admin (may train every role) and a JSONL file whose line 2 nests 100k levels
    api_client.force_authenticate(UserFactory(roles=["admin"]))
    # when it is uploaded through the API
    response = api_client.post(API, {"file": SimpleUploadedFile(name, body), "role": role}, format="multipart")
    # then it is a 400 in the error shape whose report names the line, and nothing was stored
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "dataset_rejected"
    assert any(e.startswith("line 2:") and "nested too deeply" in e for e in error["details"]["errors"])
    assert not Dataset.objects.exists()
    assert _stored_files(settings) == []


def test_deeply_nested_jsonl_on_the_upload_page_shows_the_line(client, settings):
    client.force_login(UserFactory(roles=["analyst"]))
    response = client.post(
        reverse("mlops:dataset_upload"),
        {"file": SimpleUploadedFile("deep.jsonl", DEEP_JSONL), "role": "sentiment", "name": "deep"},
    )
    assert response.status_code == 400
    assert "line 2: JSON nested too deeply" in response.content.decode()
    assert not Dataset.objects.exists()
    assert _stored_files(settings) == []


def test_too_many_labels_is_a_400_with_a_small_report(api_client):
    api_client.force_authenticate(UserFactory(roles=["analyst"]))
    body = "text,label\n" + "".join(f"headline {i} {k},label-{i}\n" for i in range(MAX_LABELS + 1) for k in range(2))
    response = api_client.post(
        API, {"file": SimpleUploadedFile("many.csv", body.encode()), "role": "sentiment"}, format="multipart"
    )
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert f"over the limit of {MAX_LABELS}" in details["errors"][0]
    assert details["label_counts"] == {}  # the refusal does not list 1001 labels back
    assert not Dataset.objects.exists()


def test_a_label_over_the_length_limit_is_a_400_naming_the_line(api_client):
    api_client.force_authenticate(UserFactory(roles=["analyst"]))
    long_label = "L" * (MAX_LABEL_CHARS + 1)
    body = f"text,label\nprofits up,positive\nshares down,negative\nflat day,{long_label}\n".encode()
    response = api_client.post(
        API, {"file": SimpleUploadedFile("long.csv", body), "role": "sentiment"}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"]["errors"] == [
        f"line 4: label is {MAX_LABEL_CHARS + 1} characters long, over the limit of {MAX_LABEL_CHARS}"
    ]
    assert not Dataset.objects.exists()
