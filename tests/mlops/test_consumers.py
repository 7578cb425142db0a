"""ws/mlops/jobs/<id>/ through the real ASGI stack (origin check, ticket auth, channel layer)."""

from __future__ import annotations

import pytest
from channels.layers import get_channel_layer

from apps.mlops.models import TrainingJob
from apps.mlops.selectors import job_snapshot
from apps.mlops.services.job_progress import job_broadcast, job_group
from tests.core.ws import TIMEOUT, receive_until, run, socket, ticket_for
from tests.mlops.factories import TrainingJobFactory, UserFactory, media_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    media_in(settings, tmp_path)


@pytest.fixture
def job():
    return TrainingJobFactory(dataset__role="sentiment", status=TrainingJob.Status.RUNNING, step=3, total_steps=10)


def ticket_of(*roles: str) -> str:
    return ticket_for(UserFactory(roles=list(roles)))


def job_socket(job_id: int, ticket: str | None = None):
    return socket(ticket, path=f"/ws/mlops/jobs/{job_id}/")


def test_anonymous_is_closed_with_4401(job):
    async def scenario():
        # given nobody signed in, when they open the job's socket, then it is refused
        assert await job_socket(job.pk).connect(timeout=TIMEOUT) == (False, 4401)

    run(scenario)


def test_job_of_a_role_the_user_may_not_see_reads_as_missing_4404(job):
    # given an agent (agents see intent and chat models, not sentiment); tickets are single-use
    agent = UserFactory(roles=["agent"])
    tickets = [ticket_for(agent), ticket_for(agent)]

    async def scenario():
        # when they open the sentiment job's socket and one of a job that does not exist
        forbidden = await job_socket(job.pk, tickets[0]).connect(timeout=TIMEOUT)
        missing = await job_socket(999_999, tickets[1]).connect(timeout=TIMEOUT)
        # then both close the same way (as the API's 404): ids cannot be probed
        assert forbidden == missing == (False, 4404)

    run(scenario)


def test_user_without_any_role_is_closed_with_4403_whatever_the_id(job):
    nobody = UserFactory()
    tickets = [ticket_for(nobody), ticket_for(nobody)]

    async def scenario():
        assert await job_socket(job.pk, tickets[0]).connect(timeout=TIMEOUT) == (False, 4403)
        assert await job_socket(999_999, tickets[1]).connect(timeout=TIMEOUT) == (False, 4403)

    run(scenario)


def test_traceback_of_a_failed_job_reaches_admins_only(job):
    from channels.db import database_sync_to_async

    TrainingJob.objects.filter(pk=job.pk).update(
        status=TrainingJob.Status.FAILED, error="OSError: cannot read '<path>'",
        traceback="Traceback (most recent call last):\nOSError: cannot read '/srv/secret.csv'")
    job.refresh_from_db()
    analyst, admin = ticket_of("analyst"), ticket_of("admin")

    async def scenario():
        # given an analyst and an admin watching the failed job
        watcher = job_socket(job.pk, analyst)
        assert (await watcher.connect(timeout=TIMEOUT))[0]
        seen_by_analyst = (await watcher.receive_json_from(timeout=TIMEOUT))["job"]
        boss = job_socket(job.pk, admin)
        assert (await boss.connect(timeout=TIMEOUT))[0]
        seen_by_admin = (await boss.receive_json_from(timeout=TIMEOUT))["job"]
        # then the snapshot carries the one-line error for both, the traceback for the admin only
        assert seen_by_analyst["error"] == seen_by_admin["error"] == "OSError: cannot read '<path>'"
        assert "traceback" not in seen_by_analyst
        assert "/srv/secret.csv" in seen_by_admin["traceback"]
        # and so does a broadcast of the job (it carries none itself)
        await database_sync_to_async(job_broadcast)(job)
        relayed_to_analyst = (await watcher.receive_json_from(timeout=TIMEOUT))["job"]
        relayed_to_admin = (await boss.receive_json_from(timeout=TIMEOUT))["job"]
        assert "traceback" not in relayed_to_analyst
        assert "/srv/secret.csv" in relayed_to_admin["traceback"]
        await watcher.disconnect()
        await boss.disconnect()

    run(scenario)


def test_unknown_job_is_closed_with_4404():
    ticket = ticket_of("analyst")

    async def scenario():
        assert await job_socket(999_999, ticket).connect(timeout=TIMEOUT) == (False, 4404)

    run(scenario)


