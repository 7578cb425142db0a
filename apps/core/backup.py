"""Backups of the database and the model artifacts, consistent with each other.

A backup is a folder::

    backup.json        what it holds (written last: its presence means the backup is complete)
    database.dump      PostgreSQL, ``pg_dump --format=custom``  (or database.sqlite3: SQLite's online backup)
    artifacts.tar      ARTIFACTS_DIR, taken after the database, without training checkpoints
    media.tar          uploaded files (datasets), when file storage is a local folder

The database goes first and the artifacts second: a training job writes its artifact before
the row that names it, so every artifact the dumped database references is already on disk
when the folder is archived. The active model versions are read in the dump's own snapshot
and listed in backup.json with the sha256 of each manifest, which ``restore`` checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.storage import FileSystemStorage, storages
from django.db import DEFAULT_DB_ALIAS, connections

from apps.mlops.models import ModelVersion
from ml.artifacts import MANIFEST, sha256_file

FORMAT = 1
MANIFEST_FILE = "backup.json"
DATABASE_FILES = {"postgresql": "database.dump", "sqlite": "database.sqlite3"}
ARTIFACTS_TAR = "artifacts.tar"
MEDIA_TAR = "media.tar"
# Checkpoints only matter to a job that is still running, and such a job makes the backup
# inconsistent anyway (stop the worker first); they can be gigabytes.
EXCLUDED_ARTIFACT_DIRS = ("checkpoints",)

Log = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore cannot go on; the message says why and what to do."""


@dataclass
class VersionEntry:
    """An active model version as the dumped database records it, and its artifact on disk."""

    id: int
    role: str
    version: str
    kind: str
    artifact_path: str
    relative_path: str | None = None  # inside ARTIFACTS_DIR; None when it lies elsewhere
    manifest_sha256: str | None = None
    files: dict[str, int] | None = None  # path inside the artifact -> size in bytes


