"""The alert side of /api/sentiment/: alerts (list, detail, acknowledge, resolve), rules CRUD with
the same validation as the page, explanations (with the real bundled model), and access."""

from __future__ import annotations

import pytest

from apps.sentiment.models import Alert, AlertRule, Document, Watchlist
from tests.sentiment.conftest import T0
from tests.sentiment.fixtures_alerts import BEARISH, deliver_inline, make_rule, score, texts

__all__ = ["deliver_inline", "make_rule", "score"]

pytestmark = pytest.mark.django_db


@pytest.fixture
def fired(score, make_rule) -> Alert:
    make_rule(condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3, notify_email="ana@example.com")
    score(texts(BEARISH, "AAPL", [T0, T0]))
    return Alert.objects.get()


def test_alerts_list_detail_acknowledge_resolve(analyst_client, fired):
    listed = analyst_client.get("/api/sentiment/alerts/?status=open").json()
    assert listed["count"] == 1 and listed["results"][0]["symbol"] == "AAPL"
    assert analyst_client.get("/api/sentiment/alerts/?symbol=MSFT").json()["count"] == 0
    assert analyst_client.get("/api/sentiment/alerts/?status=bogus").status_code == 400
    detail = analyst_client.get(f"/api/sentiment/alerts/{fired.pk}/").json()
    assert len(detail["documents"]) == 2
    assert {d["channel"]: d["status"] for d in detail["deliveries"]} == {"socket": "sent", "email": "sent"}

    acked = analyst_client.post(f"/api/sentiment/alerts/{fired.pk}/acknowledge/")
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    assert acked.json()["acknowledged_by"].startswith("analyst")
    resolved = analyst_client.post(f"/api/sentiment/alerts/{fired.pk}/resolve/").json()
    assert resolved["status"] == "resolved" and resolved["resolved_at"]
    again = analyst_client.post(f"/api/sentiment/alerts/{fired.pk}/acknowledge/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_state"
    assert analyst_client.get("/api/sentiment/alerts/999999/").status_code == 404


def test_rules_crud_with_the_services_validation(analyst_client, watchlist):
    base = {"name": "Tech slump", "condition": "level_below", "threshold": -0.3, "width_s": 3600}
    tech = Watchlist.objects.get(name="Tech").pk
    both = analyst_client.post("/api/sentiment/rules/", {**base, "entity": "AAPL", "watchlist": tech}, format="json")
    assert both.status_code == 400 and "not both" in both.json()["error"]["message"]
    neither = analyst_client.post("/api/sentiment/rules/", base, format="json")
    assert neither.status_code == 400
    bad_width = analyst_client.post("/api/sentiment/rules/", {**base, "entity": "AAPL", "width_s": 60}, format="json")
    assert bad_width.status_code == 400
    bad_mail = analyst_client.post(
        "/api/sentiment/rules/", {**base, "entity": "AAPL", "notify_email": "nope"}, format="json"
    )
    assert bad_mail.status_code == 400 and "notify_email" in bad_mail.json()["error"]["details"]

    made = analyst_client.post(
        "/api/sentiment/rules/", {**base, "entity": "AAPL", "webhook_url": "https://hooks.example/t"}, format="json"
    )
    assert made.status_code == 201, made.json()
    rule = made.json()
    assert rule["entity"] == "AAPL" and len(rule["webhook_secret"]) >= 40
    out_of_bounds = analyst_client.patch(f"/api/sentiment/rules/{rule['id']}/", {"threshold": -1.5}, format="json")
    assert out_of_bounds.status_code == 400 and "threshold" in out_of_bounds.json()["error"]["details"]
    patched = analyst_client.patch(
        f"/api/sentiment/rules/{rule['id']}/", {"threshold": -0.5, "cooldown_s": 600}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["threshold"] == -0.5
    assert analyst_client.get("/api/sentiment/rules/").json()["count"] == 1
    assert analyst_client.delete(f"/api/sentiment/rules/{rule['id']}/").status_code == 204
    assert not AlertRule.objects.exists()


def test_other_roles_and_anonymous_are_refused(merch_client, api_client, fired):
    for path in (
        "/api/sentiment/alerts/",
        f"/api/sentiment/alerts/{fired.pk}/",
        "/api/sentiment/rules/",
        "/api/sentiment/corrections/",
        "/api/sentiment/backtests/",
    ):
        assert merch_client.get(path).status_code == 403, path
        assert api_client.get(path).status_code == 401, path
    assert merch_client.post(f"/api/sentiment/alerts/{fired.pk}/resolve/").status_code == 403
    explain = f"/api/sentiment/documents/{Document.objects.first().pk}/explain/"
    assert merch_client.post(explain, {}, format="json").status_code == 403
    assert api_client.post(explain, {}, format="json").status_code == 401
    assert Alert.objects.get().status == "open"


def test_explain_a_document_scored_by_the_real_bundled_model(
    real_model, ingest, push_source, watchlist, analyst_client, django_capture_on_commit_callbacks
):
    # given a headline scored by the bundled zero-shot model (MiniLM) with spaCy linking
    with django_capture_on_commit_callbacks(execute=True):
        ingest(push_source, [("Apple shares plunge after a weak iPhone quarter and a profit warning", T0)])
    document = Document.objects.get()
    assert document.scores.get().model_version == "default"
    assert list(document.mentions.values_list("entity__symbol", flat=True)) == ["AAPL"]

    # when an analyst asks why
    response = analyst_client.post(
        f"/api/sentiment/documents/{document.pk}/explain/", {"target": "negative"}, format="json"
    )

    # then every word has an attribution toward the model's own name for "negative"
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["version"], body["scored_by"], body["truncated"]) == ("default", "default", False)
    explanation = body["explanation"]
    assert explanation["target"] == "bearish" and explanation["method"] == "occlusion"
    words = [t["text"] for t in explanation["tokens"]]
    assert words[:3] == ["Apple", "shares", "plunge"]
    assert all(document.text[t["start"] : t["end"]] == t["text"] for t in explanation["tokens"])
    assert any(abs(t["attribution"]) > 0 for t in explanation["tokens"])
    assert analyst_client.post("/api/sentiment/documents/999999/explain/", {}, format="json").status_code == 404
    bad = analyst_client.post(f"/api/sentiment/documents/{document.pk}/explain/", {"target": "joy"}, format="json")
    assert bad.status_code == 400
