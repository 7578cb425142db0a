"""The mlops API: who may call what, the error shape, and the thin views' own logic.

The services run for real where they need no model (datasets, jobs, cancel, rollback of
rows); promotion and evaluation are faked here (the lead's service tests load real models).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import include, path

from apps.mlops.models import Dataset, ModelVersion, TrainingJob
from apps.mlops.services.versions import PromotionRefused
from tests.mlops.factories import (
    GOOD_CSV,
    DatasetFactory,
    ModelVersionFactory,
    TrainingJobFactory,
    UserFactory,
    isolate,
    report,
)

pytestmark = pytest.mark.django_db

API = "/api/mlops"
SENTIMENT_LABELS = ["negative", "positive"]
BAD_CSV = b"sentence,category\nhello,a\nbye,b\n"


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path, monkeypatch):
    isolate(settings, tmp_path, monkeypatch)


@pytest.fixture
def objs():
    """One object of each kind, all of the analysts' ``sentiment`` role."""
    dataset = DatasetFactory(role="sentiment", name="headlines", label_counts={label: 2 for label in SENTIMENT_LABELS})
    job = TrainingJobFactory(dataset=dataset)
    version = ModelVersionFactory(
        role="sentiment",
        version="sentiment-test-0001",
        labels=SENTIMENT_LABELS,
        metrics=report(SENTIMENT_LABELS, macro_f1=0.75),
    )
    return SimpleNamespace(dataset=dataset, job=job, version=version)


def login(api_client, *roles: str):
    user = UserFactory(roles=list(roles))
    api_client.force_authenticate(user)
    return user


