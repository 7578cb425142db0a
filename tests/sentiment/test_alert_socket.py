"""ws/sentiment/live/ through the real ASGI stack (origin check, ticket auth, channel layer):
analysts only; a new alert and newly scored documents arrive live; the database poll brings
what another process fired (the in-memory layer does not cross processes)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from apps.sentiment import consumers
from apps.sentiment.models import Alert, AlertRule, Entity
from tests.core.ws import TIMEOUT, run, socket, ticket_for
from tests.sentiment.conftest import T0
from tests.sentiment.fixtures_alerts import BEARISH, deliver_inline, make_rule, score, texts

__all__ = ["deliver_inline", "make_rule", "score"]

pytestmark = pytest.mark.django_db(transaction=True)
PATH = "/ws/sentiment/live/"


def live_socket(ticket: str | None = None):
    return socket(ticket, path=PATH)


@pytest.mark.parametrize(("roles", "code"), [((), 4403), (("merchandiser",), 4403), (("agent",), 4403)])
def test_other_roles_are_refused(make_user, roles, code):
    ticket = ticket_for(make_user(*roles))

    async def scenario():
        assert await live_socket(ticket).connect(timeout=TIMEOUT) == (False, code)
        assert await live_socket().connect(timeout=TIMEOUT) == (False, 4401)  # nobody signed in

    run(scenario)


def test_an_alert_and_the_scored_documents_arrive_live(make_user, score, make_rule):
    rule = make_rule(condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3)
    ticket = ticket_for(make_user("analyst"))
    rows = texts(BEARISH, "AAPL", [T0, T0])

    async def scenario():
        comm = live_socket(ticket)
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert connected
        hello = await comm.receive_json_from(timeout=TIMEOUT)
        assert hello == {"type": "hello", "open_alerts": 0}

        # when bearish news about AAPL is scored (and the rule fires)
        await database_sync_to_async(score)(rows)

        # then the dashboard gets the documents and the alert, each once (the group event or
        # the poll may bring either first: the poll waits for the thread that scored them)
        frames: list[dict] = []
        while not (
            {"alert", "documents"} <= {f["type"] for f in frames}
            and len([d for f in frames if f["type"] == "documents" for d in f["documents"]]) >= 2
        ):
            frames.append(await comm.receive_json_from(timeout=TIMEOUT))
        [alert] = [f["alert"] for f in frames if f["type"] == "alert"]
        assert alert["rule"]["id"] == rule.pk and alert["entity"]["symbol"] == "AAPL"
        assert alert["message"].startswith("AAPL mean sentiment -0.70")
        documents = [d for f in frames if f["type"] == "documents" for d in f["documents"]]
        assert sorted(d["text"] for d in documents) == sorted(t for t, _ in rows)
        first = documents[0]
        assert first["label"] == "negative" and first["value"] == pytest.approx(-0.7)
        assert first["mentions"] == [{"symbol": "AAPL", "start": 0, "end": 5}]  # "$AAPL"
        await comm.send_json_to({"type": "ping"})
        assert (await comm.receive_json_from(timeout=TIMEOUT))["type"] == "pong"
        await comm.disconnect()

    run(scenario)


def test_an_alert_fired_elsewhere_arrives_through_the_poll(make_user, watchlist, monkeypatch):
    # given a socket whose layer never carries the event (another process fired the alert)
    monkeypatch.setattr(consumers, "POLL_IN_MEMORY_S", 0.1)
    monkeypatch.setattr(consumers, "POLL_SHARED_LAYER_S", 0.1)  # with REDIS_URL
    ticket = ticket_for(make_user("admin"))

    @database_sync_to_async
    def fire_elsewhere() -> int:
        rule = AlertRule.objects.create(
            name="r",
            entity=Entity.objects.get(symbol="MSFT"),
            threshold=-0.3,
            condition=AlertRule.Condition.LEVEL_BELOW,
        )
        return Alert.objects.create(
            rule=rule,
            entity=rule.entity,
            value=-0.5,
            threshold=-0.3,
            message="MSFT low",
            window_start=T0,
            window_end=T0,
        ).pk

    async def scenario():
        comm = live_socket(ticket)
        assert (await comm.connect(timeout=TIMEOUT))[0]
        await comm.receive_json_from(timeout=TIMEOUT)  # hello
        alert_id = await fire_elsewhere()
        frame = await comm.receive_json_from(timeout=TIMEOUT)
        assert frame["type"] == "alert" and frame["alert"]["id"] == alert_id
        assert frame["alert"]["message"] == "MSFT low"
        await comm.send_json_to({"type": "nonsense"})
        assert (await comm.receive_json_from(timeout=TIMEOUT))["code"] == "unknown_type"
        await comm.disconnect()

    run(scenario)
