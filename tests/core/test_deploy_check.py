"""Production settings pass Django's deployment checklist."""

from __future__ import annotations

import os
import secrets
import string
import subprocess
import sys

from tests.conftest import REPO


def _manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def _production_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_PRODUCTION": "1",
        "DJANGO_ALLOWED_HOSTS": "example.com",
        "TRELLIS_VAR_DIR": str(tmp_path),
    }


def test_check_deploy_is_clean_in_production(tmp_path):
    alphabet = string.ascii_letters + string.digits + string.punctuation.replace("$", "")
    env = {**_production_env(tmp_path), "DJANGO_SECRET_KEY": "".join(secrets.choice(alphabet) for _ in range(50))}

    result = _manage(["check", "--deploy", "--fail-level", "WARNING"], env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = _manage(["check"], _production_env(tmp_path))

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
