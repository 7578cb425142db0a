"""Content-Security-Policy: a strict header on every page, and pages that need nothing inline."""

from __future__ import annotations

import re

import pytest
from csp.constants import HEADER

from tests.mlops.factories import DatasetFactory, ModelVersionFactory, TrainingJobFactory, media_in, report

pytestmark = pytest.mark.django_db

LABELS = ["positive", "negative", "neutral"]
# What a strict policy refuses: a style attribute, an inline (executable) script, an on* handler.
INLINE = re.compile(
    r"""<[a-z][^>]*\sstyle\s*=|<script(?![^>]*\ssrc=)(?![^>]*type="application/json")[^>]*>|<[a-z][^>]*\son[a-z]+\s*=""",
    re.IGNORECASE,
)


def _directives(response) -> dict[str, str]:
    return {
        name: value.strip()
        for name, _, value in (part.strip().partition(" ") for part in response[HEADER].split(";"))
        if name
    }


@pytest.fixture
def admin(client, make_user):
    client.force_login(make_user("admin"))
    return client


def test_dashboard_page_has_the_strict_policy(admin):
    response = admin.get("/")

    assert response.status_code == 200
    assert _directives(response) == {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "connect-src": "'self'",
        "font-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }


def test_login_page_and_api_errors_carry_it_too(client):
    assert "'unsafe-inline'" not in client.get("/accounts/login/")[HEADER]
    assert _directives(client.get("/api/auth/me/"))["default-src"] == "'self'"


def test_pages_with_data_have_nothing_inline(admin, settings, tmp_path):
    media_in(settings, tmp_path)
    dataset = DatasetFactory(role="sentiment", label_counts={"positive": 30, "negative": 12, "neutral": 3})
    history = [{"epoch": 1, "train_loss": 0.9, "eval_loss": 0.8, "dev": report(LABELS)}]
    job = TrainingJobFactory(dataset=dataset, status="running", metrics_history=history, total_steps=8, step=4)
    version = ModelVersionFactory(role="sentiment", labels=LABELS, metrics={**report(LABELS), "dev": report(LABELS)})
    version.status = "active"
    version.save()
    pages = [
        "/",
        "/models/",
        "/models/roles/sentiment/",
        f"/models/versions/{version.pk}/",
        "/models/datasets/",
        f"/models/datasets/{dataset.pk}/",
        "/models/datasets/upload/",
        "/models/jobs/",
        f"/models/jobs/{job.pk}/",
        "/models/no-such-page/",
    ]

    for path in pages:
        response = admin.get(path)
        html = response.content.decode()
        assert response.status_code in (200, 404), path
        assert INLINE.findall(html) == [], path

    job_page = admin.get(f"/models/jobs/{job.pk}/").content.decode()
    # The confusion matrix is shaded by class: 8 of 10 on the diagonal, 1 of 10 off it.
    assert job_page.count('class="cm-ok-8"') == 3 and job_page.count('class="cm-bad-1"') == 6
