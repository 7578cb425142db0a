"""Events API: batches, idempotency by event id, per-event errors, session merge on login."""

from __future__ import annotations

import pytest

from apps.recommend.models import Event, Item

pytestmark = pytest.mark.django_db


@pytest.fixture
def items():
    return [Item.objects.create(external_id=f"i{n}", title=f"Item {n}") for n in range(3)]


def send(client, *events):
    return client.post("/api/recommend/events/", {"events": list(events)})


def test_a_batch_sent_twice_is_stored_once(merch_client, items):
    batch = [{"event_id": "ev-1", "user": "u1", "item": "i0", "kind": "view", "ts": "2025-03-01T10:00:00Z"},
             {"event_id": "ev-2", "user": "u1", "item": "i1", "kind": "purchase", "value": 2},
             {"event_id": "ev-2", "user": "u1", "item": "i1", "kind": "purchase"}]  # repeated inside the batch

    first = send(merch_client, *batch)
    second = send(merch_client, *batch)

    assert first.status_code == 200, first.content
    assert first.json() == {"accepted": 2, "duplicates": 1, "rejected": [], "merged": 0}
    assert second.json() == {"accepted": 0, "duplicates": 3, "rejected": [], "merged": 0}
    assert Event.objects.count() == 2
    assert Event.objects.get(event_id="ev-1").ts.isoformat() == "2025-03-01T10:00:00+00:00"


def test_unknown_items_and_future_times_are_rejected_per_event(merch_client, items):
    response = send(merch_client,
                    {"event_id": "a", "user": "u1", "item": "nope", "kind": "view"},
                    {"event_id": "b", "user": "u1", "item": "i0", "kind": "view", "ts": "2999-01-01T00:00:00Z"},
                    {"event_id": "c", "user": "new-user", "item": "i2", "kind": "cart"})

    body = response.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["event_id"]) for r in body["rejected"]] == [(0, "a"), (1, "b")]
    assert "unknown item nope" in body["rejected"][0]["error"]
    assert list(Event.objects.values_list("event_id", flat=True)) == ["c"]


@pytest.mark.parametrize("bad", [
    {"events": []},
    {"events": [{"event_id": "x", "item": "i0", "kind": "view"}]},  # neither user nor session
    {"events": [{"event_id": "x", "user": "u", "item": "i0", "kind": "like"}]},
    {"events": [{"event_id": "x", "user": "u u", "item": "i0", "kind": "view"}]},
])
def test_malformed_batches_answer_400_and_store_nothing(merch_client, items, bad):
    response = merch_client.post("/api/recommend/events/", bad)

    assert response.status_code == 400
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert not Event.objects.exists()


def test_batches_are_bounded(merch_client, items, settings):
    events = [{"event_id": f"e{n}", "user": "u", "item": "i0", "kind": "view"}
              for n in range(settings.TRELLIS_RECOMMEND_MAX_EVENTS + 1)]

    assert send(merch_client, *events).status_code == 400


def test_login_merges_the_anonymous_session_into_the_user(merch_client, items):
    send(merch_client, {"event_id": "s1", "session": "sess-9", "item": "i0", "kind": "view"},
         {"event_id": "s2", "session": "sess-9", "item": "i1", "kind": "cart"})

    # The first event with both ids is the login: the session's earlier events become the user's.
    response = send(merch_client, {"event_id": "s3", "user": "alice", "session": "sess-9", "item": "i2",
                                   "kind": "purchase"})

    assert response.json()["merged"] == 2
    assert set(Event.objects.values_list("user_key", flat=True)) == {"alice"}
    merged = merch_client.post("/api/recommend/sessions/merge/", {"session": "sess-9", "user": "alice"})
    assert merged.json() == {"merged": 0}
