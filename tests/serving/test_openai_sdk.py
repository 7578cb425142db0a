"""The official ``openai`` package against a live uvicorn: Trellis as an OpenAI-compatible server.

One server for the module (embedded default, real bundled models), started with a chat
gate of one slot and no queue, so that a second concurrent reply is refused with 429.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.conftest import REPO
from tests.servers.conftest import (
    Server,
    _stop,
    child_env,
    free_port,
    get_json,
    post_json,
    run_async,
    uvicorn_argv,
    wait_for_healthz,
)

pytestmark = [pytest.mark.servers, pytest.mark.timeout(600)]

PASSWORD = "trellis-demo"
LONG_PROMPT = [{"role": "user", "content": "Count from 1 to 500, separated by commas."}]
SHORT_PROMPT = [{"role": "user", "content": "Say hello to a customer in one short sentence."}]


@pytest.fixture(scope="module")
def server(embedded_var, tmp_path_factory) -> Iterator[Server]:
    port = free_port()
    env = child_env(embedded_var, TRELLIS_LM_CONCURRENCY="1", TRELLIS_LM_MAX_WAITING="0")
    log = tmp_path_factory.mktemp("serving") / "uvicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(uvicorn_argv(port), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    running = Server("uvicorn", proc, log, port)
    try:
        wait_for_healthz(running)
        yield running
    finally:
        _stop(proc)


def _token(server: Server, username: str) -> str:
    status, body = post_json(server.url + "/api/auth/token/", {"username": username, "password": PASSWORD})
    assert status == 200, body
    return body["token"]


@pytest.fixture(scope="module")
def agent_token(server) -> str:
    return _token(server, "agent")


@pytest.fixture(scope="module")
def admin_token(server) -> str:
    return _token(server, "admin")


@pytest.fixture(scope="module")
def client(server, agent_token) -> OpenAI:
    """What a user writes: the SDK pointed at Trellis with a Trellis token (no retries, to see errors)."""
    return OpenAI(base_url=server.url + "/v1", api_key=agent_token, max_retries=0, timeout=180)


def stats(server: Server, admin_token: str) -> dict:
    status, body = get_json(server.url + "/api/ml/stats/", headers={"Authorization": f"Token {admin_token}"})
    assert status == 200, body
    return body


def wait_until_idle(server: Server, admin_token: str, timeout: float = 60) -> dict:
    """Stats once no reply is in flight and the chat model holds no slot."""
    deadline = time.monotonic() + timeout
    while True:
        body = stats(server, admin_token)
        lm = body["models"].get("chat-lm", {})
        if body["chat"]["in_flight"] == 0 and not lm.get("active"):
            return body
        assert time.monotonic() < deadline, f"chat never went idle: {body}"
        time.sleep(0.1)


def open_raw_stream(server: Server, token: str, payload: dict) -> tuple[http.client.HTTPConnection, object]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({**payload, "stream": True}),
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return conn, conn.getresponse()


def sse_data(response) -> Iterator[str]:
    """The ``data:`` payloads of a server-sent event stream, as they arrive."""
    while line := response.readline():
        line = line.decode().rstrip("\n")
        if line.startswith("data: "):
            yield line.removeprefix("data: ")


# --- embeddings -------------------------------------------------------------------------


def test_embeddings_equal_the_in_process_embedder(client):
    from ml.defaults import embedder_weights
    from ml.embeddings import Embedder

    texts = ["Where is my parcel?", "Shares of Apple rose 3% after strong results."]

    as_floats = client.embeddings.create(model="embedder", input=texts, encoding_format="float")
    as_base64 = client.embeddings.create(model="embedder", input=texts)  # the SDK's default: base64 on the wire

    expected = Embedder(embedder_weights()).embed(texts)
    for response in (as_floats, as_base64):
        got = np.array([d.embedding for d in sorted(response.data, key=lambda d: d.index)], dtype=np.float32)
        assert got.shape == (2, 384)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
        assert response.model == "embedder-default"
        assert response.usage.prompt_tokens == response.usage.total_tokens > len(texts) * 2


def test_one_string_input_gives_one_embedding(client):
    response = client.embeddings.create(model="embedder-default", input="hello", encoding_format="float")

    assert [d.index for d in response.data] == [0]
    assert abs(np.linalg.norm(response.data[0].embedding) - 1.0) < 1e-4


def test_concurrent_embedding_requests_share_forward_passes(server, agent_token, admin_token):
    client = AsyncOpenAI(base_url=server.url + "/v1", api_key=agent_token, max_retries=0, timeout=180)
    texts = [f"Customer question number {i} about an order." for i in range(24)]
    before = stats(server, admin_token)["models"]["embedder"]["batching"]

    async def scenario():
        async with client:
            return await asyncio.gather(*(client.embeddings.create(model="embedder", input=t) for t in texts))

    responses = run_async(scenario)
    after = stats(server, admin_token)["models"]["embedder"]["batching"]

    assert all(len(r.data) == 1 and len(r.data[0].embedding) == 384 for r in responses)
    requests = after["requests"] - before["requests"]
    passes = after["batches"] - before["batches"]
    assert requests == len(texts)
    assert passes < requests, f"{requests} requests took {passes} forward passes"


# --- chat ------------------------------------------------------------------------------------


def test_chat_completion_without_streaming(client):
    completion = client.chat.completions.create(model="chat-lm", messages=SHORT_PROMPT, max_tokens=24)

    choice = completion.choices[0]
    assert completion.object == "chat.completion"
    assert choice.message.role == "assistant"
    assert choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage.prompt_tokens > 0
    assert 0 < completion.usage.completion_tokens <= 24
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_chat_completion_streamed_with_the_sdk(client):
    stream = client.chat.completions.create(model="chat-lm", messages=SHORT_PROMPT, max_tokens=24, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["stop"], ["length"])
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_streamed_events_end_with_done(server, agent_token):
    conn, response = open_raw_stream(server, agent_token, {"model": "chat-lm", "messages": SHORT_PROMPT,
                                                           "max_tokens": 16})
    try:
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/event-stream")
        assert response.getheader("Cache-Control") == "no-cache"
        assert response.getheader("X-Accel-Buffering") == "no"
        events = list(sse_data(response))
    finally:
        conn.close()

    assert events[-1] == "[DONE]"
    last_chunk = json.loads(events[-2])
    assert last_chunk["choices"][0]["finish_reason"] in ("stop", "length")
    assert last_chunk["usage"]["completion_tokens"] > 0  # usage without include_usage too


def test_models_list_and_retrieve(client):
    models = {m.id: m for m in client.models.list()}

    assert {"embedder", "chat-lm", "intent", "embedder-default", "chat-lm-default"} <= set(models)
    assert all(m.object == "model" and m.owned_by == "trellis" for m in models.values())
    chat = client.models.retrieve("chat-lm")
    assert chat.id == "chat-lm"
    assert chat.model_extra["role"] == "chat-lm"
    assert chat.model_extra["status"] == "serving"


# --- /api/ml/ with the real bundled models ---------------------------------------------------


def test_classify_with_the_serving_intent_model(server, agent_token):
    texts = ["I want my money back for this broken blender", "hello there"]

    status, body = post_json(server.url + "/api/ml/classify/", {"role": "intent", "texts": texts},
                             headers={"Authorization": f"Token {agent_token}"}, timeout=120)

    assert status == 200, body
    assert body["version"] == "intent-default"
    assert [r["label"] for r in body["results"]] == ["refund", "greeting"]
    for result in body["results"]:
        assert abs(sum(result["probabilities"].values()) - 1.0) < 1e-4
        assert result["confidence"] == max(result["probabilities"].values())


def test_entities_with_the_serving_ner_model(server):
    text = "Microsoft and Apple shares rose in New York on Monday."

    status, body = post_json(server.url + "/api/ml/entities/", {"texts": [text]},
                             headers={"Authorization": f"Token {_token(server, 'analyst')}"}, timeout=120)

    assert status == 200, body
    spans = body["results"][0]["spans"]
    assert spans, body
    assert all(text[s["start"]:s["end"]] == s["text"] for s in spans)
    assert {"Microsoft", "Apple"} & {s["text"] for s in spans if s["label"] == "ORG"}


# --- errors as the SDK's exceptions ---------------------------------------------------------


@pytest.mark.parametrize(("headers", "code"), [({"Authorization": openai.Omit()}, "missing_api_key"),
                                               ({}, "invalid_api_key")], ids=["no-key", "wrong-key"])
def test_no_or_a_wrong_key_raises_authentication_error(server, headers, code):
    client = OpenAI(base_url=server.url + "/v1", api_key="not-a-trellis-token", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as raised:
        client.embeddings.create(model="embedder", input="x", extra_headers=headers)

    assert raised.value.status_code == 401
    assert raised.value.code == code


def test_a_bad_request_raises_bad_request_error_and_the_next_one_is_served(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="chat-lm", messages=[{"role": "user", "content": 42}])

    assert raised.value.param == "messages[0].content"
    assert client.embeddings.create(model="embedder", input="still fine").data


def test_an_unknown_model_raises_not_found_error(client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.embeddings.create(model="text-embedding-3-large", input="x")

    assert raised.value.code == "model_not_found"


def test_a_full_queue_raises_rate_limit_error_with_retry_after(server, client, agent_token, admin_token):
    wait_until_idle(server, admin_token)
    conn, holder = open_raw_stream(server, agent_token, {"model": "chat-lm", "messages": LONG_PROMPT,
                                                         "max_tokens": 400})
    try:
        assert holder.status == 200
        next(sse_data(holder))  # the reply holds the only slot; the queue takes nobody

        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(model="chat-lm", messages=SHORT_PROMPT, max_tokens=8)
    finally:
        conn.close()

    assert raised.value.code == "server_busy"
    assert int(raised.value.response.headers["Retry-After"]) >= 1
    wait_until_idle(server, admin_token)
    assert client.chat.completions.create(model="chat-lm", messages=SHORT_PROMPT, max_tokens=8).choices


def test_a_client_that_disconnects_stops_its_generation(server, agent_token, admin_token):
    before = wait_until_idle(server, admin_token)
    conn, response = open_raw_stream(server, agent_token, {"model": "chat-lm", "messages": LONG_PROMPT,
                                                           "max_tokens": 400})
    events = sse_data(response)
    received = [next(events) for _ in range(4)]  # the role chunk and three pieces
    assert all(json.loads(e)["choices"][0]["finish_reason"] is None for e in received)

    conn.sock.shutdown(2)  # the client goes away mid-reply
    conn.close()
    after = wait_until_idle(server, admin_token)
    time.sleep(1.0)
    later = stats(server, admin_token)

    assert after["chat"]["cancelled"] == before["chat"]["cancelled"] + 1
    generated = after["models"]["chat-lm"]["tokens_generated"] - before["models"].get("chat-lm", {}).get(
        "tokens_generated", 0)
    assert 3 <= generated < 400  # stopped long before max_tokens
    assert later["models"]["chat-lm"]["tokens_generated"] == after["models"]["chat-lm"]["tokens_generated"]
    assert later["chat"]["in_flight_tokens"] == 0
