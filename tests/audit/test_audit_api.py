"""The audit API and page: admins only, filters, pagination; promotion and rollback are recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.mlops.sample_data import intent_sample_rows, rows_to_csv
from apps.mlops.services.datasets import dataset_create
from apps.mlops.services.serving import serving_reset
from apps.mlops.services.training import training_job_create, training_job_run
from ml.registry import default_registry
from tests.mlops.factories import media_in

pytestmark = pytest.mark.django_db

API = "/api/audit/events/"
PAGE = "/audit/"


@pytest.fixture
def events(make_user):
    alice = make_user("admin", username="alice")
    audit_record(actor=alice, action="model.promote", target=("mlops.modelversion", 3), summary="promoted")
    audit_record(actor=None, action="model.rollback", target=("mlops.modelversion", 3), summary="rolled back")
    AuditEvent.objects.create(action="data.export", actor_username="alice", summary="old export",
                              created_at=timezone.now() - timedelta(days=30))
    return alice


# --- who may read it


def test_api_answers_401_to_anonymous(api_client):
    response = api_client.get(API)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("role", ["agent", "analyst", "merchandiser", None])
def test_api_and_page_refuse_other_roles(api_client, client, make_user, role):
    user = make_user(role) if role else make_user()
    api_client.force_authenticate(user)
    client.force_login(user)
    response = api_client.get(API)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert client.get(PAGE).status_code == 403


def test_page_redirects_anonymous_to_login(client):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/audit/"


def test_nav_shows_audit_to_admins_only(client, make_user):
    client.force_login(make_user("analyst"))
    assert 'href="/audit/"' not in client.get("/models/").content.decode()
    client.force_login(make_user("admin"))
    assert 'href="/audit/"' in client.get("/models/").content.decode()


# --- listing and filters


def test_api_lists_newest_first_with_filters(api_client, events):
    api_client.force_authenticate(events)
    body = api_client.get(API).json()
    assert body["count"] == 3
    assert [e["action"] for e in body["results"]] == ["model.rollback", "model.promote", "data.export"]
    first = body["results"][1]
    assert first["actor"] == "alice" and first["actor_id"] == events.pk
    assert (first["target_type"], first["target_id"]) == ("mlops.modelversion", "3")

    def actions(**params):
        return [e["action"] for e in api_client.get(API, params).json()["results"]]

    assert actions(action="model.promote") == ["model.promote"]
    assert actions(actor="alice") == ["model.promote", "data.export"]
    assert actions(target_type="mlops.modelversion", target_id="3") == ["model.rollback", "model.promote"]
    today = timezone.now().date().isoformat()
    assert actions(since=today) == ["model.rollback", "model.promote"]
    assert actions(until=(timezone.now() - timedelta(days=1)).isoformat()) == ["data.export"]
    # a date as `until` includes that whole day
    assert len(actions(until=today)) == 3
    page = api_client.get(API, {"limit": 1, "offset": 1}).json()
    assert [e["action"] for e in page["results"]] == ["model.promote"] and page["next"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"since": "yesterday"}, "since"), ({"until": "2025-02-30"}, "until"),
     ({"since": "2025-03-01", "until": "2025-02-01"}, "until")],
)
def test_api_refuses_bad_filters_in_the_error_shape(api_client, events, params, field):
    api_client.force_authenticate(events)
    response = api_client.get(API, params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert field in response.json()["error"]["details"]


def test_page_shows_filtered_events_and_paginates(client, events, monkeypatch):
    client.force_login(events)
    content = client.get(PAGE, {"action": "model.promote"}).content.decode()
    assert "promoted" in content and "rolled back" not in content
    # 3 events, 2 a page: the first page links to the second, keeping the filter
    monkeypatch.setattr("apps.audit.views.PAGE_SIZE", 2)
    content = client.get(PAGE, {"actor": "alice"}).content.decode()
    assert "Page 1 of 1" in content
    content = client.get(PAGE).content.decode()
    assert "Page 1 of 2" in content and "?page=2" in content
    assert "old export" in client.get(PAGE, {"page": 2}).content.decode()
    bad = client.get(PAGE, {"since": "nonsense"})
    assert bad.status_code == 400 and "ISO 8601" in bad.content.decode()


def test_schema_documents_the_endpoint():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/audit/events/"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"action", "actor", "target_type", "since", "until",
                                                             "limit", "offset"}
    assert {"200", "400", "401", "403"} <= set(operation["responses"])


# --- promotion and rollback through the API are recorded


@pytest.fixture
def fewshot_version(settings, tmp_path, monkeypatch, make_user):
    """A real few-shot intent candidate (seconds), with the registry reset around the test."""
    media_in(settings, tmp_path)
    monkeypatch.setattr("apps.mlops.services.training.training_job_enqueue", lambda job_id: None)
    registry = default_registry()
    registry.ensure_active("intent", None)
    serving_reset()
    owner = make_user("agent")
    upload = SimpleUploadedFile("intents.csv", rows_to_csv(intent_sample_rows(160, seed=3)))
    dataset = dataset_create(uploaded_file=upload, name="intents", role="intent", user=owner)
    job = training_job_run(training_job_create(dataset=dataset, method="fewshot", params={}, user=owner).pk)
    assert job.status == "succeeded", job.error
    yield job.model_version
    registry.ensure_active("intent", None)
    registry.unload("intent")
    serving_reset()


def test_promote_and_rollback_through_the_api_are_recorded(api_client, make_user, fewshot_version):
    admin = make_user("admin", username="root-ann")
    api_client.force_authenticate(admin)
    headers = {"REMOTE_ADDR": "198.51.100.23", "HTTP_USER_AGENT": "trellis-cli/2"}
    # when an admin promotes the candidate, then rolls it back
    response = api_client.post(f"/api/mlops/versions/{fewshot_version.pk}/promote/", {"force": True}, **headers)
    assert response.status_code == 200, response.content
    response = api_client.post("/api/mlops/roles/intent/rollback/", **headers)
    assert response.status_code == 200, response.content
    # then both are in the audit log, newest first, with who, what and from where
    rollback, promote = AuditEvent.objects.all()[:2]
    assert promote.action == "model.promote" and rollback.action == "model.rollback"
    for event in (promote, rollback):
        assert (event.actor, event.actor_username) == (admin, "root-ann")
        assert (event.target_type, event.target_id) == ("mlops.modelversion", str(fewshot_version.pk))
        assert event.ip_address == "198.51.100.23" and event.user_agent == "trellis-cli/2"
    assert promote.details["version"] == fewshot_version.version and promote.details["previous"] is None
    assert "passed" in promote.details["gate"]
    assert rollback.details == {"role": "intent", "from": fewshot_version.version, "to": None, "origin": None}
    assert fewshot_version.version in rollback.summary
    # and the API shows them to the admin
    listed = api_client.get(API, {"action": "model.promote"}).json()["results"]
    assert [e["id"] for e in listed] == [promote.pk]


def test_promote_and_rollback_commands_record_the_os_user(fewshot_version, monkeypatch):
    from io import StringIO

    from django.core.management import call_command

    monkeypatch.setattr("getpass.getuser", lambda: "ops-dave")
    call_command("promote", "--version", fewshot_version.version, "--force", stdout=StringIO())
    call_command("rollback", "--role", "intent", stdout=StringIO())
    rollback, promote = AuditEvent.objects.all()[:2]
    for event in (promote, rollback):
        assert event.actor is None and event.ip_address is None
        assert "by OS user ops-dave" in event.summary and event.summary.startswith("system ")
        assert event.details["origin"].startswith("manage.py ")
    assert promote.action == "model.promote" and rollback.action == "model.rollback"
