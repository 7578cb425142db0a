"""Login limits hold across processes: a lockout earned on one server is enforced by another
sharing the install (the embedded default: one SQLite database, no Redis), on the token API
and on the login page (Django's async middleware path under uvicorn)."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message

import pytest

from tests.servers.conftest import child_env, free_port, manage, post_json, uvicorn_argv, wait_for_healthz

pytestmark = [pytest.mark.servers, pytest.mark.timeout(300)]

USERNAME, PASSWORD = "lockout-probe", "pw-lockout-probe-1"
LIMIT = 5  # TRELLIS_LOGIN_FAILURE_LIMIT's default


def _login_page(base_url: str, password: str) -> tuple[int, str, Message]:
    """GET the form (CSRF cookie and token), POST it; -> (status, body, headers)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(base_url + "/accounts/login/", timeout=10) as page:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.read().decode()).group(1)
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": USERNAME, "password": password}).encode()
    try:
        with opener.open(urllib.request.Request(base_url + "/accounts/login/", data=form), timeout=10) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def test_a_lockout_earned_on_one_server_holds_on_another(start_process, embedded_var, embedded_uvicorn):
    env = child_env(embedded_var)
    manage(
        [
            "shell",
            "-c",
            "from apps.accounts.services import user_create; "
            f"user_create(username={USERNAME!r}, password={PASSWORD!r}, roles=['analyst'])",
        ],
        env,
    )
    # a: the session's shared server; b: a second one on the same install
    port = free_port()
    a, b = embedded_uvicorn, start_process("uvicorn-b", uvicorn_argv(port), env, port=port)
    wait_for_healthz(b)

    failures = [
        post_json(a.url + "/api/auth/token/", {"username": USERNAME, "password": f"guess-{i}"})[0] for i in range(LIMIT)
    ]
    api_status, api_body = post_json(b.url + "/api/auth/token/", {"username": USERNAME, "password": PASSWORD})
    page_status, page, headers = _login_page(b.url, PASSWORD)

    assert failures == [400] * (LIMIT - 1) + [429]
    assert api_status == 429, api_body
    assert api_body["error"]["code"] == "locked_out"
    assert page_status == 429
    assert "Too many failed logins" in page
    assert int(headers["Retry-After"]) > 0  # case-insensitive lookup
