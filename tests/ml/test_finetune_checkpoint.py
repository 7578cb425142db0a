"""Checkpoints: exact resume, refusal of other runs' checkpoints, and safe loading.

A tiny linear model stands in for the encoder: what is tested is the checkpoint format,
not training.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.finetune import checkpoint as ckpt

OWNER = {"job_key": "6f1c1f0e-0000-4000-8000-000000000001", "data_hash": "a" * 64}
FINGERPRINT = {"method": "lora", "learning_rate": 0.001, "labels": ["a", "b"], "data_hash": "a" * 64}


def _run_parts(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    return model, optimizer, scheduler


def _train_steps(model, optimizer, scheduler, n: int) -> None:
    for _ in range(n):
        loss = model(torch.randn(3, 4)).sum()
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()


def _saved_run(directory: Path, owner: dict[str, str] = OWNER) -> dict[str, torch.Tensor]:
    """Trains 3 steps, checkpoints, and returns the weights at the checkpoint."""
    model, optimizer, scheduler = _run_parts()
    _train_steps(model, optimizer, scheduler, 3)
    run = {"epoch": 0, "batch": 3, "step": 3, "history": [{"epoch": 1, "dev": {"macro_f1": 0.5}}],
           "best_score": None, "best_file": None}
    ckpt.save_training(directory, FINGERPRINT, model, optimizer, scheduler, run, owner=owner)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_restores_weights_optimizer_scheduler_and_rng_exactly(tmp_path):
    # given a checkpoint after 3 steps, and what the run draws next from every RNG
    directory = tmp_path / "ckpt"
    weights = _saved_run(directory)
    expected_draws = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    # when a fresh process (other seeds, other weights) resumes it
    random.seed(99)
    np.random.seed(99)
    model, optimizer, scheduler = _run_parts(seed=7)
    run = ckpt.resume_training(directory, FINGERPRINT, model, optimizer, scheduler, owner=OWNER)
    # then everything is as it was when the checkpoint was written
    assert run is not None and run["step"] == 3
    assert run["history"] == [{"epoch": 1, "dev": {"macro_f1": 0.5}}]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, weights[name])
    assert scheduler.last_epoch == 3
    assert optimizer.state_dict()["state"][0]["step"] == 3
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected_draws


def test_the_checkpoint_records_its_owner_beside_the_state(tmp_path):
    _saved_run(tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / ckpt.META).read_text())
    assert meta["owner"] == OWNER
    assert meta["fingerprint"] == FINGERPRINT


@pytest.mark.parametrize(
    "other",
    [{**OWNER, "job_key": "another-job"}, {**OWNER, "data_hash": "b" * 64}],
    ids=["other-job-key", "other-data-hash"],
)
def test_a_checkpoint_of_another_owner_is_set_aside_unread(tmp_path, other):
    # given a checkpoint written by another job, or on other data
    directory = tmp_path / "job-x"
    _saved_run(directory, owner=other)
    model, optimizer, scheduler = _run_parts(seed=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # when this run looks for a checkpoint to resume
    run = ckpt.resume_training(directory, FINGERPRINT, model, optimizer, scheduler, owner=OWNER)
    # then there is nothing to resume, the model is untouched and the folder was moved aside,
    # not deleted (it may be another deployment's)
    assert run is None
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not directory.exists()
    (moved,) = tmp_path.glob("job-x.refused-*")
    assert json.loads((moved / ckpt.META).read_text())["owner"] == other


def test_a_checkpoint_without_an_ownership_record_is_set_aside(tmp_path):
    # given a state.pt with no meta.json (the older format, or a file someone put there)
    directory = tmp_path / "job-y"
    _saved_run(directory)
    (directory / ckpt.META).unlink()
    model, optimizer, scheduler = _run_parts()
    assert ckpt.resume_training(directory, FINGERPRINT, model, optimizer, scheduler, owner=OWNER) is None
    assert not directory.exists()
    assert len(list(tmp_path.glob("job-y.refused-*"))) == 1


def test_same_owner_with_other_arguments_starts_afresh(tmp_path):
    directory = tmp_path / "ckpt"
    _saved_run(directory)
    model, optimizer, scheduler = _run_parts()
    other_args = {**FINGERPRINT, "learning_rate": 0.1}
    assert ckpt.resume_training(directory, other_args, model, optimizer, scheduler, owner=OWNER) is None
    assert not directory.exists()


class _Planted:
    """Unpickling this would create ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_state_is_loaded_with_weights_only_so_a_planted_pickle_never_runs(tmp_path):
    # given a checkpoint of this very run whose state.pt was replaced by a pickle that runs code
    directory = tmp_path / "ckpt"
    _saved_run(directory)
    marker = tmp_path / "code-ran"
    torch.save({"model": _Planted(marker)}, directory / ckpt.STATE)
    # when it is loaded directly, the safe loader refuses it
    with pytest.raises(pickle.UnpicklingError):
        ckpt.load_state(directory)
    # and when a run resumes, it is set aside and the run starts afresh
    model, optimizer, scheduler = _run_parts()
    assert ckpt.resume_training(directory, FINGERPRINT, model, optimizer, scheduler, owner=OWNER) is None
    assert not marker.exists()
    assert len(list(tmp_path.glob("ckpt.refused-*"))) == 1


@pytest.mark.parametrize(("device", "dtype", "scaled"), [
    ("cuda", torch.float16, True),  # fp16 gradients underflow without a scaler
    ("cuda", torch.bfloat16, False),  # bf16 has fp32's range: no scaler
    ("cpu", None, False),  # CPU trains in fp32
])
def test_the_loop_scales_the_loss_exactly_when_it_autocasts_to_fp16(device, dtype, scaled):
    import warnings

    from ml.devices import DeviceInfo
    from ml.finetune.loop import _Precision

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GradScaler("cuda") warns (and disables itself) on a machine without CUDA
        precision = _Precision(DeviceInfo(device, dtype or torch.float32, dtype, 1))
    assert (precision.scaler is not None) == scaled
    assert precision.dtype == (dtype if device == "cuda" else None)
