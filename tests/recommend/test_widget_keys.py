"""Widget keys: the signing secret is shown once (creation, rotation), never listed; rotate and
revoke work and are audit-logged; the home page tile and the hourly fit on the beat schedule."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.recommend.models import WidgetKey
from apps.recommend.services.widget import user_signature, widget_key_create
from tests.recommend.factories import fitted_shop

pytestmark = pytest.mark.django_db

SHOP = "https://shop.example"


def _create(client: APIClient) -> dict:
    response = client.post("/api/recommend/widget-keys/", {"name": "shop", "allowed_origins": [SHOP]},
                           format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_the_secret_is_in_the_creation_answer_only_and_the_creation_is_audited(merch_client):
    created = _create(merch_client)
    listed = merch_client.get("/api/recommend/widget-keys/").json()

    assert len(created["signing_secret"]) == 64
    assert [row["public_key"] for row in listed] == [created["public_key"]]
    assert all("signing_secret" not in row for row in listed)
    assert created["signing_secret"] not in str(listed)
    event = AuditEvent.objects.get(action="widget_key.create")
    assert event.actor_username.startswith("merchandiser")
    assert event.target_id == str(created["id"]) and created["signing_secret"] not in event.summary


def test_rotating_shows_a_new_secret_once_and_old_signatures_stop_working(merch_client):
    fitted_shop()
    created = _create(merch_client)
    key = WidgetKey.objects.get(pk=created["id"])
    old_signature = user_signature(key, "c0")

    rotated = merch_client.post(f"/api/recommend/widget-keys/{key.pk}/rotate/").json()
    key.refresh_from_db()

    assert rotated["signing_secret"] == key.signing_secret != created["signing_secret"]
    assert old_signature != user_signature(key, "c0")
    assert AuditEvent.objects.filter(action="widget_key.rotate", target_id=str(key.pk)).count() == 1
    with_old = Client().get("/api/recommend/widget/recommendations/",
                            {"key": key.public_key, "user": "c0", "signature": old_signature, "session": "s9", "k": 3},
                            HTTP_ORIGIN=SHOP)
    assert with_old.status_code == 200  # served, but for the anonymous session, not for c0
    assert not WidgetKey.objects.filter(pk=key.pk, signing_secret=created["signing_secret"]).exists()


def test_revoking_refuses_the_widget_and_is_audited(merch_client):
    created = _create(merch_client)

    revoked = merch_client.post(f"/api/recommend/widget-keys/{created['id']}/revoke/")
    widget = Client().get("/api/recommend/widget/recommendations/", {"key": created["public_key"]},
                          HTTP_ORIGIN=SHOP)

    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert "signing_secret" not in revoked.json()
    assert widget.status_code == 403
    assert AuditEvent.objects.filter(action="widget_key.revoke", target_id=str(created["id"])).count() == 1
    assert merch_client.post("/api/recommend/widget-keys/999999/rotate/").status_code == 404


def test_the_page_shows_a_secret_right_after_creating_it_and_never_in_the_list(make_user):
    client = Client()
    client.force_login(make_user("merchandiser"))
    existing = widget_key_create(name="old", allowed_origins=[SHOP], user=None)

    created = client.post("/recommend/widget/", {"name": "new", "allowed_origins": SHOP})
    new_key = WidgetKey.objects.get(name="new")
    listing = client.get("/recommend/widget/").content.decode()
    rotated = client.post(f"/recommend/widget/{existing.pk}/rotate/").content.decode()
    existing.refresh_from_db()

    assert created.status_code == 201 and new_key.signing_secret in created.content.decode()
    assert existing.signing_secret not in created.content.decode()
    assert new_key.signing_secret not in listing and existing.public_key in listing
    assert existing.signing_secret in rotated and new_key.signing_secret not in rotated


@pytest.mark.parametrize(("roles", "shown"), [(["merchandiser"], True), (["admin"], True), (["analyst"], False),
                                               (["agent"], False), ([], False)])
def test_the_home_page_shows_the_recommend_tile_to_merchandisers_and_admins_only(make_user, roles, shown):
    client = Client()
    client.force_login(make_user(*roles))

    page = client.get("/").content.decode()

    assert ("<h2>Recommend</h2>" in page) is shown


def test_the_hourly_fit_on_the_beat_schedule_is_a_registered_task():
    from config.celery import app

    entry = app.conf.beat_schedule["recommend-fit"]
    app.loader.import_default_modules()

    assert entry["task"] in app.tasks and entry["schedule"] == 3600.0
