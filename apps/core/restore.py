"""Restoring a backup made by ``apps.core.backup``: database, artifacts and uploads together.

Everything in the backup is checked before anything is touched (checksums, and that every
active version's artifact is in the archive with the manifest recorded at backup time);
the targets must be empty unless ``force``. Model versions store absolute artifact paths,
so when ARTIFACTS_DIR differs from the backed-up one those paths (and paths inside the
artifacts' manifests) are moved to the new folder. Last, the restored database is checked:
every active version's artifact exists and its manifest names that version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from apps.core.backup import (
    FORMAT,
    MANIFEST_FILE,
    BackupError,
    Log,
    is_empty,
    media_dir,
    pg_run,
    sha256_and_size,
    trellis_version,
)
from apps.mlops.models import ModelVersion
from ml.artifacts import MANIFEST, ArtifactError, read_manifest, sha256_file


class RestoreVerificationFailed(BackupError):
    """Everything was restored, but the restored install does not match the backup."""


@dataclass
class RestoreReport:
    active_versions: dict[str, str] = field(default_factory=dict)  # role -> version
    relocated: int = 0
    warnings: list[str] = field(default_factory=list)


def backup_read(source: Path) -> dict[str, Any]:
    """The manifest of a backup folder, after checking that every file in it is intact."""
    path = Path(source) / MANIFEST_FILE
    if not path.is_file():
        raise BackupError(f"{source} holds no {MANIFEST_FILE}: not a backup, or one that did not finish")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BackupError(f"{path} is not valid JSON: the backup is damaged ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BackupError(f"backup format {found!r} is not supported (expected {FORMAT})")
    for part in (manifest["database"], manifest["artifacts"], manifest.get("media")):
        if part is None:
            continue
        file = Path(source) / part["file"]
        if not file.is_file():
            raise BackupError(f"the backup lacks {part['file']}")
        if sha256_and_size(file) != (part["sha256"], part["size"]):
            raise BackupError(f"{part['file']} does not match its checksum: the backup is damaged")
    _check_archive_holds_active_artifacts(Path(source) / manifest["artifacts"]["file"], manifest)
    return manifest


def _check_archive_holds_active_artifacts(archive: Path, manifest: dict[str, Any]) -> None:
    """Every artifact the dumped database marks active is in the archive, manifest unchanged."""
    wanted = {f"{v['relative_path']}/{MANIFEST}": v for v in manifest["active_versions"] if v.get("manifest_sha256")}
    with tarfile.open(archive) as tar:
        for member in tar:
            entry = wanted.get(member.name)
            if entry is not None and member.isfile():
                data = tar.extractfile(member).read()  # a manifest: a few kB
                if hashlib.sha256(data).hexdigest() == entry["manifest_sha256"]:
                    wanted.pop(member.name)
    if wanted:
        versions = ", ".join(sorted(v["version"] for v in wanted.values()))
        raise BackupError(f"the artifact archive lacks (or has changed) the manifests of active versions: {versions}")


def _check_targets(alias: str, folders: list[Path], force: bool) -> None:
    connection = connections[alias]
    occupied = []
    tables = connection.introspection.table_names()
    if tables:
        occupied.append(f"the database {connection.settings_dict['NAME']} has {len(tables)} tables")
    occupied += [f"{folder} is not empty" for folder in folders if not is_empty(folder)]
    connection.close()
    if occupied and not force:
        raise BackupError("refusing to overwrite: " + "; ".join(occupied) +
                          ". Restore into an empty database and empty folders, or pass --force to replace them.")


def _restore_database(alias: str, dump: Path, vendor: str) -> None:
    connection = connections[alias]
    connection.close()
    if vendor == "postgresql":
        # An empty --dbname makes pg_restore connect (instead of printing SQL); libpq then
        # takes the database, like host, user and password, from the PG* variables.
        pg_run("pg_restore", ["--clean", "--if-exists", "--no-owner", "--exit-on-error", "--single-transaction",
                              "--dbname=", str(dump)], connection.settings_dict)
    else:
        target = Path(connection.settings_dict["NAME"])
        target.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(f"{dump.resolve().as_uri()}?mode=ro", uri=True)
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            source.close()
            copy.close()
    connection.close()


def _extract(archive: Path, folder: Path) -> None:
    """Replaces ``folder``'s contents with the archive's (the caller checked it may)."""
    folder.mkdir(parents=True, exist_ok=True)
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    try:
        with tarfile.open(archive) as tar:
            # The "data" filter refuses absolute paths, links out of the folder and special files.
            tar.extractall(folder, filter="data")  # noqa: S202 - filtered, from a checksummed backup
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"cannot unpack {archive.name} into {folder}: {exc}") from exc


def _relocate(alias: str, old_dir: Path, new_dir: Path) -> int:
    """Moves stored absolute paths from the backed-up ARTIFACTS_DIR to this one."""
    new = str(new_dir.absolute())
    olds = {str(old_dir), str(old_dir.resolve())} - {new, str(new_dir.resolve())}
    if not olds:
        return 0

    def moved(value: Any) -> Any:
        for old in olds:
            if isinstance(value, str) and (value == old or value.startswith(old + "/")):
                return new + value[len(old):]
        if isinstance(value, dict):
            return {k: moved(v) for k, v in value.items()}
        if isinstance(value, list):
            return [moved(v) for v in value]
        return value

    for path in new_dir.rglob(MANIFEST):
        data = json.loads(path.read_text(encoding="utf-8"))
        if moved(data) != data:  # written whole (not through Manifest), so no key is lost
            partial = path.with_name(f".{MANIFEST}.relocating")
            partial.write_text(json.dumps(moved(data), indent=2, sort_keys=True), encoding="utf-8")
            os.replace(partial, path)
    count = 0
    # values()/update() touch only these columns: they work on a database from an older
    # Trellis that still lacks later columns (the caller then says to migrate).
    for pk, path in ModelVersion.objects.using(alias).values_list("pk", "artifact_path"):
        if moved(path) != path:
            count += ModelVersion.objects.using(alias).filter(pk=pk).update(artifact_path=moved(path))
    return count


def _verify(alias: str, manifest: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    problems = []
    active = {}
    rows = ModelVersion.objects.using(alias).filter(status=ModelVersion.Status.ACTIVE)
    for role, version, path in rows.values_list("role", "version", "artifact_path"):
        active[role] = version
        try:
            found = read_manifest(Path(path))
        except ArtifactError as exc:
            problems.append(f"{version}: {exc}")
            continue
        if (found.version, found.role) != (version, role):
            problems.append(f"{version}: its folder holds {found.role} {found.version}")
    expected = {v["role"]: v["version"] for v in manifest["active_versions"]}
    if active != expected:
        problems.append(f"active versions {active} differ from the backup's {expected}")
    return active, problems


def backup_restore(source: Path, *, force: bool = False, alias: str = DEFAULT_DB_ALIAS,
                   log: Log = lambda line: None) -> RestoreReport:
    """Restores the backup in ``source`` into this install's database and folders.

    Raises:
        BackupError: the backup is damaged or of another database, or a target is not empty
            (and not ``force``); nothing was changed.
        RestoreVerificationFailed: restored, but an active version's artifact is missing or wrong.
    """
    source = Path(source)
    connection = connections[alias]
    manifest = backup_read(source)
    vendor = manifest["database"]["vendor"]
    if vendor != connection.vendor:
        raise BackupError(f"this is a backup of a {vendor} database; this install uses {connection.vendor}")
    report = RestoreReport(warnings=list(manifest.get("warnings", [])))
    if manifest["trellis_version"] != trellis_version():
        report.warnings.append(f"made by Trellis {manifest['trellis_version']}, restored by {trellis_version()}")
    artifacts_dir = Path(settings.ARTIFACTS_DIR)
    uploads = media_dir() if manifest.get("media") else None
    if manifest.get("media") and uploads is None:
        report.warnings.append("uploaded files are not restored: file storage here is not a local folder")
    _check_targets(alias, [artifacts_dir] + ([uploads] if uploads else []), force)

    log(f"database ({vendor}) ...")
    _restore_database(alias, source / manifest["database"]["file"], vendor)
    log(f"artifacts into {artifacts_dir} ...")
    _extract(source / manifest["artifacts"]["file"], artifacts_dir)
    if uploads is not None:
        log(f"uploaded files into {uploads} ...")
        _extract(source / manifest["media"]["file"], uploads)
    for entry in manifest["active_versions"]:
        extracted = artifacts_dir / str(entry["relative_path"]) / MANIFEST
        if entry.get("manifest_sha256") and sha256_file(extracted) != entry["manifest_sha256"]:
            raise RestoreVerificationFailed(f"{entry['version']}: the restored manifest differs from the backup's")
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        report.warnings.append("the restored database lacks migrations of this code: run `manage.py migrate`")
    report.relocated = _relocate(alias, Path(manifest["artifacts"]["source_dir"]), artifacts_dir)
    report.active_versions, problems = _verify(alias, manifest)
    if problems:
        raise RestoreVerificationFailed("restored, but: " + "; ".join(problems))
    return report
