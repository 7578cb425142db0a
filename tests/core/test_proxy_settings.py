"""X-Forwarded-Proto is trusted only behind a proxy (TRELLIS_NUM_PROXIES > 0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.test import override_settings

from tests.conftest import REPO

pytestmark = pytest.mark.django_db

PRINT_HEADER = "import json, config.settings as s; print(json.dumps(getattr(s, 'SECURE_PROXY_SSL_HEADER', None)))"


def _proxy_ssl_header(tmp_path, **env: str) -> list[str] | None:
    """SECURE_PROXY_SSL_HEADER as config/settings.py computes it for ``env`` (a fresh interpreter)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TRELLIS_NUM_PROXIES"))}
    result = subprocess.run(
        [sys.executable, "-c", PRINT_HEADER],
        cwd=REPO,
        env={**clean, "TRELLIS_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("production", [False, True], ids=["embedded", "production"])
def test_the_header_is_ignored_without_a_proxy(tmp_path, production):
    env = {"DJANGO_PRODUCTION": "1", "DJANGO_SECRET_KEY": "k" * 50} if production else {}

    assert _proxy_ssl_header(tmp_path, **env) is None
    assert _proxy_ssl_header(tmp_path, TRELLIS_NUM_PROXIES="0", **env) is None


@pytest.mark.parametrize("production", [False, True], ids=["embedded", "production"])
def test_the_header_is_trusted_behind_a_proxy(tmp_path, production):
    env = {"DJANGO_PRODUCTION": "1", "DJANGO_SECRET_KEY": "k" * 50} if production else {}

    assert _proxy_ssl_header(tmp_path, TRELLIS_NUM_PROXIES="1", **env) == ["HTTP_X_FORWARDED_PROTO", "https"]


@override_settings(SECURE_SSL_REDIRECT=True)
def test_a_forged_header_does_not_make_a_request_secure(client):
    # This test process runs without a proxy, as the default install does.
    response = client.get("/healthz", HTTP_X_FORWARDED_PROTO="https")

    assert response.status_code == 301
    assert response["Location"] == "https://testserver/healthz"


@override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_behind_a_proxy_its_header_counts(client):
    assert client.get("/healthz", HTTP_X_FORWARDED_PROTO="https").status_code == 200
    assert client.get("/healthz", HTTP_X_FORWARDED_PROTO="http").status_code == 301
