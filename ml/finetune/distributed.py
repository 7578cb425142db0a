"""Data-parallel training: one run as N processes with ``torch.distributed``.

The calling process is rank 0 (so its progress callback and cancel check keep working:
a Celery task's job row, a command's progress bar); ranks 1..N-1 are fresh interpreters
(``python -m ml.finetune.distributed SPEC.json``, so a daemonic Celery pool process may
start them) running the same trainer function with the same arguments. Each global batch of the
length-bucketed epoch order is split across the processes (``World.shard``; every process
computes the same batch order from the seed, as a ``DistributedSampler`` would), and
DistributedDataParallel averages the gradients, so steps, schedule, checkpoints and resume
are those of a single-process run. Only rank 0 writes checkpoints and the artifact. The
backend is NCCL with one GPU per process on a GPU machine, gloo on CPU.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import socket
import subprocess  # nosec B404  # starts this interpreter for the other ranks
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ml import devices

__all__ = ["DevicesUnavailable", "World", "check_devices", "run_data_parallel"]

log = logging.getLogger(__name__)
# A process that died leaves the others waiting in a collective; they give up after this.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


class DevicesUnavailable(ValueError):
    """A data-parallel run asks for more devices than this machine has."""


def check_devices(processes: int) -> str:
    """Says where ``processes`` data-parallel processes would run, or why they cannot.

    Args:
        processes: processes asked for.

    Returns:
        ``cuda`` (one GPU per process) or ``cpu``.

    Raises:
        DevicesUnavailable: fewer GPUs than processes on a GPU machine, or more processes
            than CPU cores on a CPU machine (each needs at least one core).
    """
    if processes < 1:
        raise DevicesUnavailable(f"processes must be at least 1, not {processes}")
    device = devices.current().device
    if device == "cuda":
        gpus = torch.cuda.device_count()
        if processes > gpus:
            raise DevicesUnavailable(f"{processes} data-parallel processes need {processes} GPUs; "
                                     f"this machine has {gpus}")
        return "cuda"
    if device == "mps" and processes > 1:
        raise DevicesUnavailable("data-parallel training needs CUDA GPUs or CPUs; this machine runs on MPS")
    cores = os.cpu_count() or 1
    if processes > cores:
        raise DevicesUnavailable(f"{processes} data-parallel processes need {processes} CPU cores; "
                                 f"this machine has {cores}")
    return "cpu"


@dataclass
class World:
    """This process's place in a data-parallel run."""

    rank: int
    size: int
    device: str

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` inside DistributedDataParallel (gradients averaged across processes)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [int(self.device.split(":")[1])] if self.device.startswith("cuda") else None
        # Unused parameters: the head-only phase freezes the encoder mid-run.
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def shard(self, batch: list[int]) -> list[int]:
        """This process's rows of a global batch (every row goes to exactly one process).

        A final batch smaller than the world repeats its first row on the processes it
        cannot feed, so every process takes part in each gradient average.
        """
        return batch[self.rank::self.size] or batch[:1]

    def broadcast_flag(self, flag: bool) -> bool:
        """True in every process when ``flag`` is True in any (rank 0 decides cancellation)."""
        value = torch.tensor([1.0 if flag else 0.0], device=self._comm_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def mean(self, value: float) -> float:
        """Mean of ``value`` over the processes."""
        tensor = torch.tensor([value], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.size

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` in every process (picklable, small)."""
        holder = [obj]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def barrier(self) -> None:
        dist.barrier()

    def _comm_device(self) -> str:
        return self.device if self.device.startswith("cuda") else "cpu"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _join(rank: int, size: int, port: int, kind: str) -> World:
    backend = "nccl" if kind == "cuda" else "gloo"
    device = "cpu"
    if kind == "cuda":
        torch.cuda.set_device(rank)
        device = f"cuda:{rank}"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size,
                            timeout=COLLECTIVE_TIMEOUT)
    return World(rank=rank, size=size, device=device)


def _ref(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _resolve(ref: str) -> Any:
    module, _, name = ref.partition(":")
    if not module.startswith("ml.finetune."):  # the spec file is ours; refuse anything else anyway
        raise ValueError(f"not a trainer of ml.finetune: {ref}")
    return getattr(importlib.import_module(module), name)


def _spawn(rank: int, size: int, port: int, kind: str, train: Callable[..., Any], args: Any, threads: int,
           folder: Path) -> subprocess.Popen[bytes]:
    """Starts rank ``rank`` as a fresh interpreter (works from daemon processes such as Celery's pool)."""
    spec = {"rank": rank, "size": size, "port": port, "kind": kind, "threads": threads, "train": _ref(train),
            "args_class": _ref(type(args)), "args": dataclasses.asdict(args)}
    path = folder / f"rank-{rank}.json"
    path.write_text(json.dumps(spec, default=str), encoding="utf-8")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "ml.finetune.distributed", str(path)]  # this interpreter, our own spec file
    return subprocess.Popen(command, cwd=root, env=env)  # noqa: S603


def worker_main(argv: list[str] | None = None) -> int:
    """Entry point of a spawned rank (1..N-1): ``python -m ml.finetune.distributed SPEC.json``."""
    spec = json.loads(Path((argv or sys.argv[1:])[0]).read_text(encoding="utf-8"))
    devices.configure_threads(int(spec["threads"]))
    args = _resolve(spec["args_class"])(**spec["args"])
    world = _join(int(spec["rank"]), int(spec["size"]), int(spec["port"]), spec["kind"])
    try:
        _resolve(spec["train"])(args, world=world)
    finally:
        dist.destroy_process_group()
    return 0


def run_data_parallel(train: Callable[..., Any], args: Any, *, progress: Any = None,
                      should_stop: Callable[[], bool] | None = None) -> Any:
    """Runs ``train(args, world=...)`` as ``args.processes`` processes; returns rank 0's result.

    Args:
        train: a module-level trainer function of ``ml.finetune`` (``train_classifier``, ...).
        args: its arguments, a dataclass of JSON-ready values (paths, numbers, rows).
        progress: rank 0's progress callback.
        should_stop: rank 0's cancel check (its answer is shared with every process).

    Raises:
        DevicesUnavailable: the machine lacks the devices (before any process starts).
        RuntimeError: a spawned process failed.
    """
    size = args.processes
    kind = check_devices(size)
    if dist.is_initialized():
        raise RuntimeError("a data-parallel run is already active in this process")
    # Each process gets its share of the cores (two thread teams on one core collapse throughput).
    threads = max(1, devices.configure_threads() // size) if kind == "cpu" else devices.configure_threads()
    port = _free_port()
    previous = torch.get_num_threads()
    world = None
    with tempfile.TemporaryDirectory(prefix="trellis-ddp-") as folder:
        children = [_spawn(rank, size, port, kind, train, args, threads, Path(folder)) for rank in range(1, size)]
        torch.set_num_threads(threads)
        try:
            world = _join(0, size, port, kind)
            result = train(args, progress=progress, should_stop=should_stop, world=world)
        except BaseException:
            for child in children:  # they would wait in a collective until the timeout
                child.terminate()
            raise
        finally:
            if world is not None:
                dist.destroy_process_group()
            torch.set_num_threads(previous)
            codes = [child.wait(timeout=120) for child in children]
    failed = [code for code in codes if code != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} data-parallel process(es) failed (exit codes {failed})")
    return result


if __name__ == "__main__":
    sys.exit(worker_main())