def csv_upload(content: bytes, name: str = "data.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def call(api_client, method: str, url: str, objs=None, **kwargs):
    if objs is not None:
        url = url.format(dataset=objs.dataset.pk, job=objs.job.pk, version=objs.version.pk)
    return getattr(api_client, method)(url, **kwargs)


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


EVERY_ENDPOINT = [
    ("get", f"{API}/roles/"),
    ("post", f"{API}/roles/sentiment/rollback/"),
    ("get", f"{API}/datasets/"),
    ("post", f"{API}/datasets/"),
    ("get", f"{API}/datasets/{{dataset}}/"),
    ("get", f"{API}/jobs/"),
    ("post", f"{API}/jobs/"),
    ("get", f"{API}/jobs/{{job}}/"),
    ("post", f"{API}/jobs/{{job}}/cancel/"),
    ("get", f"{API}/versions/"),
    ("get", f"{API}/versions/{{version}}/"),
    ("post", f"{API}/versions/{{version}}/promote/"),
    ("post", f"{API}/versions/{{version}}/evaluate/"),
]
# Object endpoints a user of another role reaches: they answer as if the object did not exist.
OTHER_ROLES_OBJECT = [
    ("get", f"{API}/datasets/{{dataset}}/"),
    ("get", f"{API}/jobs/{{job}}/"),
    ("post", f"{API}/jobs/{{job}}/cancel/"),
    ("get", f"{API}/versions/{{version}}/"),
    ("post", f"{API}/versions/{{version}}/evaluate/"),
]
ADMIN_ONLY = [
    ("post", f"{API}/roles/sentiment/rollback/"),
    ("post", f"{API}/versions/{{version}}/promote/"),
]


def _ids(endpoints):
    return [f"{m.upper()} {u.removeprefix(API)}" for m, u in endpoints]


# --- the permission matrix


@pytest.mark.parametrize(("method", "url"), EVERY_ENDPOINT, ids=_ids(EVERY_ENDPOINT))
def test_anonymous_gets_401(api_client, objs, method, url):
    # given nobody signed in
    # when any endpoint is called
    response = call(api_client, method, url, objs)
    # then it answers 401 in the shared error shape
    assert_error(response, 401, "not_authenticated")


@pytest.mark.parametrize(("method", "url"), EVERY_ENDPOINT, ids=_ids(EVERY_ENDPOINT))
def test_user_without_a_role_gets_403(api_client, objs, method, url):
    # given a signed-in user holding no role
    login(api_client)
    # when any endpoint is called
    response = call(api_client, method, url, objs)
    # then it answers 403
    assert_error(response, 403, "permission_denied")


@pytest.mark.parametrize(("method", "url"), OTHER_ROLES_OBJECT, ids=_ids(OTHER_ROLES_OBJECT))
def test_objects_of_another_role_read_as_missing(api_client, objs, method, url):
    # given an agent, and objects of the analysts' sentiment model
    login(api_client, "agent")
    # when the agent asks for one of them
    response = call(api_client, method, url, objs)
    # then it is a 404, exactly like an id that does not exist
    assert_error(response, 404, "not_found")
    missing = url.format(dataset=999_999, job=999_999, version=999_999)
    assert call(api_client, method, missing).json() == response.json()


@pytest.mark.parametrize(("method", "url"), ADMIN_ONLY, ids=_ids(ADMIN_ONLY))
def test_promotion_and_rollback_are_admin_only(api_client, objs, method, url):
    # given the analyst who owns the sentiment model, but is not an admin
    login(api_client, "analyst")
    # when they promote or roll back
    response = call(api_client, method, url, objs)
    # then it is refused
    assert_error(response, 403, "permission_denied")


@pytest.mark.parametrize(("method", "url"), OTHER_ROLES_OBJECT, ids=_ids(OTHER_ROLES_OBJECT))
def test_unknown_ids_are_404_for_the_owner_too(api_client, objs, method, url):
    login(api_client, "analyst")
    response = call(api_client, method, url.format(dataset=999_999, job=999_999, version=999_999))
    assert_error(response, 404, "not_found")


# --- roles


def test_roles_lists_only_visible_roles_with_what_serves_them(api_client, objs):
    # given an active fine-tuned sentiment version
    objs.version.status = ModelVersion.Status.ACTIVE
    objs.version.save()
    login(api_client, "analyst")
    # when an analyst lists the roles
    response = api_client.get(f"{API}/roles/")
    # then they see their roles, the active version or "default", and no registry error
    assert response.status_code == 200
    rows = {row["role"]: row for row in response.json()}
    assert list(rows) == ["embedder", "sentiment", "ner"]
    assert rows["sentiment"]["serving"] == "sentiment-test-0001"
    assert rows["sentiment"]["active"]["macro_f1"] == pytest.approx(0.75)
    assert rows["sentiment"]["trainable"] is True
    assert rows["embedder"]["serving"] == "default"
    assert rows["embedder"]["active"] is None
    assert rows["ner"]["registry_error"] is None


def test_admin_sees_every_role(api_client):
    login(api_client, "admin")
    response = api_client.get(f"{API}/roles/")
    assert [row["role"] for row in response.json()] == ["embedder", "chat-lm", "intent", "sentiment", "ner"]


def test_rollback_with_nothing_active_is_a_409(api_client):
    login(api_client, "admin")
    error = assert_error(api_client.post(f"{API}/roles/intent/rollback/"), 409, "nothing_to_roll_back")
    assert "default" in error["message"]


def test_rollback_reactivates_the_previous_version(api_client, monkeypatch):
    # given v2 active, which replaced v1 (registry swaps are not part of this test)
    monkeypatch.setattr("apps.mlops.services.versions._resync", lambda role: None)
    v1 = ModelVersionFactory(status=ModelVersion.Status.RETIRED)
    v2 = ModelVersionFactory(status=ModelVersion.Status.ACTIVE, previous_active=v1)
    login(api_client, "admin")
    # when an admin rolls intent back
    response = api_client.post(f"{API}/roles/intent/rollback/")
    # then v1 serves again
    assert response.status_code == 200, response.content
    assert response.json()["serving"] == v1.version
    assert response.json()["active"]["id"] == v1.pk
    v2.refresh_from_db()
    assert v2.status == ModelVersion.Status.RETIRED


def test_rollback_of_an_unknown_role_is_404(api_client):
    login(api_client, "admin")
    assert_error(api_client.post(f"{API}/roles/nope/rollback/"), 404)


# --- datasets


def test_dataset_list_is_paginated_and_filtered_by_visibility(api_client, objs):
    # given an intent dataset besides the sentiment one
    DatasetFactory(role="intent")
    # when an analyst lists datasets
    login(api_client, "analyst")
    body = api_client.get(f"{API}/datasets/").json()
    # then only the sentiment one appears, in a page
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 1
    assert body["results"][0]["name"] == "headlines"
    assert body["results"][0]["label_counts"] == {"negative": 2, "positive": 2}


def test_dataset_list_pages(api_client):
    DatasetFactory.create_batch(3, role="intent")
    login(api_client, "agent")
    body = api_client.get(f"{API}/datasets/?limit=2").json()
    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert "offset=2" in body["next"]


def test_dataset_list_refuses_an_unknown_role_filter(api_client):
    login(api_client, "agent")
    error = assert_error(api_client.get(f"{API}/datasets/?role=weather"), 400, "invalid")
    assert "role" in error["details"]


def test_upload_of_a_valid_file_creates_a_dataset(api_client):
    # given an analyst
    user = login(api_client, "analyst")
    # when they upload a valid CSV for their model
    response = api_client.post(
        f"{API}/datasets/",
        {"file": csv_upload(GOOD_CSV), "name": "q3 headlines", "role": "sentiment"},
        format="multipart",
    )
    # then it is stored with its validation report
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["role"], body["rows"]) == ("q3 headlines", "sentiment", 4)
    assert body["label_counts"] == {"negative": 2, "positive": 2}
    assert body["validation"]["ok"] is True
    assert body["created_by"] == user.username
    assert Dataset.objects.get(pk=body["id"]).created_by == user


