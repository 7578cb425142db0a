"""core_ping_task through a real Celery worker process, on the embedded broker and on Redis."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.servers.conftest import PYTHON, child_env, manage, needs_redis, shared_database_url

pytestmark = [pytest.mark.servers, pytest.mark.timeout(300)]

RESULT_TIMEOUT = 120  # seconds: the worker imports Django and torch before it takes the task


def worker_argv(node: str, queue: str | None = None) -> list[str]:
    argv = [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool",
        "solo",
        "-c",
        "1",
        "--loglevel",
        "INFO",
        "--hostname",
        node,
    ]
    return argv + (["--queues", queue] if queue else [])


def test_embedded_worker_runs_a_task_sent_from_another_process(start_process, embedded_var):
    env = child_env(embedded_var)
    node = f"embedded-{uuid.uuid4().hex[:8]}@test"
    worker = start_process("worker", worker_argv(node), env)
    sender = (
        "import json, os\n"
        "from apps.core.tasks import core_ping_task\n"
        "from django_celery_results.models import TaskResult\n"
        "r = core_ping_task.delay('through-the-filesystem-broker')\n"
        f"value = r.get(timeout={RESULT_TIMEOUT})\n"
        "print('RESULT=' + json.dumps({'value': value, 'sender_pid': os.getpid(),\n"
        "                              'worker': TaskResult.objects.get(task_id=r.id).worker}))\n"
    )

    result = manage(["shell", "-c", sender], env, timeout=RESULT_TIMEOUT + 60)

    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT=")), None)
    assert line, f"sender printed no result:\n{result.stdout}\n{result.stderr}\nworker:\n{worker.log_tail()}"
    payload = json.loads(line.removeprefix("RESULT="))
    assert payload["value"]["text"] == "through-the-filesystem-broker"
    assert payload["value"]["pid"] not in (payload["sender_pid"], os.getpid())
    assert payload["value"]["pid"] == worker.proc.pid  # solo pool: the worker process itself
    assert payload["worker"] == node  # the result row in SQLite was written by our worker
    # The broker's exchange tables live in the var dir, not in whatever directory the process started in.
    assert list((embedded_var / "broker" / "control").glob("*.exchange"))


@needs_redis
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_redis_worker_runs_a_task_sent_with_delay(start_process, tmp_path):
    from django_celery_results.models import TaskResult

    from apps.core.tasks import core_ping_task

    # A queue of our own, so that no other worker on this Redis takes the message.
    queue = f"platform-test-{uuid.uuid4().hex[:8]}"
    node = f"{queue}@test"
    env = {**child_env(tmp_path / "var"), "REDIS_URL": os.environ["REDIS_URL"], "DATABASE_URL": shared_database_url()}
    worker = start_process("worker", worker_argv(node, queue), env)

    async_result = core_ping_task.apply_async(args=["through-redis"], queue=queue)
    try:
        value = async_result.get(timeout=RESULT_TIMEOUT)
    except Exception as exc:  # show the worker's side of the story
        pytest.fail(f"{exc!r}\nworker log:\n{worker.log_tail()}")

    assert value["text"] == "through-redis"
    assert value["pid"] != os.getpid()
    assert value["pid"] == worker.proc.pid
    row = TaskResult.objects.get(task_id=async_result.id)
    assert (row.status, row.worker) == ("SUCCESS", node)
