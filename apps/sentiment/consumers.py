"""``ws/sentiment/live/``: new alerts and newly scored documents, live, for analysts.

Analysts and admins only (close 4401 when not signed in, 4403 for other roles), signed in by
the session cookie or a single-use ticket (``apps.accounts.ws_auth``). On connect the socket
joins the ``sentiment.alerts`` and ``sentiment.live`` groups and says hello with the number of
open alerts; then

- ``{"type": "alert", "alert": {...}}`` for every new alert (``delivery.alert_payload``),
- ``{"type": "documents", "documents": [{...}, ...]}`` for newly scored documents
  (``feed_live.document_card``), newest first,
- ``{"type": "pong"}`` answers ``{"type": "ping"}``.

The in-memory channel layer of the embedded default does not cross processes, so alerts
fired by the Celery worker never reach this server through it; the consumer then also reads
the newest alert and score ids every ``POLL_IN_MEMORY_S`` and sends what is new. With Redis
the group events arrive directly and the slower poll only repairs a lost one. Each alert and
document is sent once per socket, whichever path brings it first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer

from apps.accounts.roles import Role
from apps.core.consumers import JsonConsumer
from apps.sentiment.models import Alert, Score
from apps.sentiment.services.delivery import ALERTS_GROUP, alert_payload
from apps.sentiment.services.feed_live import LIVE_GROUP, PUSH_SIZE, cards_for

POLL_IN_MEMORY_S = 2.0  # seconds; what the worker fired reaches the dashboard within this
POLL_SHARED_LAYER_S = 15.0  # seconds; Redis delivers events, this only repairs a lost one
SENT_MEMORY = 500  # ids remembered per socket to send each alert and document once


@database_sync_to_async
def _marks() -> tuple[int, int, int]:
    """(newest alert id, newest live score id, open alerts)."""
    alert = Alert.objects.order_by("-id").values_list("id", flat=True).first() or 0
    score = Score.objects.filter(live=True).order_by("-id").values_list("id", flat=True).first() or 0
    return alert, score, Alert.objects.filter(status=Alert.Status.OPEN).count()


@database_sync_to_async
def _new_since(alert_mark: int, score_mark: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]:
    alerts = list(
        Alert.objects.filter(pk__gt=alert_mark).select_related("rule__watchlist", "entity").order_by("id")[:50]
    )
    scores = list(
        Score.objects.filter(live=True, pk__gt=score_mark)
        .order_by("-id")
        .values_list("id", "document_id")[: PUSH_SIZE * 5]
    )
    cards = cards_for([doc for _, doc in scores]) if scores else []
    return (
        [alert_payload(a) for a in alerts],
        cards,
        max([a.pk for a in alerts], default=alert_mark),
        max([s for s, _ in scores], default=score_mark),
    )


class SentimentLiveConsumer(JsonConsumer):
    roles = (Role.ANALYST,)
    _poller: asyncio.Task[None] | None = None

    async def on_connected(self) -> None:
        self.sent_alerts: deque[int] = deque(maxlen=SENT_MEMORY)
        self.sent_documents: deque[int] = deque(maxlen=SENT_MEMORY)
        for group in (ALERTS_GROUP, LIVE_GROUP):
            await self.channel_layer.group_add(group, self.channel_name)
        self.alert_mark, self.score_mark, open_alerts = await _marks()
        await self.send_json({"type": "hello", "open_alerts": open_alerts})
        interval = POLL_IN_MEMORY_S if isinstance(self.channel_layer, InMemoryChannelLayer) else POLL_SHARED_LAYER_S
        self._poller = asyncio.ensure_future(self._poll(interval))

    async def disconnect(self, code: int) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self.channel_layer is not None:
            for group in (ALERTS_GROUP, LIVE_GROUP):
                await self.channel_layer.group_discard(group, self.channel_name)

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            alerts, cards, self.alert_mark, self.score_mark = await _new_since(self.alert_mark, self.score_mark)
            await self._send_documents(cards)  # the news first, then the alerts it raised
            for alert in alerts:
                await self._send_alert(alert)

    async def _send_alert(self, alert: dict[str, Any]) -> None:
        if alert["id"] in self.sent_alerts:
            return
        self.sent_alerts.append(alert["id"])
        await self.send_json({"type": "alert", "alert": alert})

    async def _send_documents(self, cards: list[dict[str, Any]]) -> None:
        fresh = [c for c in cards if c["id"] not in self.sent_documents]
        if fresh:
            self.sent_documents.extend(c["id"] for c in fresh)
            await self.send_json({"type": "documents", "documents": fresh})

    async def receive_message(self, content: dict[str, Any]) -> None:
        if content["type"] == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_error("unknown_type", f"Unknown message type {content['type']!r}; expected ping.")

    async def sentiment_alert(self, event: dict[str, Any]) -> None:
        """``sentiment.alert`` from ``delivery._send_socket``."""
        await self._send_alert(event["alert"])

    async def sentiment_documents(self, event: dict[str, Any]) -> None:
        """``sentiment.documents`` from ``feed_live.live_documents_publish``."""
        await self._send_documents(event["documents"])
