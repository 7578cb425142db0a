"""The dashboard under its Content-Security-Policy, in Chromium, for every role: no violation, no
console error, and the pieces that used inline code still work (confusion-matrix shades, the live
job socket, confirm dialogs). Served by a real uvicorn, as run_suite starts it, so WebSockets work."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.live import WATCH_VIOLATIONS, uvicorn_server
from tests.mlops.factories import DatasetFactory, ModelVersionFactory, TrainingJobFactory, media_in, report
from tests.servers import conftest as servers
from tests.servers.conftest import Server

pytestmark = [pytest.mark.e2e, pytest.mark.servers, pytest.mark.timeout(600), pytest.mark.django_db(transaction=True)]

start_process = servers.start_process  # the fixture that starts and always stops a child process

PASSWORD = "pw-for-tests-123"
SCREENSHOT = "/tmp/e2e-csp-job-page.png"  # look at it: the confusion matrix keeps its colours
LABELS = ["positive", "negative", "neutral"]

# Chromium reports a refused inline style or script both as this event and as a console error.
@pytest.fixture
def server(start_process, tmp_path) -> Server:
    return uvicorn_server(start_process, tmp_path)


@pytest.fixture
def data(make_user, settings, tmp_path) -> dict[str, int]:
    media_in(settings, tmp_path)
    for role in ("admin", "agent", "analyst", "merchandiser"):
        make_user(role, username=role, password=PASSWORD)
    ids = {}
    for role, status in (("sentiment", "running"), ("intent", "succeeded")):
        dataset = DatasetFactory(role=role, label_counts={"positive": 30, "negative": 12, "neutral": 3})
        history = [
            {"epoch": 1, "train_loss": 0.9, "eval_loss": 0.85, "dev": report(LABELS, macro_f1=0.6, accuracy=0.65)},
            {"epoch": 2, "train_loss": 0.6, "eval_loss": 0.7, "dev": report(LABELS)},
        ]
        job = TrainingJobFactory(
            dataset=dataset, status=status, metrics_history=history, epoch=2, step=8, total_steps=12, progress=0.66
        )
        ModelVersionFactory(
            role=role,
            version=f"{role}-e2e-0001",
            labels=LABELS,
            metrics={**report(LABELS), "dev": report(LABELS)},
            training_job=job,
            status="active",
        )
        ids[f"{role}_dataset"], ids[f"{role}_job"] = dataset.pk, job.pk
    return ids


def _pages(role: str, ids: dict[str, int]) -> list[str]:
    common = ["/", "/models/", "/models/datasets/", "/models/jobs/", "/api/docs/"]
    own = {"admin": "sentiment", "analyst": "sentiment", "agent": "intent"}.get(role)
    if own is None:  # merchandisers see the embedder only, which has no training data
        return [*common, "/models/roles/embedder/"]
    return [
        *common,
        f"/models/roles/{own}/",
        f"/models/datasets/{ids[own + '_dataset']}/",
        f"/models/jobs/{ids[own + '_job']}/",
    ]


def _log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(base_url + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name=f"Welcome, {username}")).to_be_visible()


def _check_job_page(page: Page, job_pk: int, live: bool) -> None:
    # The socket connects under connect-src 'self' (a running job stays live; a finished one closes).
    expect(page.locator("#ws-state")).to_have_text("live" if live else "finished")
    # The matrix is re-drawn by job.js from the socket's snapshot: classes, not inline styles.
    diagonal = page.locator("#job-confusion td.cm-ok-8")
    expect(diagonal).to_have_count(3)
    expect(page.locator("#job-confusion td.cm-bad-1")).to_have_count(6)
    assert diagonal.first.evaluate("e => getComputedStyle(e).backgroundColor") == "rgba(28, 138, 74, 0.8)"
    assert page.locator("#chart-loss").evaluate("c => c.height") > 100  # Chart.js drew into its box


def _check_cancel_asks_first(page: Page, job_pk: int) -> None:
    """The confirm comes from static/core/app.js (no onsubmit): dismissing it keeps the job running."""
    from apps.mlops.models import TrainingJob

    dialogs: list[str] = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#ws-state")).to_have_text("live")
    assert dialogs == ["Cancel this job?"]
    assert TrainingJob.objects.get(pk=job_pk).status == "running"


def test_every_role_browses_the_dashboard_without_csp_violations(browser: Browser, server: Server, data):
    problems: list[str] = []
    for role in ("admin", "agent", "analyst", "merchandiser"):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            where = {"url": "/accounts/login/"}
            context.expose_function(
                "reportViolation", lambda text, w=where, r=role: problems.append(f"{r} {w['url']}: CSP {text}")
            )
            context.add_init_script(WATCH_VIOLATIONS)
            page.on(
                "console",
                lambda m, w=where, r=role: m.type == "error" and problems.append(f"{r} {w['url']}: console {m.text}"),
            )
            page.on("pageerror", lambda e, w=where, r=role: problems.append(f"{r} {w['url']}: error {e}"))

            _log_in(page, server.url, role)
            for path in _pages(role, data):
                where["url"] = path
                response = page.goto(server.url + path)
                assert response is not None and response.status == 200, (role, path)
                assert "script-src 'self'" in response.headers["content-security-policy"]
                if path == "/api/docs/":  # Swagger UI runs under the same policy, no exemption
                    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Trellis API")
                    expect(page.locator(".swagger-ui .opblock-tag").first).to_be_visible()
                if path.startswith("/models/datasets/") and path != "/models/datasets/":
                    expect(page.locator("meter.bar")).to_have_count(3)
                if re.fullmatch(r"/models/jobs/\d+/", path):
                    job_pk = int(path.split("/")[3])
                    _check_job_page(page, job_pk, live=job_pk == data["sentiment_job"])
                    if role == "admin":
                        page.screenshot(path=SCREENSHOT, full_page=True)
                        _check_cancel_asks_first(page, job_pk)
        finally:
            context.close()

    assert problems == []
