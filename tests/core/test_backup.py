"""Backup and restore: a real promoted model survives a round trip into an empty install.

The backup runs in this process against the test database (SQLite, or PostgreSQL when
DATABASE_URL is set); the restore and the checks run as separate ``manage.py`` processes on
a new, empty database and empty folders, as an operator would run them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection

from apps.mlops.sample_data import intent_sample_rows, rows_to_csv
from apps.mlops.services.datasets import dataset_create
from apps.mlops.services.serving import model_get, serving_reset
from apps.mlops.services.training import training_job_create, training_job_run
from apps.mlops.services.versions import model_version_promote
from ml.registry import default_registry
from tests.mlops.factories import media_in

# Committed rows: pg_dump and the child processes only see what is committed.
pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["where is my parcel", "I was charged twice for my order", "I want my money back", "I cannot log in"]
# Runs in the restored install: what it serves, from which artifact, and whether uploads came back.
PROBE = """
import hashlib, json
from apps.audit.models import AuditEvent
from apps.mlops.models import Dataset, ModelVersion
from apps.mlops.services.serving import model_get
active = {v.role: [v.pk, v.version, v.artifact_path] for v in ModelVersion.objects.filter(status="active")}
predictions = [p.label for p in model_get("intent").predict(TEXTS)]
uploads_intact = all(hashlib.sha256(d.file.read()).hexdigest() == d.sha256 for d in Dataset.objects.all())
audit = list(AuditEvent.objects.values_list("action", flat=True))
print("PROBE " + json.dumps({"active": active, "predictions": predictions, "uploads_intact": uploads_intact,
                             "audit": audit}))
"""


@pytest.fixture
def live(settings, tmp_path, monkeypatch, make_user):
    """An install with a dataset and a promoted few-shot intent model (trains in seconds)."""
    media_in(settings, tmp_path / "live")
    monkeypatch.setattr("apps.mlops.services.training.training_job_enqueue", lambda job_id: None)
    registry = default_registry()
    registry.ensure_active("intent", None)
    serving_reset()
    admin = make_user("admin")
    upload = SimpleUploadedFile("intents.csv", rows_to_csv(intent_sample_rows(160, seed=5)))
    dataset = dataset_create(uploaded_file=upload, name="intents", role="intent", user=admin)
    job = training_job_run(training_job_create(dataset=dataset, method="fewshot", params={}, user=admin).pk)
    assert job.status == "succeeded", job.error
    version = model_version_promote(version=job.model_version, user=admin, force=True)
    yield version
    registry.ensure_active("intent", None)
    registry.unload("intent")
    serving_reset()


@pytest.fixture
def empty_database_url():
    """DATABASE_URL of a new, empty database: a fresh PostgreSQL database, or none (SQLite in TRELLIS_VAR_DIR)."""
    if connection.vendor != "postgresql":
        yield None
        return
    import psycopg

    params = connection.settings_dict
    name = f"{params['NAME']}_restored_{os.getpid()}"
    admin_db = psycopg.connect(host=params["HOST"] or None, port=params["PORT"] or None, user=params["USER"] or None,
                               password=params["PASSWORD"] or None, dbname="postgres", autocommit=True)
    admin_db.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin_db.execute(f'CREATE DATABASE "{name}"')
    credentials = quote(params["USER"] or "") + (":" + quote(params["PASSWORD"]) if params["PASSWORD"] else "")
    yield f"postgres://{credentials}@{params['HOST'] or 'localhost'}:{params['PORT'] or 5432}/{name}"
    admin_db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin_db.close()


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180, check=False)


def test_restore_into_an_empty_install_serves_the_same_models(live, tmp_path, empty_database_url):
    # given a live install serving a promoted version, backed up
    expected = [p.label for p in model_get("intent").predict(TEXTS)]
    backup_dir = tmp_path / "backup"
    out = StringIO()
    call_command("backup", str(backup_dir), stdout=out)
    manifest = json.loads((backup_dir / "backup.json").read_text())
    assert manifest["database"]["vendor"] == connection.vendor
    assert [v["version"] for v in manifest["active_versions"]] == [live.version]
    assert manifest["active_versions"][0]["manifest_sha256"]
    assert manifest["active_versions"][0]["files"]["manifest.json"] > 0
    # when it is restored into an empty database and empty folders elsewhere
    env = {**os.environ, "TRELLIS_VAR_DIR": str(tmp_path / "restored"),
           "TRELLIS_ARTIFACTS_DIR": str(tmp_path / "restored" / "artifacts"), "TRELLIS_TORCH_THREADS": "1"}
    env.pop("DATABASE_URL", None)
    if empty_database_url:
        env["DATABASE_URL"] = empty_database_url
    restored = manage(env, "restore", str(backup_dir))
    assert restored.returncode == 0, restored.stderr
    assert "Restored and verified" in restored.stdout and live.version in restored.stdout
    # then the restored copy serves the same version, from its own folder, with the same predictions
    probe = manage(env, "shell", "-c", f"TEXTS = {TEXTS!r}\n{PROBE}")
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout.split("PROBE ", 1)[1])
    pk, version, artifact_path = result["active"]["intent"]
    assert (pk, version) == (live.pk, live.version)
    assert Path(artifact_path).is_relative_to(tmp_path / "restored" / "artifacts")
    assert result["predictions"] == expected
    assert result["uploads_intact"] is True
    assert "model.promote" in result["audit"]
    # and a second restore over the now populated install is refused
    again = manage(env, "restore", str(backup_dir))
    assert again.returncode != 0
    assert "refusing to overwrite" in again.stderr


def test_a_damaged_backup_is_refused_before_anything_changes(live, tmp_path):
    backup_dir = tmp_path / "backup"
    call_command("backup", str(backup_dir), stdout=StringIO())
    # a backup whose archive no longer holds the active version's manifest as recorded
    manifest_path = backup_dir / "backup.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["active_versions"][0]["manifest_sha256"] = hashlib.sha256(b"something else").hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match=f"manifests of active versions: {live.version}"):
        call_command("restore", str(backup_dir), "--force", stdout=StringIO())
    # a flipped byte in the archive
    archive = backup_dir / "artifacts.tar"
    data = bytearray(archive.read_bytes())
    data[600] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(CommandError, match="artifacts.tar does not match its checksum"):
        call_command("restore", str(backup_dir), "--force", stdout=StringIO())
    # nothing was touched: the live install still serves its version
    live.refresh_from_db()
    assert live.status == "active" and Path(live.artifact_path, "manifest.json").is_file()


def test_backup_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(CommandError, match="is not empty"):
        call_command("backup", str(tmp_path), stdout=StringIO())


def test_restore_refuses_a_folder_that_is_not_a_backup(tmp_path):
    with pytest.raises(CommandError, match="holds no backup.json"):
        call_command("restore", str(tmp_path), stdout=StringIO())
