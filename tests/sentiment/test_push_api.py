"""The push API and the sources API: idempotent batches, per-item rejections, roles."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.sentiment.models import Document, Source

pytestmark = pytest.mark.django_db

BATCH = {
    "documents": [
        {"text": "Apple beats estimates", "external_id": "w-1", "published_at": "2025-03-03T09:00:00Z"},
        {"text": "Tesla misses deliveries", "external_id": "w-2", "url": "https://w.example/2"},
        {"text": "", "external_id": "w-3"},
    ]
}


def _push(client, source, payload=BATCH):
    return client.post(f"/api/sentiment/sources/{source.pk}/documents/", payload, format="json")


def test_a_batch_pushed_twice_is_stored_once(analyst_client, push_source, watchlist):
    first = _push(analyst_client, push_source)
    again = _push(analyst_client, push_source)

    assert first.status_code == 200, first.content
    assert (first.json()["created"], first.json()["duplicates"]) == (2, 0)
    assert first.json()["rejected"] == [
        {"index": 2, "external_id": "w-3", "error": "text: empty after removing white space"}
    ]
    assert (again.json()["created"], again.json()["duplicates"]) == (0, 2)
    assert Document.objects.count() == 2
    assert sorted(Document.objects.values_list("scores__label", flat=True)) == ["negative", "positive"]


def test_a_batch_over_the_limit_is_refused_whole(analyst_client, push_source, settings):
    from apps.sentiment import serializers

    limit = serializers.DocumentPushInputSerializer().fields["documents"].max_length
    response = _push(analyst_client, push_source, {"documents": [{"text": f"n {i}"} for i in range(limit + 1)]})

    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    assert not Document.objects.exists()


@pytest.mark.parametrize(
    ("kind", "enabled", "code"), [(Source.Kind.FEED, True, "wrong_kind"), (Source.Kind.PUSH, False, "source_disabled")]
)
def test_only_enabled_push_sources_take_pushes(analyst_client, kind, enabled, code):
    source = Source.objects.create(
        name="s", kind=kind, url="https://f.example/rss" if kind == "feed" else "", enabled=enabled
    )

    response = _push(analyst_client, source)

    assert response.status_code == 409 and response.json()["error"]["code"] == code


def test_roles_analyst_pushes_merchandiser_is_refused_anonymous_must_sign_in(push_source, merch_client, make_user):
    admin = APIClient()
    admin.force_authenticate(make_user("admin"))

    assert _push(merch_client, push_source).status_code == 403
    assert _push(APIClient(), push_source).status_code == 401
    assert _push(admin, push_source).status_code == 200
    assert merch_client.get("/api/sentiment/sources/").json()["error"]["code"] == "permission_denied"


def test_sources_are_created_checked_changed_and_deleted_with_an_audit_trail(analyst_client):
    bad = analyst_client.post("/api/sentiment/sources/", {"name": "Feed", "kind": "feed"}, format="json")
    made = analyst_client.post(
        "/api/sentiment/sources/", {"name": "Feed", "kind": "feed", "url": "https://f.example/rss"}, format="json"
    )
    pk = made.json()["id"]
    changed = analyst_client.patch(f"/api/sentiment/sources/{pk}/", {"poll_interval_s": 600}, format="json")
    listed = analyst_client.get("/api/sentiment/sources/")
    deleted = analyst_client.delete(f"/api/sentiment/sources/{pk}/")

    assert bad.status_code == 400 and "url" in bad.json()["error"]["message"]
    assert made.status_code == 201 and made.json()["healthy"] is True
    assert changed.json()["poll_interval_s"] == 600
    assert listed.json()["count"] == 1 and listed.json()["results"][0]["name"] == "Feed"
    assert deleted.status_code == 204
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "sentiment_source.create",
        "sentiment_source.update",
        "sentiment_source.delete",
    ]


def test_a_source_with_documents_cannot_be_deleted_and_only_feeds_are_polled(analyst_client, push_source):
    _push(analyst_client, push_source)

    deleted = analyst_client.delete(f"/api/sentiment/sources/{push_source.pk}/")
    polled = analyst_client.post(f"/api/sentiment/sources/{push_source.pk}/poll/")

    assert deleted.status_code == 409 and deleted.json()["error"]["code"] == "source_in_use"
    assert polled.status_code == 409 and polled.json()["error"]["code"] == "wrong_kind"
    assert analyst_client.get("/api/sentiment/sources/999999/").status_code == 404


def test_documents_list_filters_and_detail_shows_every_version(analyst_client, push_source, watchlist):
    _push(analyst_client, push_source)

    by_entity = analyst_client.get("/api/sentiment/documents/?entity=tsla").json()
    by_label = analyst_client.get("/api/sentiment/documents/?label=positive").json()
    since = analyst_client.get("/api/sentiment/documents/?until=2025-03-04T00:00:00Z").json()
    detail = analyst_client.get(f"/api/sentiment/documents/{by_entity['results'][0]['id']}/").json()

    assert [d["text"] for d in by_entity["results"]] == ["Tesla misses deliveries"]
    assert by_entity["results"][0]["entities"] == ["TSLA"]
    assert by_entity["results"][0]["score"]["label"] == "negative"
    assert [d["text"] for d in by_label["results"]] == ["Apple beats estimates"]
    assert [d["text"] for d in since["results"]] == ["Apple beats estimates"]  # the other is dated now
    assert [s["model_version"] for s in detail["scores"]] == ["fake-keyword-1"]
    assert detail["mentions"] == [{"symbol": "TSLA", "start": 0, "end": 5, "surface": "Tesla", "how": "name"}]
    assert detail["entity_scores"][0]["symbol"] == "TSLA" and detail["entity_scores"][0]["live"] is True
    assert analyst_client.get("/api/sentiment/documents/?label=bad").status_code == 400