def trellis_version() -> str:
    with open(Path(settings.BASE_DIR) / "pyproject.toml", "rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


def media_dir() -> Path | None:
    """The folder of uploaded files, or None when files live elsewhere (object storage)."""
    storage = storages["default"]
    return Path(storage.location) if isinstance(storage, FileSystemStorage) else None


def is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def sha256_and_size(path: Path) -> tuple[str, int]:
    return sha256_file(path), path.stat().st_size


# --- PostgreSQL client tools


def pg_env(settings_dict: dict[str, Any]) -> dict[str, str]:
    """The environment for pg_dump / pg_restore: connection settings as PG* variables, so
    that no password (nor anything else) shows in the process list."""
    env = dict(os.environ)
    for key, var in (("HOST", "PGHOST"), ("PORT", "PGPORT"), ("USER", "PGUSER"), ("PASSWORD", "PGPASSWORD"),
                     ("NAME", "PGDATABASE")):
        if settings_dict.get(key):
            env[var] = str(settings_dict[key])
    options = settings_dict.get("OPTIONS") or {}
    for key, var in (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT"), ("sslcert", "PGSSLCERT"),
                     ("sslkey", "PGSSLKEY"), ("connect_timeout", "PGCONNECT_TIMEOUT")):
        if options.get(key):
            env[var] = str(options[key])
    return env


def pg_run(tool: str, args: list[str], settings_dict: dict[str, Any]) -> None:
    binary = shutil.which(tool)
    if binary is None:
        raise BackupError(f"{tool} is not installed: install the PostgreSQL client tools "
                          "(the server's major version or newer)")
    # argv is fixed here plus paths and a snapshot id; connection settings go in the environment.
    result = subprocess.run([binary, *args], env=pg_env(settings_dict), capture_output=True,  # noqa: S603
                            text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{tool} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")


# --- the database and the versions it names, from one snapshot


def _active_versions_sql() -> str:
    table = ModelVersion._meta.db_table
    # Table name and status value are the model's own constants, not input.
    return (f"SELECT id, role, version, kind, artifact_path FROM {table} "  # noqa: S608  # nosec B608
            f"WHERE status = '{ModelVersion.Status.ACTIVE.value}' ORDER BY role")


def _dump_postgresql(alias: str, target: Path) -> list[VersionEntry]:
    """pg_dump inside an exported snapshot; the active versions are read in the same one."""
    connection = connections[alias]
    raw = connection.get_new_connection(connection.get_connection_params())
    try:
        raw.autocommit = True
        with raw.cursor() as cursor:
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = cursor.fetchone()[0]
            pg_run("pg_dump", ["--format=custom", f"--snapshot={snapshot}", f"--file={target}"],
                   connection.settings_dict)
            cursor.execute(_active_versions_sql())
            rows = cursor.fetchall()
            cursor.execute("COMMIT")
    finally:
        raw.close()
    return [VersionEntry(*row) for row in rows]


def _dump_sqlite(alias: str, target: Path) -> list[VersionEntry]:
    """SQLite's online backup API (a consistent copy while others write); versions read from the copy."""
    connection = connections[alias]
    connection.ensure_connection()
    copy = sqlite3.connect(target)
    try:
        connection.connection.backup(copy)
        rows = copy.execute(_active_versions_sql()).fetchall()
    finally:
        copy.close()
    return [VersionEntry(*row) for row in rows]


def _artifact_facts(entry: VersionEntry, artifacts_dir: Path, warnings: list[str]) -> None:
    path = Path(entry.artifact_path)
    try:
        entry.relative_path = path.resolve().relative_to(artifacts_dir.resolve()).as_posix()
    except ValueError:
        warnings.append(f"{entry.version}: artifact {path} lies outside ARTIFACTS_DIR and is not in the backup")
        return
    if not (path / MANIFEST).is_file():
        warnings.append(f"{entry.version}: artifact {path} has no {MANIFEST}; the database names a missing model")
        return
    entry.manifest_sha256 = sha256_file(path / MANIFEST)
    entry.files = {p.relative_to(path).as_posix(): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}
    weights = json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("extra", {}).get("weights_dir")
    if weights and not Path(weights).resolve().is_relative_to(artifacts_dir.resolve()):
        warnings.append(f"{entry.version}: its weights stay at {weights} (a registered folder); back them up too")


# --- archives


class _HashingWriter:
    """A write-only file that hashes what passes through (tar in stream mode needs only write)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)


def archive_folder(source: Path, target: Path, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """``source``'s contents as an uncompressed tar (weights barely compress), with its sha256."""
    with open(target, "wb") as raw:
        writer = _HashingWriter(raw)
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            if source.is_dir():
                for child in sorted(source.iterdir()):
                    if child.name not in exclude:
                        tar.add(child, arcname=child.name, recursive=True)
    # Unresolved, as the database stores artifact paths (built from settings.ARTIFACTS_DIR).
    return {"file": target.name, "sha256": writer.digest.hexdigest(), "size": writer.size,
            "source_dir": str(source.absolute()), "excluded": list(exclude)}


# --- the command's service


def backup_create(destination: Path, *, alias: str = DEFAULT_DB_ALIAS, log: Log = lambda line: None) -> dict[str, Any]:
    """Writes a backup into ``destination`` (created; it must be empty) and returns its manifest.

    Raises:
        BackupError: the folder is not empty, the database is not supported, or a tool failed.
    """
    connection = connections[alias]
    vendor = connection.vendor
    if vendor not in DATABASE_FILES:
        raise BackupError(f"backups support PostgreSQL and SQLite, not {vendor}")
    destination = Path(destination)
    if destination.exists() and not destination.is_dir():
        raise BackupError(f"{destination} is a file; back up into a new folder")
    if not is_empty(destination):
        raise BackupError(f"{destination} is not empty; back up into a new folder")
    destination.mkdir(parents=True, exist_ok=True)
    artifacts_dir = Path(settings.ARTIFACTS_DIR)
    created_at = datetime.now(UTC).isoformat()

    log(f"database ({vendor}) ...")
    db_file = destination / DATABASE_FILES[vendor]
    versions = _dump_postgresql(alias, db_file) if vendor == "postgresql" else _dump_sqlite(alias, db_file)
    db_sha, db_size = sha256_and_size(db_file)
    warnings: list[str] = []
    for entry in versions:
        _artifact_facts(entry, artifacts_dir, warnings)

    log(f"artifacts from {artifacts_dir} ...")
    artifacts = archive_folder(artifacts_dir, destination / ARTIFACTS_TAR, exclude=EXCLUDED_ARTIFACT_DIRS)
    media = None
    uploads = media_dir()
    if uploads is not None:
        log(f"uploaded files from {uploads} ...")
        media = archive_folder(uploads, destination / MEDIA_TAR)
    else:
        warnings.append("uploaded files are not in a local folder (object storage): back them up there")

    manifest = {
        "format": FORMAT,
        "created_at": created_at,
        "trellis_version": trellis_version(),
        "database": {"vendor": vendor, "file": db_file.name, "sha256": db_sha, "size": db_size},
        "artifacts": artifacts,
        "media": media,
        "active_versions": [asdict(entry) for entry in versions],
        "warnings": warnings,
    }
    partial = destination / f".{MANIFEST_FILE}.partial"
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(partial, destination / MANIFEST_FILE)
    return manifest
