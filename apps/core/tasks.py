from __future__ import annotations

import os

from celery import shared_task

from apps.core.services import ping_broadcast


@shared_task
def core_ping_task(text: str) -> dict[str, object]:
    """Proves a real worker runs: answers with its pid and relays ``text`` to ws/ping/."""
    ping_broadcast(text)
    return {"text": text, "pid": os.getpid()}
