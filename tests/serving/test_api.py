"""The inference API with DRF's APIClient and fake models: validation, errors, roles, limits."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from django.core.cache import caches

from apps.mlops.models import ModelVersion
from apps.serving.throttling import ServingRateThrottle
from ml.lm_gate import BusyError

pytestmark = pytest.mark.django_db

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
USER_MESSAGE = [{"role": "user", "content": "hi"}]


def openai_error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"]
    return body["error"]


def trellis_error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


# --- authentication and roles ------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [("post", EMBED), ("post", CHAT), ("get", "/v1/models")])
def test_anonymous_gets_401_in_openai_shape(api_client, method, path):
    response = getattr(api_client, method)(path, {}, format="json")

    error = openai_error(response, 401)
    assert error["type"] == "authentication_error"
    assert error["code"] == "missing_api_key"
    assert response["WWW-Authenticate"] == "Token"


def test_wrong_bearer_key_gets_401_invalid_api_key(api_client):
    response = api_client.get("/v1/models", HTTP_AUTHORIZATION="Bearer not-a-real-key")

    error = openai_error(response, 401)
    assert error["code"] == "invalid_api_key"


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
def test_an_api_token_authenticates_as_bearer_and_as_token(api_client, make_user, scheme):
    from apps.accounts.services.tokens import token_create

    _, key = token_create(make_user("merchandiser"))

    response = api_client.get("/v1/models", HTTP_AUTHORIZATION=f"{scheme} {key}")

    assert response.status_code == 200, response.content
    assert {m["id"] for m in response.json()["data"]} >= {"embedder", "embedder-default"}


def test_a_user_without_a_role_is_refused(client_for):
    error = openai_error(client_for().post(EMBED, {"input": "x", "model": "embedder"}, format="json"), 403)

    assert error["type"] == "permission_error"


def test_chat_is_for_agents(client_for):
    error = openai_error(client_for("analyst").post(CHAT, {"model": "chat-lm", "messages": USER_MESSAGE},
                                                    format="json"), 403)

    assert error["code"] == "permission_denied"
    assert "chat-lm" in error["message"]


def test_models_lists_only_the_roles_of_the_caller(client_for):
    ids = {m["id"] for m in client_for("merchandiser").get("/v1/models").json()["data"]}

    assert "embedder" in ids
    assert not ids & {"chat-lm", "intent", "sentiment", "ner"}


# --- embeddings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "param", "fragment"),
    [
        ({"input": [1, 2, 3], "model": "embedder"}, "input", "token arrays"),
        ({"input": [[1, 2], [3]], "model": "embedder"}, "input", "token arrays"),
        ({"input": "", "model": "embedder"}, "input", "empty"),
        ({"input": [], "model": "embedder"}, "input", "empty"),
        ({"input": ["fine", 3], "model": "embedder"}, "input", "list of strings"),
        ({"input": {"text": "x"}, "model": "embedder"}, "input", "list of strings"),
        ({"input": ["x"] * 257, "model": "embedder"}, "input", "limit is 256"),
        ({"input": "x" * 10_001, "model": "embedder"}, "input", "limit is 10000"),
        ({"input": "x"}, "model", "required"),
        ({"input": "x", "model": "embedder", "encoding_format": "int8"}, "encoding_format", "valid choice"),
    ],
)
def test_bad_embeddings_requests_are_400_naming_the_field(client_for, fake_models, payload, param, fragment):
    error = openai_error(client_for("agent").post(EMBED, payload, format="json"), 400)

    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert fragment in error["message"]
    assert fake_models["embedder"].calls == []


def test_malformed_json_is_400_and_the_next_request_is_served(client_for, fake_models):
    client = client_for("agent")

    bad = client.post(EMBED, data='{"input": "x", ', content_type="application/json")
    good = client.post(EMBED, {"input": "fine", "model": "embedder"}, format="json")

    assert openai_error(bad, 400)["code"] == "invalid_json"
    assert good.status_code == 200


def test_embeddings_answer_in_openai_shape_with_usage(client_for, fake_models):
    response = client_for("analyst").post(EMBED, {"input": ["one two", "three"], "model": "embedder"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["object"] == "list"
    assert body["model"] == "embedder-default"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 4 for d in body["data"])
    assert body["usage"] == {"prompt_tokens": 4 + 3, "total_tokens": 7}  # words + [CLS] + [SEP]


def test_base64_embeddings_decode_to_the_float_ones(client_for, fake_models):
    client = client_for("agent")
    floats = client.post(EMBED, {"input": "abc", "model": "embedder"}, format="json").json()
    packed = client.post(EMBED, {"input": "abc", "model": "embedder", "encoding_format": "base64"},
                         format="json").json()

    decoded = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")

    np.testing.assert_allclose(decoded, floats["data"][0]["embedding"], rtol=0, atol=1e-7)


def test_unknown_model_is_404_model_not_found(client_for, fake_models):
    error = openai_error(client_for("agent").post(EMBED, {"input": "x", "model": "text-embedding-3-small"},
                                                  format="json"), 404)

    assert error["code"] == "model_not_found"
    assert error["param"] == "model"


def test_a_model_of_another_role_is_400(client_for, fake_models):
    error = openai_error(client_for("agent").post(EMBED, {"input": "x", "model": "chat-lm"}, format="json"), 400)

    assert error["code"] == "model_not_supported"
    assert "/v1/chat/completions" in error["message"]


def test_a_candidate_version_is_listed_but_does_not_serve(client_for, fake_models):
    ModelVersion.objects.create(role="embedder", version="embedder-20261204T120000-abcd", kind="sentence-transformer",
                                artifact_path="/nonexistent", status=ModelVersion.Status.CANDIDATE)
    client = client_for("agent")

    listed = {m["id"]: m["status"] for m in client.get("/v1/models").json()["data"]}
    error = openai_error(client.post(EMBED, {"input": "x", "model": "embedder-20261204T120000-abcd"},
                                     format="json"), 404)

    assert listed["embedder-20261204T120000-abcd"] == "candidate"
    assert "candidate" in error["message"]


def test_dimensions_other_than_the_models_are_refused(client_for, fake_models):
    error = openai_error(client_for("agent").post(EMBED, {"input": "x", "model": "embedder", "dimensions": 2},
                                                  format="json"), 400)

    assert error["param"] == "dimensions"


def test_the_token_rate_limit_answers_429_with_retry_after(client_for, fake_models, monkeypatch):
    caches["throttle"].clear()
    monkeypatch.setattr(ServingRateThrottle, "THROTTLE_RATES", {"serving_embeddings": "2/minute"})
    client = client_for("agent")

    statuses = [client.post(EMBED, {"input": "x", "model": "embedder"}, format="json") for _ in range(3)]

    assert [r.status_code for r in statuses[:2]] == [200, 200]
    error = openai_error(statuses[2], 429)
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "rate_limit_exceeded"
    assert int(statuses[2]["Retry-After"]) > 0


# --- chat completions: validation (no model is loaded for any of these) --------------------


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"messages": [{"role": "user", "content": 123}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": {"text": "hi"}}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content"),
        ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
        ({"messages": [{"role": "tool", "content": "42"}]}, "messages[0].role"),
        ({"messages": []}, "messages"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "system", "content": "be brief"}]}, "messages"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 100_000}, "max_tokens"),
        ({"max_completion_tokens": 100_000}, "max_completion_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"model": None}, "model"),
    ],
)
def test_bad_chat_requests_are_400_naming_the_field(client_for, changes, param):
    payload = {"model": "chat-lm", "messages": USER_MESSAGE, **changes}

    error = openai_error(client_for("agent").post(CHAT, payload, format="json"), 400)

    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_chat_completion_in_openai_shape(client_for, fake_models):
    response = client_for("agent").post(CHAT, {"model": "chat-lm", "messages": USER_MESSAGE, "max_tokens": 10,
                                               "stop": "END", "seed": 7}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == body["system_fingerprint"] == "chat-lm-default"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello there!", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert fake_models["chat-lm"].calls == [{"messages": USER_MESSAGE, "max_new_tokens": 10, "temperature": 0.0,
                                             "stop": ["END"], "seed": 7}]


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (BusyError(3), 429, "server_busy"),
        (ValueError("prompt of 9000 tokens leaves no room for 256 new tokens"), 400, "context_length_exceeded"),
        (RuntimeError("generation failed: out of memory"), 500, "generation_failed"),
    ],
)
def test_chat_failures_before_the_reply_get_their_status(client_for, fake_models, error, status, code):
    fake_models["chat-lm"].error = error

    response = client_for("agent").post(CHAT, {"model": "chat-lm", "messages": USER_MESSAGE, "stream": True},
                                        format="json")

    assert openai_error(response, status)["code"] == code
    if status == 429:
        assert int(response["Retry-After"]) >= 1


def test_chat_with_an_unknown_model_is_404(client_for):
    error = openai_error(client_for("agent").post(CHAT, {"model": "gpt-4o", "messages": USER_MESSAGE},
                                                  format="json"), 404)

    assert error["code"] == "model_not_found"


def test_chat_with_the_embedder_is_400(client_for):
    error = openai_error(client_for("agent").post(CHAT, {"model": "embedder", "messages": USER_MESSAGE},
                                                  format="json"), 400)

    assert error["param"] == "model"


def test_options_describes_the_endpoint(client_for):
    response = client_for("agent").options(EMBED)

    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Embeddings Api"
    assert "application/json" in response.json()["parses"]


def test_get_on_a_post_endpoint_is_405_in_openai_shape(client_for):
    assert openai_error(client_for("agent").get(EMBED), 405)["code"] == "method_not_allowed"


def test_unknown_v1_route_is_404_in_openai_shape(client_for):
    error = openai_error(client_for("agent").get("/v1/completions"), 404)

    assert "/v1/chat/completions" in error["message"]


# --- /api/ml/ (Trellis error shape) --------------------------------------------------------


def test_classify_answers_labels_probabilities_and_version(client_for, fake_models):
    response = client_for("agent").post("/api/ml/classify/", {"role": "intent", "texts": ["a refund please", "hi"]},
                                        format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["role"] == "intent"
    assert body["version"] == "intent-default"
    assert [r["label"] for r in body["results"]] == ["refund", "greeting"]
    assert body["results"][0]["probabilities"] == {"refund": 0.75, "greeting": 0.25}
    assert body["results"][0]["confidence"] == 0.75


@pytest.mark.parametrize(("user_role", "model_role"), [("analyst", "intent"), ("agent", "sentiment"),
                                                        ("merchandiser", "sentiment")])
def test_classify_is_for_the_owners_of_the_model(client_for, fake_models, user_role, model_role):
    error = trellis_error(client_for(user_role).post("/api/ml/classify/", {"role": model_role, "texts": ["x"]},
                                                     format="json"), 403)

    assert error["code"] == "permission_denied"


def test_classify_anonymous_is_401_in_trellis_shape(api_client):
    error = trellis_error(api_client.post("/api/ml/classify/", {"role": "intent", "texts": ["x"]}, format="json"),
                          401)

    assert error["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"role": "ner", "texts": ["x"]}, "role"),
        ({"role": "intent", "texts": "one text"}, "texts"),
        ({"role": "intent", "texts": []}, "texts"),
        ({"role": "intent", "texts": [""]}, "texts"),
        ({"role": "intent"}, "texts"),
    ],
)
def test_bad_classify_requests_are_400(client_for, fake_models, payload, fragment):
    error = trellis_error(client_for("admin").post("/api/ml/classify/", payload, format="json"), 400)

    assert error["message"].startswith(fragment)


def test_entities_answer_spans_with_offsets(client_for, fake_models):
    text = "Shares of Apple rose."
    response = client_for("analyst").post("/api/ml/entities/", {"texts": [text, "nothing here"]}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    span = body["results"][0]["spans"][0]
    assert text[span["start"]:span["end"]] == span["text"] == "Apple"
    assert span["label"] == "ORG"
    assert span["ticker"] == "AAPL"
    assert body["results"][1]["spans"] == []
    assert body["version"] == "ner-default"


def test_entities_are_for_analysts(client_for, fake_models):
    assert trellis_error(client_for("merchandiser").post("/api/ml/entities/", {"texts": ["x"]}, format="json"),
                         403)["code"] == "permission_denied"


def test_stats_are_for_admins(client_for):
    assert client_for("agent").get("/api/ml/stats/").status_code == 403
    body = client_for("admin").get("/api/ml/stats/").json()

    assert {"chat", "endpoints", "models"} <= set(body)
    assert {"started", "cancelled", "in_flight", "in_flight_tokens"} <= set(body["chat"])