def test_owner_gets_the_snapshot_then_the_group_events(job):
    # given an analyst watching a running sentiment job
    ticket = ticket_of("analyst")
    expected = job_snapshot(job)
    job.step, job.progress = 7, 0.7
    later = {**job_snapshot(job), "step": 7}

    async def scenario():
        comm = job_socket(job.pk, ticket)
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert connected
        # then the current snapshot arrives at once
        first = await comm.receive_json_from(timeout=TIMEOUT)
        assert first == {"type": "job", "job": expected}
        # when the training service reports progress to the job's group
        await get_channel_layer().group_send(job_group(job.pk), {"type": "mlops.job", "job": later})
        # then the watcher receives it
        assert await comm.receive_json_from(timeout=TIMEOUT) == {"type": "job", "job": later}
        await comm.disconnect()

    run(scenario)


def test_job_broadcast_from_sync_code_reaches_the_socket(job):
    # given an admin watching the job (admins see every role)
    ticket = ticket_of("admin")

    async def scenario():
        from channels.db import database_sync_to_async

        comm = job_socket(job.pk, ticket)
        assert (await comm.connect(timeout=TIMEOUT))[0]
        await comm.receive_json_from(timeout=TIMEOUT)  # the snapshot
        # when the service's own broadcast helper runs (as it does from a Celery worker)
        job.status = TrainingJob.Status.SUCCEEDED
        await database_sync_to_async(job_broadcast)(job)
        # then the new status arrives
        frames = await receive_until(comm, lambda f: f.get("job", {}).get("status") == "succeeded")
        assert frames[-1]["job"]["id"] == job.pk
        await comm.disconnect()

    run(scenario)


def test_non_json_frame_gets_an_error_and_the_socket_stays_open(job):
    ticket = ticket_of("analyst")

    async def scenario():
        comm = job_socket(job.pk, ticket)
        assert (await comm.connect(timeout=TIMEOUT))[0]
        await comm.receive_json_from(timeout=TIMEOUT)  # the snapshot
        # when a frame is not JSON
        await comm.send_to(text_data="not json at all")
        # then an error frame comes back
        error = await comm.receive_json_from(timeout=TIMEOUT)
        assert (error["type"], error["code"]) == ("error", "invalid_json")
        # and the socket still answers
        await comm.send_json_to({"type": "ping"})
        assert await comm.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}
        await comm.send_json_to({"type": "dance"})
        assert (await comm.receive_json_from(timeout=TIMEOUT))["code"] == "unknown_type"
        await comm.disconnect()

    run(scenario)


def test_snapshot_on_request(job):
    ticket = ticket_of("analyst")

    async def scenario():
        comm = job_socket(job.pk, ticket)
        assert (await comm.connect(timeout=TIMEOUT))[0]
        await comm.receive_json_from(timeout=TIMEOUT)
        await comm.send_json_to({"type": "snapshot"})
        frame = await comm.receive_json_from(timeout=TIMEOUT)
        assert (frame["type"], frame["job"]["id"], frame["job"]["step"]) == ("job", job.pk, 3)
        await comm.disconnect()

    run(scenario)


def test_changes_written_by_another_process_arrive_by_polling(job, monkeypatch):
    # given a watcher, and progress written to the row by a worker whose events cannot reach
    # this server (the in-memory channel layer does not cross processes)
    monkeypatch.setattr("apps.mlops.consumers.POLL_IN_MEMORY_S", 0.05)
    monkeypatch.setattr("apps.mlops.consumers.POLL_SHARED_LAYER_S", 0.05)  # CI runs on Redis
    ticket = ticket_of("analyst")

    async def scenario():
        from channels.db import database_sync_to_async

        comm = job_socket(job.pk, ticket)
        assert (await comm.connect(timeout=TIMEOUT))[0]
        assert (await comm.receive_json_from(timeout=TIMEOUT))["job"]["step"] == 3
        # when the row changes without any event
        await database_sync_to_async(TrainingJob.objects.filter(pk=job.pk).update)(step=8, status="succeeded")
        # then the watcher gets the new state, once
        frame = await comm.receive_json_from(timeout=TIMEOUT)
        assert (frame["job"]["step"], frame["job"]["status"]) == (8, "succeeded")
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    run(scenario)