def test_upload_of_a_bad_file_is_400_with_the_report(api_client):
    # given an analyst and a CSV with the wrong columns
    login(api_client, "analyst")
    # when it is uploaded
    response = api_client.post(
        f"{API}/datasets/", {"file": csv_upload(BAD_CSV), "role": "sentiment"}, format="multipart"
    )
    # then nothing is stored and the report comes back in the error's details
    error = assert_error(response, 400, "dataset_rejected")
    assert error["details"]["ok"] is False
    assert any("column" in e for e in error["details"]["errors"])
    assert "warnings" in error["details"]
    assert Dataset.objects.count() == 0


def test_upload_for_a_role_the_user_may_not_train_is_403(api_client):
    login(api_client, "analyst")
    response = api_client.post(f"{API}/datasets/", {"file": csv_upload(GOOD_CSV), "role": "intent"}, format="multipart")
    assert_error(response, 403)
    assert Dataset.objects.count() == 0


def test_upload_for_a_role_that_cannot_be_trained_is_400(api_client):
    login(api_client, "admin")
    response = api_client.post(
        f"{API}/datasets/", {"file": csv_upload(GOOD_CSV), "role": "embedder"}, format="multipart"
    )
    assert "role" in assert_error(response, 400, "invalid")["details"]


def test_upload_without_a_file_is_400(api_client):
    login(api_client, "analyst")
    response = api_client.post(f"{API}/datasets/", {"role": "sentiment"}, format="multipart")
    assert "file" in assert_error(response, 400, "invalid")["details"]


def test_dataset_detail(api_client, objs):
    login(api_client, "analyst")
    body = api_client.get(f"{API}/datasets/{objs.dataset.pk}/").json()
    assert (body["id"], body["role"], body["validation"]["ok"]) == (objs.dataset.pk, "sentiment", True)


# --- jobs


def test_job_create_queues_a_job_with_the_given_parameters(api_client, objs):
    # given an analyst and their sentiment dataset
    user = login(api_client, "analyst")
    # when they start a job
    response = api_client.post(
        f"{API}/jobs/",
        {"dataset": objs.dataset.pk, "method": "full", "epochs": 2, "learning_rate": 1e-4, "max_train_rows": 100},
    )
    # then it is queued with those parameters
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["method"], body["role"], body["dataset"]) == (
        "queued",
        "full",
        "sentiment",
        objs.dataset.pk,
    )
    assert body["params"] == {"epochs": 2, "learning_rate": 1e-4, "max_train_rows": 100}
    assert body["model_version"] is None
    assert TrainingJob.objects.get(pk=body["id"]).created_by == user


def test_job_create_with_the_same_idempotency_key_returns_the_same_job(api_client, objs):
    login(api_client, "analyst")
    payload = {"dataset": objs.dataset.pk, "epochs": 1}
    first = api_client.post(f"{API}/jobs/", payload, HTTP_IDEMPOTENCY_KEY="run-42")
    second = api_client.post(f"{API}/jobs/", payload, HTTP_IDEMPOTENCY_KEY="run-42")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert TrainingJob.objects.filter(idempotency_key="run-42").count() == 1


