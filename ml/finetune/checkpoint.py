"""Training checkpoints that survive a killed process: written atomically, resumable exactly.

A checkpoint directory holds ``meta.json`` (who wrote it: the run's key and data hash, and
a fingerprint of the run's arguments), ``state.pt`` (trainable weights, optimizer,
scheduler, RNG states, position in the run, history, best score) and ``best-e<N>.pt`` (the
weights of the best epoch so far, named in ``state.pt``). Each file is written to a
temporary name and renamed, so a crash leaves the previous complete checkpoint in place;
the best-weights file a state refers to is deleted only after a newer state no longer
refers to it.

Loading is safe by construction: ``meta.json`` is read first and a checkpoint of another
run (other key or data) is set aside unread; ``state.pt`` holds only tensors and plain
Python values (RNG states as lists and tensors, never numpy objects), so it is read with
``torch.load(weights_only=True)``, which cannot run code from the file.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.artifacts import atomic_write, atomic_write_json, set_aside

STATE = "state.pt"
META = "meta.json"
FORMAT = 2  # 1: state.pt pickled numpy RNG state and held the fingerprint (no meta.json)
log = logging.getLogger(__name__)


def _atomic_save(obj: Any, target: Path) -> None:
    atomic_write(target, lambda tmp: torch.save(obj, tmp))


def _unlink_quiet(path: str | Path) -> None:
    """Removes a file if it is there (cleanup of temporaries)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def trainable_state(model: torch.nn.Module, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Copies of the parameters that train (all for a full fine-tune, LoRA + head for LoRA).

    Args:
        model: the model.
        names: the parameters to copy; default those with ``requires_grad`` now (pass the
            run's trainable set while a phase has frozen some of them).
    """
    wanted = set(names) if names is not None else None
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()
            if (p.requires_grad if wanted is None else n in wanted)}


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Loads what ``trainable_state`` returned; every trainable parameter must be present."""
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    if missing:
        raise KeyError(f"checkpoint lacks {len(missing)} trainable tensors, e.g. {missing[0]}")
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor.to(params[name].device))


def capture_rng() -> dict[str, Any]:
    """The RNG states that dropout and shuffling draw from (python, numpy, torch, cuda).

    Python's and numpy's states are kept as plain lists and numbers, so the checkpoint
    loads with ``weights_only=True``.
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {"kind": str(kind), "keys": [int(k) for k in keys], "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    """Puts back what ``capture_rng`` returned."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    state = states["numpy"]
    np.random.set_state((state["kind"], np.asarray(state["keys"], dtype=np.uint32), state["pos"],
                         state["has_gauss"], state["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_best(directory: Path, epoch: int, weights: dict[str, torch.Tensor]) -> str:
    """Writes the best weights so far as ``best-e<epoch>.pt``; returns the file name."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"best-e{epoch}.pt"
    _atomic_save(weights, directory / name)
    return name


def load_best(directory: Path, name: str) -> dict[str, torch.Tensor]:
    """Reads a best-weights file written by ``save_best``."""
    return torch.load(directory / name, map_location="cpu", weights_only=True)


def save_state(directory: Path, state: dict[str, Any]) -> Path:
    """Writes ``state.pt`` atomically, then drops best-weights files it no longer names.

    Args:
        directory: the checkpoint directory (created if needed).
        state: tensors and plain Python values (read back with ``weights_only=True``); its
            ``best_file`` key names the live best-weights file.

    Returns:
        The path of ``state.pt``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / STATE
    _atomic_save(state, target)
    keep = state.get("best_file")
    for stale in directory.glob("best-e*.pt"):
        if stale.name != keep:
            _unlink_quiet(stale)
    return target


def load_state(directory: Path) -> dict[str, Any] | None:
    """The last complete ``state.pt`` of ``directory``, or None when there is none.

    Read with ``weights_only=True``: tensors and plain Python values only, so a planted or
    corrupted file raises instead of running code.

    Raises:
        pickle.UnpicklingError: the file holds anything else (e.g. an older-format state).
    """
    path = directory / STATE
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def _json_ready(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(value))


def write_meta(directory: Path, owner: dict[str, str], fingerprint: dict[str, Any]) -> Path:
    """Writes ``meta.json`` atomically: who the checkpoint belongs to and of which arguments."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / META
    atomic_write_json(target, {"format": FORMAT, "owner": owner, "fingerprint": fingerprint})
    return target


def read_meta(directory: Path) -> dict[str, Any] | None:
    """``meta.json`` of a checkpoint, or None when it is missing, unreadable or of another format."""
    try:
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("owner"), dict):
        return None
    return meta


def clear(directory: Path) -> None:
    """Deletes a checkpoint directory after its run finished."""
    shutil.rmtree(directory, ignore_errors=True)


def save_training(directory: Path, fingerprint: dict[str, Any], model: torch.nn.Module,
                  optimizer: torch.optim.Optimizer, scheduler: Any, run: dict[str, Any], *,
                  owner: dict[str, str] | None = None, scaler: Any = None,
                  names: list[str] | None = None) -> Path:
    """Checkpoints a training run: trainable weights, optimizer, scheduler, RNG, position.

    Args:
        directory: the checkpoint directory.
        fingerprint: the run's arguments (JSON-ready); a resume must present the same.
        model: the model being trained.
        optimizer: its optimizer.
        scheduler: its learning-rate scheduler.
        run: counters, history and best score (plain Python values).
        owner: who may resume it, e.g. ``{"job_key": ..., "data_hash": ...}``.
        scaler: the fp16 ``GradScaler`` of the run, if any (its scale is part of the state).
        names: the run's trainable parameters (see ``trainable_state``).

    Returns:
        The path of ``state.pt``.
    """
    write_meta(directory, owner or {}, fingerprint)  # constant during a run: safe to write first
    state = {"model": trainable_state(model, names), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "rng": capture_rng(), "run": run,
             "best_file": run.get("best_file")}
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    return save_state(directory, state)


def _restore(saved: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
             scaler: Any) -> dict[str, Any]:
    load_trainable_state(model, saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    if scaler is not None and "scaler" in saved:
        scaler.load_state_dict(saved["scaler"])
    restore_rng(saved["rng"])
    return saved["run"]


def load_run(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, *,
             scaler: Any = None) -> dict[str, Any] | None:
    """Loads a checkpoint another process already vetted (``resume_training``); the ``run`` dict."""
    saved = load_state(directory)
    return None if saved is None else _restore(saved, model, optimizer, scheduler, scaler)


def _refuse(directory: Path, why: str) -> None:
    moved = set_aside(directory)
    log.warning("checkpoint in %s %s; set aside as %s, training starts afresh", directory, why, moved.name)


def resume_training(directory: Path, fingerprint: dict[str, Any], model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: Any, *,
                    owner: dict[str, str] | None = None, scaler: Any = None) -> dict[str, Any] | None:
    """Restores the last checkpoint of the same run into model, optimizer and scheduler.

    A checkpoint of another owner (other run key or data hash), without a readable
    ``meta.json``, or whose ``state.pt`` does not load safely is set aside unread (renamed
    beside it, never deleted: it may be another deployment's); one of the same owner but
    other arguments is deleted.

    Returns:
        The saved ``run`` dict, or None when there was nothing to resume.
    """
    if not (directory / STATE).is_file():
        return None
    meta = read_meta(directory)
    if meta is None:
        _refuse(directory, "has no ownership record (another format, or not written by this code)")
        return None
    expected = _json_ready(owner or {})
    if meta["owner"] != expected:
        differ = sorted(k for k in set(expected) | set(meta["owner"]) if meta["owner"].get(k) != expected.get(k))
        _refuse(directory, f"belongs to another run ({', '.join(differ)} differ)")
        return None
    if meta.get("fingerprint") != _json_ready(fingerprint):
        log.warning("checkpoint in %s is from different arguments; starting afresh", directory)
        clear(directory)
        return None
    try:
        saved = load_state(directory)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        _refuse(directory, f"does not load safely ({type(exc).__name__})")
        return None
    if saved is None:
        return None
    return _restore(saved, model, optimizer, scheduler, scaler)
