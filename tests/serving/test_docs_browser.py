"""Swagger UI and ReDoc render in headless Chromium from this site's files only."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

PASSWORD = "pw-for-tests-123"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
RENDER_TIMEOUT_MS = 30_000


def log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(base_url + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(base_url + "/")


def watch(page: Page) -> tuple[list[str], list[str], list[str]]:
    """Every URL the page asks for, every URL it got an answer from, and every console error
    (CSP violations show there)."""
    requested: list[str] = []
    fetched: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("requestfinished", lambda request: fetched.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    return requested, fetched, errors


def assert_stayed_local(requested: list[str]) -> None:
    outside = [url for url in requested if urlsplit(url).scheme in ("http", "https")
               and urlsplit(url).hostname not in LOCAL_HOSTS]
    assert not outside, outside


def test_swagger_ui_lists_the_inference_api_without_leaving_the_site(page: Page, live_server, make_user):
    make_user("agent", username="ana")
    log_in(page, live_server.url, "ana")
    requested, _, errors = watch(page)

    page.goto(live_server.url + "/api/docs/")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Trellis API")
    for path in ("/v1/embeddings", "/v1/chat/completions", "/v1/models", "/api/ml/classify/"):
        expect(page.locator(".opblock-summary-path", has_text=path).first).to_be_visible()
    assert any("/static/drf_spectacular_sidecar/swagger-ui-dist/" in url for url in requested)
    assert_stayed_local(requested)
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_redoc_renders_the_schema_without_leaving_the_site(page: Page, live_server, make_user):
    make_user("agent", username="ana")
    log_in(page, live_server.url, "ana")
    requested, fetched, errors = watch(page)

    page.goto(live_server.url + "/api/redoc/")

    # ReDoc lays out the whole schema before it shows anything: seconds on a busy CPU.
    expect(page.get_by_role("heading", name="Create embeddings")).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Create a chat completion")).to_be_visible()
    assert any("/static/drf_spectacular_sidecar/redoc/" in url for url in fetched)
    # ReDoc's footer would ask cdn.redoc.ly for Redocly's logo: static/serving/redoc-offline.js
    # points that image at an empty data: URL, so nothing leaves and nothing is blocked.
    assert_stayed_local(requested)
    assert not errors, errors
