"""The audit log itself: recording, append-only in Python and (PostgreSQL) in the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import RequestFactory
from django.utils import timezone

from apps.audit.models import AuditEvent, AuditLogImmutable
from apps.audit.selectors import audit_event_list
from apps.audit.services import audit_record, client_ip, command_origin
from tests.mlops.factories import DatasetFactory

pytestmark = pytest.mark.django_db


def request_from(remote: str = "203.0.113.9", forwarded: str | None = None, agent: str = "pytest-agent/1.0"):
    extra = {"REMOTE_ADDR": remote, "HTTP_USER_AGENT": agent}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().post("/api/x/", **extra)


def test_record_keeps_actor_target_request_and_details(make_user):
    admin = make_user("admin", username="alice")
    dataset = DatasetFactory()
    request = request_from(agent="x" * 1000)
    # when a change is recorded
    event = audit_record(actor=admin, action="data.export", target=dataset, summary="exported 2 rows",
                         details={"rows": 2, "at": timezone.now()}, request=request)
    # then everything is stored, the target as label + pk and the user agent truncated
    event = AuditEvent.objects.get(pk=event.pk)
    assert (event.actor, event.actor_username, event.action) == (admin, "alice", "data.export")
    assert (event.target_type, event.target_id) == ("mlops.dataset", str(dataset.pk))
    assert event.summary == "exported 2 rows"
    assert event.details["rows"] == 2 and isinstance(event.details["at"], str)
    assert event.ip_address == "203.0.113.9"
    assert event.user_agent == "x" * 300


def test_request_user_stands_in_for_a_missing_actor_and_anonymous_is_none(make_user):
    request = request_from()
    request.user = make_user("admin", username="bob")
    assert audit_record(actor=None, action="token.rotate", request=request).actor_username == "bob"

    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    event = audit_record(actor=None, action="token.revoke", target=("accounts.user", 7), request=request)
    assert event.actor is None and event.actor_username == ""
    assert (event.target_type, event.target_id) == ("accounts.user", "7")


@pytest.mark.parametrize("action", ["", "promote", "Model.Promote", "model promote", "model."])
def test_malformed_actions_are_refused(action):
    with pytest.raises(ValueError, match="object.verb"):
        audit_record(actor=None, action=action)
    assert AuditEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "198.51.100.1", "203.0.113.9"),  # no proxy: the header is the client's claim, ignored
        (1, "198.51.100.1", "198.51.100.1"),
        (1, "10.0.0.1, 198.51.100.1", "198.51.100.1"),  # the left entry was made up by the client
        (2, "198.51.100.7, 10.0.0.2", "198.51.100.7"),
        (3, "198.51.100.7", "198.51.100.7"),  # fewer hops than proxies: the leftmost
        (1, "not-an-ip", None),
        (1, None, "203.0.113.9"),
    ],
)
def test_client_ip_follows_the_num_proxies_rule(settings, proxies, forwarded, expected):
    settings.TRELLIS_NUM_PROXIES = proxies
    assert client_ip(request_from(forwarded=forwarded)) == expected


def test_command_origin_names_the_os_user(monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "ops-carol")
    assert command_origin("promote").startswith("manage.py promote by OS user ops-carol on ")


def test_events_cannot_be_changed_or_deleted_through_django(make_user):
    event = audit_record(actor=make_user("admin"), action="model.promote", summary="original")
    # save() of an existing row, delete(), and queryset update/delete are all refused
    event.summary = "rewritten"
    with pytest.raises(AuditLogImmutable):
        event.save()
    with pytest.raises(AuditLogImmutable):
        event.delete()
    with pytest.raises(AuditLogImmutable):
        AuditEvent.objects.filter(pk=event.pk).update(summary="rewritten")
    with pytest.raises(AuditLogImmutable):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).summary == "original"


def test_deleting_the_actor_keeps_the_event_and_its_username(make_user):
    admin = make_user("admin", username="dora")
    event = audit_record(actor=admin, action="model.rollback")
    admin.delete()
    event = AuditEvent.objects.get(pk=event.pk)
    assert event.actor is None and event.actor_username == "dora"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the append-only trigger exists on PostgreSQL only")
def test_database_trigger_rejects_raw_update_and_delete(make_user):
    event = audit_record(actor=make_user("admin"), action="model.promote", summary="original")
    table = AuditEvent._meta.db_table
    # when a client bypasses Django with raw SQL
    for sql in (f"UPDATE {table} SET summary = 'rewritten' WHERE id = %s",  # noqa: S608 - fixed table name
                f"UPDATE {table} SET actor_id = NULL, summary = '' WHERE id = %s",  # noqa: S608
                f"DELETE FROM {table} WHERE id = %s"):  # noqa: S608
        # then PostgreSQL refuses it
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).summary == "original"


def test_selector_filters_by_action_actor_target_and_dates(make_user):
    alice, bob = make_user("admin", username="alice"), make_user("admin", username="bob")
    dataset = DatasetFactory()
    promote = audit_record(actor=alice, action="model.promote", target=("mlops.modelversion", 1))
    export = audit_record(actor=bob, action="data.export", target=dataset)
    old = audit_record(actor=alice, action="data.export", target=dataset)
    # rows cannot be backdated, so one is created in the past
    past = AuditEvent.objects.create(action="data.export", actor_username="alice",
                                     created_at=timezone.now() - timedelta(days=10))

    def ids(**filters):
        return {e.pk for e in audit_event_list(**filters)}

    assert ids(action="data.export") == {export.pk, old.pk, past.pk}
    assert ids(actor="ALICE") == {promote.pk, old.pk, past.pk}
    assert ids(target_type="mlops.dataset", target_id=str(dataset.pk)) == {export.pk, old.pk}
    assert ids(since=timezone.now() - timedelta(days=1)) == {promote.pk, export.pk, old.pk}
    assert ids(until=timezone.now() - timedelta(days=1)) == {past.pk}
    # newest first
    assert list(audit_event_list())[0].pk == old.pk
