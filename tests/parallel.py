"""What `make test` needs to run the suite on several pytest-xdist workers (``-n 2``).

Each worker is its own process with its own test database (pytest-django adds ``_gw0``,
``_gw1`` to the name), but three things would still be shared without this module:

- Redis: ``tests/conftest.py`` empties the cache before every test, and with ``REDIS_URL`` the
  cache is a Redis database (``FLUSHDB``), the same one that holds the channel layer's groups
  and the Celery queues. Groups are named after database ids (``job_1``), which both workers'
  databases hand out. So each worker gets a Redis database of its own: the configured number
  plus the worker's index.
- The cores: every worker (and every server a test starts) runs torch; threads per worker are
  the cores divided by the workers (``TRELLIS_TORCH_THREADS``, ``OMP_NUM_THREADS``) unless set.
- The chat LM's one-off GGUF -> safetensors conversion (~20 s) into the shared artifacts dir:
  done once by the controller before the workers start, so two workers never convert at once.

The settings module is read before any conftest, so the per-worker variables are handed to
each worker process when xdist starts it (``execnet``'s ``env:`` spec), not set in a conftest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDIS_DATABASES = 16  # Redis' default `databases` setting: numbers 0..15


def redis_url_for_worker(url: str, index: int) -> str:
    """``url`` with its database number moved ``index`` up (``redis://h:6379/0`` -> ``/1`` for 1)."""
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    if base + index >= REDIS_DATABASES:
        raise ValueError(
            f"REDIS_URL {url!r} with {index + 1} workers needs Redis database {base + index}; "
            f"Redis has {REDIS_DATABASES} (0..{REDIS_DATABASES - 1}): pick a lower number or fewer workers"
        )
    return urlunsplit(parts._replace(path=f"/{base + index}"))


def worker_env(index: int, workers: int, environ: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, str]:
    """The variables worker ``index`` (of ``workers``) starts with, on top of the controller's."""
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    env = {
        "TRELLIS_TORCH_THREADS": environ.get("TRELLIS_TORCH_THREADS") or threads,
        "OMP_NUM_THREADS": environ.get("OMP_NUM_THREADS") or threads,
    }
    if environ.get("REDIS_URL"):
        env["REDIS_URL"] = redis_url_for_worker(environ["REDIS_URL"], index)
    return env


def chat_lm_convert_once(repo: Path, timeout: float = 600) -> None:
    """Converts the bundled chat LM into the artifacts dir unless it is there already.

    In a child process: the controller itself never imports torch.
    """
    from ml.artifacts import ArtifactError, read_manifest
    from ml.defaults import artifacts_dir

    try:
        read_manifest(artifacts_dir() / "chat-lm" / "default")
        return
    except ArtifactError:
        pass
    subprocess.run(
        [sys.executable, "-c", "from ml.defaults import chat_lm_default; chat_lm_default()"],
        cwd=repo,
        check=True,
        timeout=timeout,
    )


def _db_order(item: Any) -> int:
    """pytest-django's run order for a test: 0 database, 1 transactional database, 2 neither."""
    marker = item.get_closest_marker("django_db")
    fixtures = getattr(item, "fixturenames", ())
    transactional = "transactional_db" in fixtures or bool(
        marker
        and (marker.kwargs.get("transaction") or marker.kwargs.get("reset_sequences") or marker.args[:1] == (True,))
    )
    if transactional:
        return 1
    return 0 if marker or "db" in fixtures else 2


def _shares_a_module_fixture(item: Any) -> bool:
    """Whether the test uses a module-scoped fixture of this project's tests (plugins' own
    class-scoped plumbing, such as pytest-django's, does not count)."""
    infos = getattr(item, "_fixtureinfo", None)
    return bool(infos) and any(
        defs and defs[-1].scope in MODULE_SCOPES and defs[-1].baseid for defs in infos.name2fixturedefs.values()
    )


MODULE_SCOPES = ("module", "class", "package")
# A module holding more than this share of the suite is spread over the workers anyway: on one
# worker it would hold up the run more than its fixture costs to set up twice (tests/core/
# test_access_matrix.py: ~1700 quick tests sharing two test clients).
MAX_GROUP_SHARE = 0.05


def xdist_groups(items: list[Any]) -> dict[str, list[Any]]:
    """The modules whose tests should run on one xdist worker: those sharing a module-scoped
    fixture (a trained model, a live server), so that it is set up once instead of once per
    worker. Only where the whole module runs in one stretch anyway (one kind of database use,
    browser or not): grouping must not change the order a worker runs tests in."""
    modules: dict[str, list[Any]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    return {
        path: group
        for path, group in modules.items()
        if len(group) <= MAX_GROUP_SHARE * len(items)
        and any(_shares_a_module_fixture(i) for i in group)
        and len({(_db_order(i), i.get_closest_marker("e2e") is not None) for i in group}) == 1
    }
