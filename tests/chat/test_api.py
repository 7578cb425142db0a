"""The knowledge-base API: CRUD, search, import; roles; error shape; OpenAPI schema."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.audit.models import AuditEvent
from apps.chat.models import Article

pytestmark = pytest.mark.django_db
ARTICLES = "/api/chat/kb/articles/"


def test_agent_creates_reads_updates_and_deletes_an_article(agent_client):
    created = agent_client.post(
        ARTICLES,
        {"title": "Refunds", "body": "Refunds take **5** days.", "tags": ["refunds"], "published": True},
        format="json",
    )
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    fetched = agent_client.get(f"{ARTICLES}{pk}/").json()
    assert fetched["title"] == "Refunds" and fetched["indexed"] is True  # the index task ran inline
    patched = agent_client.patch(f"{ARTICLES}{pk}/", {"published": False}, format="json")
    assert patched.status_code == 200 and patched.json()["published"] is False
    assert agent_client.delete(f"{ARTICLES}{pk}/").status_code == 204
    assert not Article.objects.exists()
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions == ["kb_article.publish", "kb_article.unpublish", "kb_article.delete"]


def test_search_returns_passages_and_hides_drafts_unless_asked(agent_client):
    agent_client.post(
        ARTICLES, {"title": "Garden hose", "body": "The garden hose is green.", "published": True}, format="json"
    )
    agent_client.post(
        ARTICLES, {"title": "Hose sale", "body": "Secret garden hose sale.", "published": False}, format="json"
    )
    body = agent_client.get("/api/chat/kb/search/", {"q": "garden hose", "k": 5}).json()
    assert [r["article_title"] for r in body["results"]] == ["Garden hose"]
    assert set(body["results"][0]) >= {"article_id", "article_title", "score", "snippet", "text", "chunk_id"}
    drafts = agent_client.get("/api/chat/kb/search/", {"q": "garden hose", "drafts": "true"}).json()
    assert {r["article_title"] for r in drafts["results"]} == {"Garden hose", "Hose sale"}


@pytest.mark.parametrize("params", [{}, {"q": "x", "k": 0}, {"q": "x", "k": 51}, {"q": "x" * 501}])
def test_bad_search_parameters_answer_400_in_the_error_shape(agent_client, params):
    response = agent_client.get("/api/chat/kb/search/", params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_invalid_article_answers_400(agent_client):
    response = agent_client.post(ARTICLES, {"title": "  ", "tags": "not-a-list"}, format="json")
    assert response.status_code == 400 and set(response.json()["error"]["details"]) >= {"title"}
    assert agent_client.get(f"{ARTICLES}999999/").status_code == 404


def test_import_api_reports_each_line(agent_client):
    upload = SimpleUploadedFile("faq.csv", b"title,body,published\nRefunds,Five days.,true\n,No title,\n")
    response = agent_client.post("/api/chat/kb/imports/", {"files": [upload]}, format="multipart")
    assert response.status_code == 201, response.content
    report = response.json()["report"]
    assert [(e["line"], e["outcome"]) for e in report] == [(2, "created"), (3, "rejected")]
    assert agent_client.get(f"/api/chat/kb/imports/{response.json()['id']}/").json()["created"] == 1
    empty = agent_client.post("/api/chat/kb/imports/", {}, format="multipart")
    assert empty.status_code == 400


@pytest.mark.parametrize(("role", "status"), [("analyst", 403), ("merchandiser", 403), (None, 401)])
def test_other_roles_and_anonymous_are_refused(api_client, make_user, role, status):
    if role:
        api_client.force_authenticate(make_user(role))
    for response in (
        api_client.get(ARTICLES),
        api_client.get("/api/chat/kb/search/", {"q": "x"}),
        api_client.post(ARTICLES, {"title": "x"}, format="json"),
    ):
        assert response.status_code == status
        assert set(response.json()["error"]) == {"code", "message", "details"}


def test_schema_documents_the_endpoints_and_their_errors(agent_client):
    schema = agent_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    search = schema["paths"]["/api/chat/kb/search/"]["get"]
    assert {"200", "400", "401", "403"} <= set(search["responses"])
    assert "400" in schema["paths"]["/api/chat/kb/imports/"]["post"]["responses"]
    assert {"get", "patch", "delete"} <= set(schema["paths"]["/api/chat/kb/articles/{id}/"])
