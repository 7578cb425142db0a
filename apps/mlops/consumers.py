"""``ws/mlops/jobs/<id>/``: the live progress of one training job.

On connect the caller gets the job's current snapshot, then every snapshot the training
service group-sends to ``mlops_job_<id>`` (``{"type": "mlops.job", "job": {...}}``) as
``{"type": "job", "job": {...}}``. The group is joined before the snapshot is read, so no
update between the two is lost.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from apps.core.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, JsonConsumer
from apps.mlops.models import TrainingJob
from apps.mlops.permissions import can_view_role
from apps.mlops.selectors import job_snapshot
from apps.mlops.services.job_progress import job_group

CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def _job_role(job_id: int) -> str | None:
    return TrainingJob.objects.filter(pk=job_id).values_list("role", flat=True).first()


@database_sync_to_async
def _may_view(user: Any, role: str) -> bool:
    return can_view_role(user, role)


@database_sync_to_async
def _snapshot(job_id: int) -> dict[str, Any] | None:
    job = TrainingJob.objects.select_related("model_version").filter(pk=job_id).first()
    return job_snapshot(job) if job else None


class TrainingJobConsumer(JsonConsumer):
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not (user and user.is_authenticated):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        role = await _job_role(self.job_id)
        if role is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if not await _may_view(user, role):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = job_group(self.job_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_snapshot()

    async def disconnect(self, code: int) -> None:
        if self.group and self.channel_layer is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def send_snapshot(self) -> None:
        snapshot = await _snapshot(self.job_id)
        if snapshot is None:  # deleted while watched
            await self.send_error("not_found", f"Job {self.job_id} no longer exists.")
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.send_json({"type": "job", "job": snapshot})

    async def receive_message(self, content: dict[str, Any]) -> None:
        kind = content["type"]
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "snapshot":
            await self.send_snapshot()
        else:
            await self.send_error("unknown_type", f"Unknown message type {kind!r}; expected ping or snapshot.")

    async def mlops_job(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "job", "job": event["job"]})
