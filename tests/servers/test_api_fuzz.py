"""Schema fuzzing: every documented API operation, with each role's token and anonymously.

A real uvicorn on the embedded default serves its own OpenAPI schema; schemathesis generates
requests from it (valid ones and deliberately invalid ones) and every response must:
- not be a 5xx;
- carry a status code the schema documents for that operation, with a documented content type;
- match the documented response schema;
- for a 4xx, be the project's one error shape ``{"error": {"code", "message", "details"}}``.

Runs are seeded (``derandomize``) so CI sees the same requests every time, and bounded: a
fixed number of examples per operation, credential and generation mode, no shrinking; a role
that the operation refuses (403 on its first request) gets one valid and one invalid request.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi._hypothesis import can_negate_headers, can_negate_path_parameters
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.servers.conftest import (
    child_env,
    free_port,
    get_json,
    manage,
    post_json,
    uvicorn_argv,
    wait_for_healthz,
)

pytestmark = [pytest.mark.servers, pytest.mark.timeout(1200)]

ROLES = ("admin", "agent", "analyst", "merchandiser")
ANONYMOUS = "anonymous"
PASSWORD = "trellis-demo"
# Examples per operation, caller and generation mode (no negative run where an operation has
# no input to make invalid). The anonymous caller is turned away with 401 before any input is
# read, except by the login, which is fuzzed anonymously only (it ignores credentials).
EXAMPLES = {
    "role": {GenerationMode.POSITIVE: 8, GenerationMode.NEGATIVE: 5},
    ANONYMOUS: {GenerationMode.POSITIVE: 2, GenerationMode.NEGATIVE: 1},
    # Each success uses up the throwaway token, and a new one costs a password hash (~1 s).
    "consumes": {GenerationMode.POSITIVE: 3, GenerationMode.NEGATIVE: 3},
    "login": {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 8},
}
REQUEST_TIMEOUT = 30  # seconds: one request on a loaded 2-core machine
# Operations that can revoke a token of the caller (rotate, revoke, delete by id, logout).
# They run after every other operation, with a throwaway token of the same user that is
# replaced after each call that succeeded; the main tokens are checked before they start.
CONSUMES_TOKEN = re.compile(r"^/api/auth/(token/.+|tokens/.+|logout.*)$")
# Fuzzed last: each attempt hashes a password, and failed ones count towards a lockout.
LOGIN = "POST /api/auth/token/"
SERVER_ENV = {
    # The fuzzer sends thousands of requests a minute from one address; the limits themselves
    # are covered by tests/accounts. A 429 that still trips must be documented and well shaped.
    "TRELLIS_THROTTLE_ANON": "1000000/minute",
    "TRELLIS_THROTTLE_USER": "1000000/minute",
    "TRELLIS_LOGIN_FAILURE_LIMIT": "1000000",
    # Inference on one CPU thread: small requests keep each under a second or two (the limits
    # themselves are covered by tests/serving).
    "TRELLIS_SERVING_MAX_TOKENS": "8",
    "TRELLIS_SERVING_MAX_TEXTS": "8",
    "TRELLIS_SERVING_MAX_TEXT_CHARS": "2000",
}
HYPOTHESIS = {
    "derandomize": True,  # the same requests on every run
    "database": None,  # no .hypothesis/ example store in the tree
    "deadline": None,
    "phases": [Phase.explicit, Phase.generate],  # no shrinking: keeps a failing run bounded
    "suppress_health_check": list(HealthCheck),
    "verbosity": Verbosity.quiet,
}


def error_shape(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """Every 4xx is ``{"error": {"code": str, "message": str, "details": object}}``.

    The OpenAI-compatible ``/v1`` answers in OpenAI's error shape instead, which its clients
    parse: ``{"error": {"message": str, "type": str, "param": ..., "code": ...}}``.
    """
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} body is not JSON: {response.text[:200]!r}") from None
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict) and set(body) == {"error"}, f"not the error shape: {body!r}"[:300]
    assert isinstance(error.get("message"), str) and error["message"], f"error.message: {error!r}"[:300]
    if case.operation.path.startswith("/v1/"):
        assert isinstance(error.get("type"), str) and "code" in error, f"not OpenAI's error shape: {error!r}"[:300]
        return None
    assert isinstance(error.get("code"), str) and error["code"], f"error.code: {error!r}"[:300]
    assert isinstance(error.get("details"), (dict, list)), f"error.details: {error!r}"[:300]
    return None


def no_crash(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """No 5xx, except a 503 the operation documents (e.g. recommendations before the first fit:
    ``recommender_not_ready``); ``status_code_conformance`` fails an undocumented one."""
    if response.status_code == 503:
        body = response.json() if response.content else {}
        assert isinstance(body, dict) and isinstance(body.get("error"), dict), f"503 not in an error shape: {body!r}"
        return None
    return not_a_server_error(ctx, response, case)


CHECKS: list[Callable[..., bool | None]] = [
    no_crash,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    error_shape,
]


@dataclass
class Tally:
    operations: set[str] = field(default_factory=set)
    examples: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    by_caller: dict[str, set[int]] = field(default_factory=dict)  # caller -> statuses it saw
    failures: dict[tuple[str, str], str] = field(default_factory=dict)  # (operation, failure kind) -> report
    seconds: dict[str, float] = field(default_factory=dict)  # per operation, all callers and modes

    def record(self, operation: str, caller: str, status: int, group: FailureGroup | None = None) -> None:
        self.examples += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.by_caller.setdefault(caller, set()).add(status)
        for failure in group.exceptions if group else ():
            self.failures.setdefault((operation, type(failure).__name__), f"[{caller}] {group.args[0]}")


@dataclass
class Callers:
    """The credentials of the run: a main token per role, and a throwaway one to use up."""

    base_url: str
    main: dict[str, str] = field(default_factory=dict)
    throwaway: dict[str, str] = field(default_factory=dict)

    def sign_in(self, role: str) -> str:
        status, body = post_json(self.base_url + "/api/auth/token/", {"username": role, "password": PASSWORD})
        assert status == 200, body
        return body["token"]

    def headers(self, caller: str, *, consumes: bool) -> dict[str, str]:
        if caller == ANONYMOUS:
            return {}
        return {"Authorization": f"Token {(self.throwaway if consumes else self.main)[caller]}"}

    def after(self, caller: str, response: schemathesis.Response, *, consumes: bool) -> None:
        if consumes and caller != ANONYMOUS and response.status_code < 300:
            # Rotated: the answer carries the replacement; revoked: sign in again.
            body = response.json() if response.content else {}
            token = body.get("token") if isinstance(body, dict) else None
            self.throwaway[caller] = token or self.sign_in(caller)

    def main_tokens_work(self) -> dict[str, int]:
        me = self.base_url + "/api/auth/me/"
        return {role: get_json(me, headers={"Authorization": f"Token {key}"})[0] for role, key in self.main.items()}


def _has_negative_cases(operation: Any) -> bool:
    """Whether schemathesis can make a request of ``operation`` invalid.

    Mirrors its own choice (``_draw_negated_locations`` in schemathesis/specs/openapi/_hypothesis.py):
    asked anyway, it rejects every draw until Hypothesis gives up, which costs seconds each time.
    The credentials (an optional ``Authorization`` header, a session cookie) take any string.
    """
    if operation.query.schema["properties"]:
        return True
    if operation.path_parameters.schema["properties"] and can_negate_path_parameters(operation):
        return True
    for location in (ParameterLocation.HEADER, ParameterLocation.COOKIE):
        container = operation.get_parameter_set(location)
        if container.schema["properties"] and can_negate_headers(operation, location):
            return True
    return any(item.is_negatable for item in operation.body.items)


def _fuzz(
    operation: Any, caller: str, budget: int, mode: GenerationMode, callers: Callers, tally: Tally
) -> set[int]:
    """Runs ``budget`` generated requests; returns the statuses they got."""
    consumes = bool(CONSUMES_TOKEN.match(operation.path))
    seen: set[int] = set()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=budget, **HYPOTHESIS)
    def run(case: schemathesis.Case) -> None:
        headers = callers.headers(caller, consumes=consumes)
        response = case.call(base_url=callers.base_url, headers=headers, timeout=REQUEST_TIMEOUT)
        seen.add(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
            tally.record(operation.label, caller, response.status_code)
        except FailureGroup as group:
            tally.record(operation.label, caller, response.status_code, group)
        callers.after(caller, response, consumes=consumes)

    run()
    return seen


def _plan(operation: Any) -> tuple[str, tuple[str, ...]]:
    """Which budget, and which callers, an operation is fuzzed with."""
    if operation.label == LOGIN:
        return "login", (ANONYMOUS,)
    return ("consumes" if CONSUMES_TOKEN.match(operation.path) else "role"), (*ROLES, ANONYMOUS)


def test_every_documented_operation_survives_fuzzing(start_process, tmp_path_factory):
    var = tmp_path_factory.mktemp("fuzz-var")
    env = child_env(var, **SERVER_ENV)
    manage(["migrate", "--noinput", "-v", "0"], env)
    manage(["create_demo_users"], env)
    manage(["mlops_demo"], env)  # one dataset, so that some generated ids name a real object
    port = free_port()
    server = start_process("uvicorn", uvicorn_argv(port), env, port=port)
    wait_for_healthz(server)
    callers = Callers(server.url)
    callers.main = {role: callers.sign_in(role) for role in ROLES}
    callers.throwaway = {role: callers.sign_in(role) for role in ROLES}
    schema = schemathesis.openapi.from_url(
        server.url + "/api/schema/?format=json",
        headers={"Authorization": f"Token {callers.main['admin']}"},
        timeout=REQUEST_TIMEOUT,
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]  # the schema really was read
    # The token-consuming operations after the others, the login last.
    phases: list[list[Any]] = [[], [], []]
    for operation in sorted(operations, key=lambda op: op.label):
        kind = _plan(operation)[0]
        phases[{"role": 0, "consumes": 1, "login": 2}[kind]].append(operation)

    tally = Tally()
    started = time.monotonic()
    for number, phase in enumerate(phases):
        if number == 1:
            # Every operation so far was fuzzed signed in: no main token was used up on the way.
            assert callers.main_tokens_work() == dict.fromkeys(ROLES, 200)
        for operation in phase:
            tally.operations.add(operation.label)
            kind, who = _plan(operation)
            modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if _has_negative_cases(operation) else [])
            operation_started = time.monotonic()
            for caller in who:
                budgets = EXAMPLES[ANONYMOUS if caller == ANONYMOUS and kind != "login" else kind]
                if caller in ROLES and kind == "role":
                    # A role the operation refuses gets one valid and one invalid request (both
                    # must be a documented 403 in the error shape), not the full budget.
                    probe = _fuzz(operation, caller, 1, GenerationMode.POSITIVE, callers, tally)
                    if probe == {403}:
                        for mode in modes[1:]:
                            _fuzz(operation, caller, 1, mode, callers, tally)
                        continue
                for mode in modes:
                    _fuzz(operation, caller, budgets[mode], mode, callers, tally)
            tally.seconds[operation.label] = time.monotonic() - operation_started

    print(  # noqa: T201 - the figures the report asks for (shown with -s)
        f"\nschema fuzzing: {len(tally.operations)} operations, {tally.examples} examples "
        f"in {time.monotonic() - started:.0f} s; statuses {dict(sorted(tally.statuses.items()))}; slowest: "
        + ", ".join(f"{label} {s:.0f} s" for label, s in sorted(tally.seconds.items(), key=lambda kv: -kv[1])[:8])
    )
    # The credentials were really sent: every role got somewhere, the anonymous caller was refused.
    assert all(any(200 <= code < 300 for code in tally.by_caller[role]) for role in ROLES), tally.by_caller
    assert 401 in tally.by_caller[ANONYMOUS]
    assert not tally.failures, "\n\n".join(
        f"{operation} / {kind}:\n{report}" for (operation, kind), report in sorted(tally.failures.items())
    )
