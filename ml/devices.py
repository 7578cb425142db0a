"""Device, dtype and thread-cap choices, made once per process.

Every model in ``ml`` asks this module where to run instead of deciding on its own, so
that one environment variable moves the whole core between CPU and GPU.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import torch
from threadpoolctl import threadpool_limits


@dataclass(frozen=True)
class DeviceInfo:
    """Where models run and with which floating point type.

    Attributes:
        device: torch device string: ``cuda``, ``mps`` or ``cpu``.
        dtype: parameter dtype for inference (fp16/bf16 on GPU, fp32 on CPU).
        autocast_dtype: dtype for ``torch.autocast`` around inference, or None.
        threads: torch intra-op threads of this process (CPU work).
    """

    device: str
    dtype: torch.dtype
    autocast_dtype: torch.dtype | None
    threads: int

    @property
    def is_gpu(self) -> bool:
        return self.device != "cpu"


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


def configure_threads(threads: int | None = None) -> int:
    """Caps torch's (and the loaded BLAS libraries') CPU threads for this process.

    Two processes that each use every core collapse throughput 10-30x on a small machine,
    so each process takes ``TRELLIS_TORCH_THREADS`` (default: all cores) and the process
    manager (Celery worker, ASGI server) sets it so the sum stays within the cores.

    Args:
        threads: explicit cap; defaults to ``TRELLIS_TORCH_THREADS`` or the core count.

    Returns:
        The number of threads now in force.
    """
    n = threads or _env_int("TRELLIS_TORCH_THREADS", os.cpu_count() or 1)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")  # numpy's and scipy's OpenBLAS, already loaded
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel op
        torch.set_num_interop_threads(1)
    return n


@lru_cache(maxsize=1)
def current() -> DeviceInfo:
    """Chooses cuda > mps > cpu once per process (``TRELLIS_DEVICE`` overrides).

    bf16 autocast on CPU (``TRELLIS_CPU_BF16``: ``auto`` (default), ``1`` or ``0``) is on by
    default only where the CPU has AMX-BF16: there it is 1.6-1.9x faster for the encoder at
    the same macro-F1 (bench/bench_classify.py); without AMX it is slower than fp32.

    Returns:
        The process-wide DeviceInfo.
    """
    threads = configure_threads()
    wanted = os.environ.get("TRELLIS_DEVICE", "").lower()
    if wanted in {"cuda", "mps", "cpu"}:
        device = wanted
    elif torch.cuda.is_available():
        device = "cuda"
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        device = "mps"
    else:
        device = "cpu"
    if device == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        dtype = torch.bfloat16 if bf16 else torch.float16
        return DeviceInfo(device, dtype, dtype, threads)
    if device == "mps":
        return DeviceInfo(device, torch.float16, torch.float16, threads)
    wanted_bf16 = os.environ.get("TRELLIS_CPU_BF16", "auto").lower()
    cpu_bf16 = wanted_bf16 in {"1", "true", "yes"} or (wanted_bf16 == "auto" and cpu_has_amx_bf16())
    return DeviceInfo(device, torch.float32, torch.bfloat16 if cpu_bf16 else None, threads)


def cpu_has_amx_bf16() -> bool:
    """True where the CPU advertises AMX-BF16 tiles (Linux ``/proc/cpuinfo`` flags)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


@contextlib.contextmanager
def inference_context(info: DeviceInfo | None = None) -> Iterator[None]:
    """``torch.inference_mode`` plus autocast where the device profile asks for it."""
    info = info or current()
    with torch.inference_mode():
        if info.autocast_dtype is None:
            yield
        else:
            device_type = "cuda" if info.device == "cuda" else info.device
            with torch.autocast(device_type=device_type, dtype=info.autocast_dtype):
                yield
