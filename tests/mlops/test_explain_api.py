"""``POST /api/mlops/versions/<id>/explain/`` and the version page's "Explain a prediction" form.

A real few-shot intent version (frozen MiniLM + a head fitted on 40 generated rows) is
explained by occlusion; the integrated-gradients path is covered in tests/ml/test_explain.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from apps.mlops.models import ModelVersion
from apps.mlops.sample_data import intent_sample_rows
from ml import explain as ex
from ml.artifacts import Manifest
from ml.classify import FewShotClassifier
from ml.registry import default_registry
from tests.mlops.factories import ModelVersionFactory, UserFactory, isolate

pytestmark = pytest.mark.django_db

API = "/api/mlops/versions"
TEXT = "where is my laptop, it has not arrived"


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path, monkeypatch):
    isolate(settings, tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def classifier() -> FewShotClassifier:
    rows = intent_sample_rows(40, seed=3)
    return FewShotClassifier.fit(default_registry().get("embedder"), [t for t, _ in rows],
                                 [label for _, label in rows])


@pytest.fixture
def version(settings, classifier) -> ModelVersion:
    path = Path(settings.ARTIFACTS_DIR) / "intent" / "intent-explain-test"
    classifier.save(path, Manifest(role="intent", kind="fewshot-classifier", version="intent-explain-test"))
    return ModelVersionFactory(role="intent", version="intent-explain-test", kind="fewshot-classifier",
                               artifact_path=str(path), labels=classifier.labels)


def _post(api_client, version_id: int, body: dict):
    return api_client.post(f"{API}/{version_id}/explain/", body, format="json")


def test_an_agent_gets_word_attributions_for_an_intent_version(api_client, version):
    # given an agent (agents see intent models)
    api_client.force_authenticate(UserFactory(roles=["agent"]))

    # when two texts are explained, one toward a chosen label
    response = _post(api_client, version.pk, {"texts": [TEXT, "refund the jacket please"]})
    chosen = _post(api_client, version.pk, {"texts": [TEXT], "target": "refund"})

    # then every word of each text comes back with its offsets and attribution
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["version"] == version.pk
    first, second = body["explanations"]
    assert [t["text"] for t in first["tokens"]] == ["where", "is", "my", "laptop", ",", "it", "has", "not",
                                                     "arrived"]
    assert all(TEXT[t["start"]:t["end"]] == t["text"] for t in first["tokens"])
    assert first["label"] == first["target"] == "order_status" and second["label"] == "refund"
    assert first["method"] == "occlusion" and first["convergence_delta"] is None
    top = max(first["tokens"], key=lambda t: t["attribution"])
    assert top["text"] in {"where", "laptop", "arrived"}  # the words that say "order status"
    assert chosen.status_code == 200
    [other] = chosen.json()["explanations"]
    assert other["target"] == "refund" and other["label"] == "order_status"
    assert other["target_probability"] < other["probability"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"texts": []}, "texts"),
        ({"texts": ["fine"] * (ex.MAX_TEXTS + 1)}, "texts"),
        ({"texts": ["x" * (ex.MAX_CHARS + 1)]}, "texts"),
        ({"texts": ["word " * (ex.MAX_WORDS + 1)]}, "texts"),
        ({"texts": ["   "]}, "texts"),  # passes the serializer, refused by ml.explain: no words
        ({"texts": "one string"}, "texts"),
        ({"texts": [TEXT], "target": "no-such-intent"}, "target"),
        ({"texts": [TEXT], "steps": ex.MAX_STEPS + 1}, "steps"),
    ],
)
def test_bad_input_answers_400_in_the_error_shape(api_client, version, body, field):
    api_client.force_authenticate(UserFactory(roles=["agent"]))

    response = _post(api_client, version.pk, body)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["details"], error


def test_unknown_and_invisible_versions_answer_404(api_client, version):
    api_client.force_authenticate(UserFactory(roles=["analyst"]))  # analysts do not see intent models
    assert _post(api_client, version.pk, {"texts": [TEXT]}).status_code == 404
    assert _post(api_client, 999_999, {"texts": [TEXT]}).status_code == 404


def test_a_version_that_is_no_classifier_answers_400(api_client):
    embedder = ModelVersionFactory(role="embedder", kind="sentence-transformer", labels=[])
    api_client.force_authenticate(UserFactory(roles=["agent"]))

    response = _post(api_client, embedder.pk, {"texts": [TEXT]})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_a_classifier"


def test_the_session_caller_needs_the_csrf_token(version):
    # given the version page's caller: a session, not an API token
    user = UserFactory(roles=["agent"])
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    page = browser.get(f"/models/versions/{version.pk}/")
    token = page.context["csrf_token"]

    # when the page's script posts with and without the CSRF header
    without = browser.post(f"{API}/{version.pk}/explain/", {"texts": [TEXT]}, content_type="application/json")
    with_token = browser.post(f"{API}/{version.pk}/explain/", {"texts": [TEXT]}, content_type="application/json",
                              HTTP_X_CSRFTOKEN=str(token))

    # then only the request carrying the token is served
    assert without.status_code == 403
    assert with_token.status_code == 200, with_token.content


def test_the_version_page_offers_the_form_for_classifiers_only(client, version):
    client.force_login(UserFactory(roles=["agent"]))
    embedder = ModelVersionFactory(role="embedder", kind="sentence-transformer", labels=[])

    page = client.get(f"/models/versions/{version.pk}/").content.decode()
    other = client.get(f"/models/versions/{embedder.pk}/").content.decode()

    assert f'data-explain-url="{API}/{version.pk}/explain/"' in page
    assert "mlops/explain.js" in page and "mlops/explain.css" in page
    assert 'style="' not in page and "<script>" not in page  # CSP: no inline styles or scripts
    assert 'id="explain"' not in other and "mlops/explain.js" not in other


def test_the_endpoint_is_in_the_openapi_schema(api_client):
    api_client.force_authenticate(UserFactory(roles=["agent"]))

    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/mlops/versions/{id}/explain/"]["post"]
    assert operation["operationId"] == "mlops_versions_explain"
    assert {"200", "400", "404", "503"} <= set(operation["responses"])
