"""What each pytest-xdist worker of `make test` starts with (tests/parallel.py)."""

from __future__ import annotations

import pytest

from tests.parallel import redis_url_for_worker, worker_env


def test_each_worker_gets_its_own_redis_database():
    assert redis_url_for_worker("redis://127.0.0.1:6379/0", 0) == "redis://127.0.0.1:6379/0"
    assert redis_url_for_worker("redis://127.0.0.1:6379/0", 1) == "redis://127.0.0.1:6379/1"
    assert redis_url_for_worker("redis://:pw@redis.internal:6380/9", 2) == "redis://:pw@redis.internal:6380/11"
    assert redis_url_for_worker("redis://127.0.0.1:6379", 1) == "redis://127.0.0.1:6379/1"  # no number: 0


def test_a_worker_past_the_last_redis_database_is_refused():
    with pytest.raises(ValueError, match="needs Redis database 16"):
        redis_url_for_worker("redis://127.0.0.1:6379/15", 1)


def test_workers_share_the_cores_unless_told_otherwise(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    env = worker_env(1, 2, {"REDIS_URL": "redis://127.0.0.1:6379/3"})
    assert env == {"TRELLIS_TORCH_THREADS": "2", "OMP_NUM_THREADS": "2", "REDIS_URL": "redis://127.0.0.1:6379/4"}
    # an explicit thread count wins, and without Redis there is nothing to split
    assert worker_env(0, 2, {"TRELLIS_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}) == {
        "TRELLIS_TORCH_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert worker_env(0, 4, {})["TRELLIS_TORCH_THREADS"] == "1"  # never 0
