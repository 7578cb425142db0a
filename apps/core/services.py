from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings


def ping_broadcast(text: str) -> None:
    """Sends ``text`` to every socket on ``ws/ping/``, on every server of the channel layer."""
    async_to_sync(get_channel_layer().group_send)(
        "ping", {"type": "ping.broadcast", "text": text, "origin": settings.SERVER_NAME}
    )
