"""Training checkpoints that survive a killed process: written atomically, resumable exactly.

A checkpoint directory holds ``state.pt`` (trainable weights, optimizer, scheduler, RNG
states, position in the run, history, best score, a fingerprint of the run's arguments)
and ``best-e<N>.pt`` (the weights of the best epoch so far, named in ``state.pt``). Each
file is written to a temporary name and renamed, so a crash leaves the previous complete
checkpoint in place; the best-weights file a state refers to is deleted only after a newer
state no longer refers to it.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE = "state.pt"
log = logging.getLogger(__name__)


def _atomic_save(obj: Any, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        _unlink_quiet(tmp)
        raise


def _unlink_quiet(path: str | Path) -> None:
    """Removes a file if it is there (cleanup of temporaries)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the parameters that train (all for a full fine-tune, LoRA + head for LoRA)."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


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
    """The RNG states that dropout and shuffling draw from (python, numpy, torch, cuda)."""
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    """Puts back what ``capture_rng`` returned."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
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
        state: picklable dict; its ``best_file`` key names the live best-weights file.

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

    The file holds optimizer and RNG states (numpy arrays, python tuples), so it is read
    with ``weights_only=False``: only load checkpoints this process family wrote.
    """
    path = directory / STATE
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def clear(directory: Path) -> None:
    """Deletes a checkpoint directory after its run finished."""
    shutil.rmtree(directory, ignore_errors=True)


def save_training(directory: Path, fingerprint: dict[str, Any], model: torch.nn.Module,
                  optimizer: torch.optim.Optimizer, scheduler: Any, run: dict[str, Any]) -> Path:
    """Checkpoints a training run: trainable weights, optimizer, scheduler, RNG, position.

    Args:
        directory: the checkpoint directory.
        fingerprint: the run's arguments; a resume must present the same.
        model: the model being trained.
        optimizer: its optimizer.
        scheduler: its learning-rate scheduler.
        run: counters, history and best score (picklable).

    Returns:
        The path of ``state.pt``.
    """
    return save_state(directory, {
        "fingerprint": fingerprint, "model": trainable_state(model),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "rng": capture_rng(), "run": run, "best_file": run.get("best_file")})


def resume_training(directory: Path, fingerprint: dict[str, Any], model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any] | None:
    """Restores the last checkpoint of the same run into model, optimizer and scheduler.

    A checkpoint of other arguments (other data, labels, method...) is deleted instead.

    Returns:
        The saved ``run`` dict, or None when there was nothing to resume.
    """
    saved = load_state(directory)
    if saved is None:
        return None
    if saved.get("fingerprint") != fingerprint:
        log.warning("checkpoint in %s is from different arguments; starting afresh", directory)
        clear(directory)
        return None
    load_trainable_state(model, saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    restore_rng(saved["rng"])
    return saved["run"]