def test_reusing_an_idempotency_key_for_another_dataset_is_a_409(api_client, objs):
    login(api_client, "analyst")
    other = DatasetFactory(role="sentiment", label_counts={label: 2 for label in SENTIMENT_LABELS})
    api_client.post(f"{API}/jobs/", {"dataset": objs.dataset.pk}, HTTP_IDEMPOTENCY_KEY="k-1")
    response = api_client.post(f"{API}/jobs/", {"dataset": other.pk}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert_error(response, 409, "idempotency_key_reused")


def test_job_create_on_an_invisible_dataset_reads_as_unknown(api_client, objs):
    # given an agent and the analysts' dataset
    login(api_client, "agent")
    # when the agent starts a job on it
    response = api_client.post(f"{API}/jobs/", {"dataset": objs.dataset.pk})
    # then the dataset "does not exist" for them
    error = assert_error(response, 400, "invalid")
    assert "dataset" in error["details"]
    assert not TrainingJob.objects.exclude(pk=objs.job.pk).exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"epochs": 0}, "epochs"),
        ({"learning_rate": 1.0}, "learning_rate"),
        ({"method": "qlora"}, "method"),
        ({"batch_size": "many"}, "batch_size"),
    ],
    ids=["epochs", "learning-rate", "method", "batch-size"],
)
def test_job_create_validates_parameters(api_client, objs, payload, field):
    login(api_client, "analyst")
    response = api_client.post(f"{API}/jobs/", {"dataset": objs.dataset.pk, **payload})
    assert field in assert_error(response, 400, "invalid")["details"]


def test_job_create_refuses_labels_that_differ_from_the_active_model(api_client, objs):
    # given an active sentiment model with three labels and a two-label dataset
    ModelVersionFactory(role="sentiment", status=ModelVersion.Status.ACTIVE, labels=["negative", "neutral", "positive"])
    login(api_client, "analyst")
    # when a job is started without allow_new_labels, then the service's reason comes back as a 400
    refused = api_client.post(f"{API}/jobs/", {"dataset": objs.dataset.pk})
    assert "labels" in assert_error(refused, 400, "invalid")["message"]
    # and with allow_new_labels it is queued
    allowed = api_client.post(f"{API}/jobs/", {"dataset": objs.dataset.pk, "allow_new_labels": True})
    assert allowed.status_code == 201
    assert allowed.json()["params"] == {"allow_new_labels": True}


def test_job_list_filters_by_status(api_client, objs):
    TrainingJobFactory(dataset=objs.dataset, status=TrainingJob.Status.FAILED)
    login(api_client, "analyst")
    body = api_client.get(f"{API}/jobs/?status=failed").json()
    assert body["count"] == 1
    assert body["results"][0]["status"] == "failed"
    assert api_client.get(f"{API}/jobs/").json()["count"] == 2


def test_job_detail_shows_progress(api_client, objs):
    objs.job.status, objs.job.progress, objs.job.epoch = TrainingJob.Status.RUNNING, 0.5, 1
    objs.job.metrics_history = [{"epoch": 1, "train_loss": 0.7, "dev": report(SENTIMENT_LABELS)}]
    objs.job.save()
    login(api_client, "analyst")
    body = api_client.get(f"{API}/jobs/{objs.job.pk}/").json()
    assert (body["status"], body["progress"], body["epoch"]) == ("running", 0.5, 1)
    assert body["metrics_history"][0]["dev"]["macro_f1"] == pytest.approx(0.8)
    assert body["dataset_name"] == "headlines"


def test_cancel_a_queued_job_then_again_is_a_409(api_client, objs):
    login(api_client, "analyst")
    first = api_client.post(f"{API}/jobs/{objs.job.pk}/cancel/")
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled"
    assert_error(api_client.post(f"{API}/jobs/{objs.job.pk}/cancel/"), 409, "job_finished")


# --- versions


def test_version_list_filters_by_role(api_client, objs):
    ModelVersionFactory(role="intent")
    login(api_client, "admin")
    body = api_client.get(f"{API}/versions/?role=sentiment").json()
    assert [v["version"] for v in body["results"]] == ["sentiment-test-0001"]
    assert api_client.get(f"{API}/versions/").json()["count"] == 2


def test_version_detail_has_metrics(api_client, objs):
    login(api_client, "analyst")
    body = api_client.get(f"{API}/versions/{objs.version.pk}/").json()
    assert body["version"] == "sentiment-test-0001"
    assert body["macro_f1"] == pytest.approx(0.75)
    assert body["metrics"]["per_class"]["positive"]["support"] == 10
    assert body["labels"] == SENTIMENT_LABELS


