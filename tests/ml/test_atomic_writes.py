"""The one atomic writer of ``ml.artifacts``: files and folders appear whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml import artifacts
from ml.artifacts import atomic_replace_dir, atomic_write, atomic_write_bytes, atomic_write_json


def _fill(text: str):
    def write(folder: Path) -> None:
        (folder / "weights.bin").write_text(text)
        (folder / "sub").mkdir()
        (folder / "sub" / "part.txt").write_text(text)

    return write


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "rename-aside"])
def test_replacing_a_folder_swaps_in_the_new_one_and_deletes_the_old_after(tmp_path, monkeypatch, exchange):
    # given an existing folder, and (second case) a system without the one-step exchange
    target = tmp_path / "art"
    atomic_replace_dir(target, _fill("old"))
    if not exchange:
        monkeypatch.setattr(artifacts, "_exchange", lambda a, b: False)
    seen: list[bool] = []
    real_rmtree = artifacts.shutil.rmtree

    def rmtree_watching(path, *args, **kwargs):
        seen.append((target / "weights.bin").read_text() == "new")  # the old one goes only after
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(artifacts.shutil, "rmtree", rmtree_watching)

    # when it is replaced
    atomic_replace_dir(target, _fill("new"))

    # then the new content is in place, the old folder was deleted after that, nothing is left over
    assert (target / "sub" / "part.txt").read_text() == "new"
    assert seen == [True]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_a_failed_folder_write_leaves_the_old_folder_untouched(tmp_path):
    # given an existing folder
    target = tmp_path / "art"
    atomic_replace_dir(target, _fill("old"))

    def broken(folder: Path) -> None:
        (folder / "weights.bin").write_text("half")
        raise OSError("disk full")

    # when a replacement fails half-way
    with pytest.raises(OSError, match="disk full"):
        atomic_replace_dir(target, broken)

    # then the old folder is whole and no staging folder remains
    assert (target / "weights.bin").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_files_are_replaced_whole_and_a_failed_write_keeps_the_old_file(tmp_path):
    # given a JSON file written atomically
    target = tmp_path / "meta.json"
    atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}

    # when a later write fails half-way
    def broken(tmp: Path) -> None:
        tmp.write_text("{ half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)

    # then the old file is intact and no temporary file is left; bytes replace it whole
    assert json.loads(target.read_text()) == {"a": 1}
    atomic_write_bytes(target, b'{"b": 2}')
    assert json.loads(target.read_text()) == {"b": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]
