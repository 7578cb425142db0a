"""``ws/mlops/jobs/<id>/``: the live progress of one training job.

On connect the caller gets the job's current snapshot, then every snapshot the training
service group-sends to ``mlops_job_<id>`` (``{"type": "mlops.job", "job": {...}}``) as
``{"type": "job", "job": {...}}``. The group is joined before the snapshot is read, so no
update between the two is lost.

The in-memory channel layer of the embedded default does not cross processes, so events
from a Celery worker never reach this server; the consumer then also reads the job row
every ``POLL_IN_MEMORY_S`` and sends what changed. With Redis the events arrive directly and
the slower poll is only a safety net.

A job that does not exist and one of a model role the caller may not see both close the
socket with 4404, as the API answers 404 for both: job ids cannot be probed. Admins also
get a failed job's traceback; everyone else its one-line error.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer

from apps.accounts.roles import user_roles
from apps.core.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, JsonConsumer
from apps.mlops.models import TrainingJob
from apps.mlops.permissions import can_see_traceback, can_view_role
from apps.mlops.selectors import job_snapshot
from apps.mlops.services.job_progress import job_group

CLOSE_NOT_FOUND = 4404
POLL_IN_MEMORY_S = 2.0  # seconds; the job row is written at most once a second while training
POLL_SHARED_LAYER_S = 15.0  # seconds; events arrive through Redis, this only repairs a lost one
FINISHED = {str(s) for s in TrainingJob.FINISHED}


@database_sync_to_async
def _access(user: Any, job_id: int) -> tuple[int | None, bool]:
    """(close code or None when the user may watch the job, whether they see tracebacks)."""
    if not user_roles(user):
        return CLOSE_FORBIDDEN, False  # no role at all: refused whatever the id (the API's 403)
    role = TrainingJob.objects.filter(pk=job_id).values_list("role", flat=True).first()
    if role is None or not can_view_role(user, role):
        return CLOSE_NOT_FOUND, False
    return None, can_see_traceback(user)


@database_sync_to_async
def _snapshot(job_id: int, with_traceback: bool) -> dict[str, Any] | None:
    job = TrainingJob.objects.select_related("model_version").filter(pk=job_id).first()
    return job_snapshot(job, with_traceback=with_traceback) if job else None


@database_sync_to_async
def _traceback(job_id: int) -> str:
    return TrainingJob.objects.filter(pk=job_id).values_list("traceback", flat=True).first() or ""


def _fingerprint(snapshot: dict[str, Any]) -> dict[str, Any]:
    # updated_at is left out: events built from an in-memory job carry a stale one.
    return {k: v for k, v in snapshot.items() if k != "updated_at"}


class TrainingJobConsumer(JsonConsumer):
    group: str | None = None
    _poller: asyncio.Task[None] | None = None
    _last_sent: dict[str, Any] | None = None
    with_traceback = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not (user and user.is_authenticated):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        refused, self.with_traceback = await _access(user, self.job_id)
        if refused is not None:
            await self.close(code=refused)
            return
        self.group = job_group(self.job_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        if await self.send_snapshot():
            interval = POLL_IN_MEMORY_S if isinstance(self.channel_layer, InMemoryChannelLayer) else POLL_SHARED_LAYER_S
            self._poller = asyncio.ensure_future(self._poll(interval))

    async def disconnect(self, code: int) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self.group and self.channel_layer is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _send_job(self, snapshot: dict[str, Any]) -> None:
        self._last_sent = _fingerprint(snapshot)
        await self.send_json({"type": "job", "job": snapshot})

    async def send_snapshot(self, *, only_if_changed: bool = False) -> bool:
        """Sends the job as stored now; False when it no longer exists (the socket is closed)."""
        snapshot = await _snapshot(self.job_id, self.with_traceback)
        if snapshot is None:
            await self.send_error("not_found", f"Job {self.job_id} no longer exists.")
            await self.close(code=CLOSE_NOT_FOUND)
            return False
        if not only_if_changed or _fingerprint(snapshot) != self._last_sent:
            await self._send_job(snapshot)
        return True

    async def _poll(self, interval: float) -> None:
        while self._last_sent is None or self._last_sent.get("status") not in FINISHED:
            await asyncio.sleep(interval)
            if not await self.send_snapshot(only_if_changed=True):
                return

    async def receive_message(self, content: dict[str, Any]) -> None:
        kind = content["type"]
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "snapshot":
            await self.send_snapshot()
        else:
            await self.send_error("unknown_type", f"Unknown message type {kind!r}; expected ping or snapshot.")

    async def mlops_job(self, event: dict[str, Any]) -> None:
        job = event["job"]
        if self.with_traceback:  # broadcasts carry none; only a failed job has one
            job = {**job, "traceback": await _traceback(self.job_id) if job.get("status") == "failed" else ""}
        await self._send_job(job)