def test_promotion_refused_by_the_gate_is_a_409_with_both_scores(api_client, objs, monkeypatch):
    # given a gate that finds the candidate worse
    def refuse(*, version, user, force=False, **audit):
        raise PromotionRefused("candidate is worse than the active version: 0.5000 vs 0.8000", 0.5, 0.8)

    monkeypatch.setattr("apps.mlops.api_versions.model_version_promote", refuse)
    login(api_client, "admin")
    # when an admin promotes it
    response = api_client.post(f"{API}/versions/{objs.version.pk}/promote/", {"force": False})
    # then the refusal comes back in the error shape, with both scores
    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "code": "promotion_refused",
            "message": "candidate is worse than the active version: 0.5000 vs 0.8000",
            "details": {"candidate_score": 0.5, "active_score": 0.8},
        }
    }


def test_forced_promotion_passes_force_to_the_service(api_client, objs, monkeypatch):
    calls = []

    def promote(*, version, user, force=False, **audit):
        calls.append((version.pk, user.username, force))
        version.status = ModelVersion.Status.ACTIVE
        return version

    monkeypatch.setattr("apps.mlops.api_versions.model_version_promote", promote)
    admin = login(api_client, "admin")
    response = api_client.post(f"{API}/versions/{objs.version.pk}/promote/", {"force": True})
    assert response.status_code == 200
    assert response.json()["status"] == "active"
    assert calls == [(objs.version.pk, admin.username, True)]


def test_promoting_the_active_version_is_a_409(api_client, objs):
    objs.version.status = ModelVersion.Status.ACTIVE
    objs.version.save()
    login(api_client, "admin")
    error = assert_error(api_client.post(f"{API}/versions/{objs.version.pk}/promote/"), 409, "conflict")
    assert "already active" in error["message"]


def test_evaluate_queues_the_task_and_answers_202(api_client, objs, monkeypatch):
    queued = []
    monkeypatch.setattr(
        "apps.mlops.tasks.model_version_evaluate_task.delay",
        lambda *args: queued.append(args) or SimpleNamespace(id="task-1"),
    )
    login(api_client, "analyst")
    response = api_client.post(f"{API}/versions/{objs.version.pk}/evaluate/", {"dataset": objs.dataset.pk})
    assert response.status_code == 202
    assert response.json() == {
        "version": objs.version.pk,
        "dataset": objs.dataset.pk,
        "task_id": "task-1",
        "status": "queued",
    }
    assert queued == [(objs.version.pk, objs.dataset.pk)]


def test_evaluate_on_a_dataset_of_another_role_is_400(api_client, objs, monkeypatch):
    monkeypatch.setattr("apps.mlops.tasks.model_version_evaluate_task.delay", lambda *args: pytest.fail("queued"))
    other = DatasetFactory(role="intent")
    login(api_client, "admin")
    response = api_client.post(f"{API}/versions/{objs.version.pk}/evaluate/", {"dataset": other.pk})
    assert "dataset" in assert_error(response, 400, "invalid")["details"]


# --- schema


def test_schema_lists_the_mlops_paths(api_client):
    login(api_client, "agent")  # the schema is for signed-in users unless TRELLIS_PUBLIC_API_DOCS
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for expected in (
        "/api/mlops/roles/",
        "/api/mlops/roles/{role}/rollback/",
        "/api/mlops/datasets/",
        "/api/mlops/datasets/{id}/",
        "/api/mlops/jobs/",
        "/api/mlops/jobs/{id}/",
        "/api/mlops/jobs/{id}/cancel/",
        "/api/mlops/versions/",
        "/api/mlops/versions/{id}/",
        "/api/mlops/versions/{id}/promote/",
        "/api/mlops/versions/{id}/evaluate/",
    ):
        assert expected in paths
    assert "multipart/form-data" in paths["/api/mlops/datasets/"]["post"]["requestBody"]["content"]
    assert any(p["name"] == "Idempotency-Key" for p in paths["/api/mlops/jobs/"]["post"]["parameters"])


def test_schema_of_the_mlops_api_generates_without_warnings():
    from drf_spectacular.drainage import GENERATOR_STATS, reset_generator_stats
    from drf_spectacular.generators import SchemaGenerator

    # given a clean warning record
    reset_generator_stats()
    # when the schema of the mlops endpoints is generated
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator(patterns=[path("api/mlops/", include("apps.mlops.api_urls"))]).get_schema(
            request=None, public=True
        )
    # then drf-spectacular had nothing to warn about
    assert not GENERATOR_STATS, {**GENERATOR_STATS._warn_cache, **GENERATOR_STATS._error_cache}
    assert "PaginatedDatasetOutputList" in schema["components"]["schemas"]
