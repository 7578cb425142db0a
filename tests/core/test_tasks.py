"""core_ping_task, run in this process (a real worker runs it in tests/servers/)."""

from __future__ import annotations

import os
import uuid

import pytest
from asgiref.sync import sync_to_async

from apps.core.tasks import core_ping_task
from tests.core.ws import TIMEOUT, receive_until, run, socket, ticket_for

pytestmark = pytest.mark.django_db


def test_apply_returns_text_and_pid():
    result = core_ping_task.apply(args=["hi"])

    assert result.successful()
    assert result.get() == {"text": "hi", "pid": os.getpid()}


def test_task_relays_its_text_to_ping_sockets(make_user):
    ticket = ticket_for(make_user("analyst"))
    text = f"from-task-{uuid.uuid4().hex}"

    async def scenario():
        comm = socket(ticket)
        assert (await comm.connect(timeout=TIMEOUT))[0]
        await comm.receive_json_from(timeout=TIMEOUT)  # hello

        result = await sync_to_async(lambda: core_ping_task.apply(args=[text]).get())()

        assert result["text"] == text
        frames = await receive_until(comm, lambda f: f.get("text") == text)
        assert frames[-1]["type"] == "broadcast"
        await comm.disconnect()

    run(scenario)
