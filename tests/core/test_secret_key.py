"""The embedded default's secret key: random per install, kept in var/ (0600), flagged by check --deploy."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from config.settings import _install_secret_key
from tests.conftest import REPO


def test_a_random_key_is_made_once_and_kept_private(tmp_path):
    path = tmp_path / "secret_key"

    first = _install_secret_key(path)
    again = _install_secret_key(path)
    elsewhere = _install_secret_key(tmp_path / "other_install")

    assert first == again  # sessions and signed tickets survive a restart
    assert first != elsewhere  # no two installs share a key
    assert first.startswith("django-insecure-") and len(first) > 60
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_check_deploy_flags_the_generated_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", TRELLIS_VAR_DIR=str(tmp_path))

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120,
    )

    assert "security.W009" in result.stdout + result.stderr
    key = (tmp_path / "secret_key").read_text()
    assert key.startswith("django-insecure-")
    assert "embedded-default-insecure-key" not in key
