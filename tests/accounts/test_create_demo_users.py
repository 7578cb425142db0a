"""`manage.py create_demo_users` and run_suite's demo users: only on a loopback host, never in
production, and an existing user's password is never reset."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import User
from apps.accounts.roles import Role, user_roles
from apps.accounts.services import demo_users_refusal, is_loopback_host

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("create_demo_users", *args, stdout=out)
    return out.getvalue()


def _non_admin_demo_user_holds_other_roles() -> bool:
    return any(user_roles(User.objects.get(username=r.value)) != {r.value} for r in Role if r != Role.ADMIN)


def test_creates_one_user_per_role_holding_that_role():
    output = _run()

    for role in Role:
        user = User.objects.get(username=role.value)
        assert role.value in user_roles(user)
        assert user.check_password("trellis-demo")
        assert f"{role.value} " in output and "created" in output
    assert not _non_admin_demo_user_holds_other_roles()


def test_an_existing_users_password_is_never_reset():
    _run()
    analyst = User.objects.get(username="analyst")
    analyst.set_password("changed-by-its-owner-789")
    analyst.save()
    ids = dict(User.objects.values_list("username", "id"))

    output = _run("--password", "another-pass-456")

    assert dict(User.objects.values_list("username", "id")) == ids
    assert User.objects.count() == len(Role)
    analyst.refresh_from_db()
    assert analyst.check_password("changed-by-its-owner-789")
    assert not analyst.check_password("another-pass-456") and not analyst.check_password("trellis-demo")
    assert output.count("exists, password unchanged") == len(Role)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "trellis.example.com"])  # noqa: S104 - the refused case
def test_refused_for_a_host_other_machines_can_reach(host):
    with pytest.raises(CommandError, match="loopback"):
        _run("--host", host)

    assert not User.objects.exists()


def test_refused_in_production(settings):
    settings.PRODUCTION = True

    with pytest.raises(CommandError, match="production"):
        _run("--host", "127.0.0.1")

    assert not User.objects.exists()


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("example.com", False),  # noqa: S104
])
def test_loopback_hosts(host, loopback):
    assert is_loopback_host(host) is loopback
    assert (demo_users_refusal(host) is None) is loopback


def test_run_suite_skips_demo_users_on_a_public_host_and_says_so(settings, monkeypatch):
    from apps.core.management.commands import run_suite

    class Started(Exception):
        """Stands in for the first server process: the demo stage is over by then."""

    def no_processes(*args, **kwargs):
        raise Started

    settings.TRELLIS_DEMO_COMMANDS = [["create_demo_users"]]
    monkeypatch.setattr(run_suite.subprocess, "Popen", no_processes)
    out = StringIO()

    with pytest.raises(Started):
        call_command("run_suite", "--host", "0.0.0.0", "--no-beat", stdout=out)  # noqa: S104 - the refused case

    assert "demo users skipped" in out.getvalue()
    assert "0.0.0.0" in out.getvalue()  # noqa: S104 - the refused address, named in the message
    assert not User.objects.exists()


def test_run_suite_creates_demo_users_on_loopback(settings, monkeypatch):
    from apps.core.management.commands import run_suite

    def no_processes(*args, **kwargs):
        raise RuntimeError("stop before starting processes")

    settings.TRELLIS_DEMO_COMMANDS = [["create_demo_users"]]
    monkeypatch.setattr(run_suite.subprocess, "Popen", no_processes)

    with pytest.raises(RuntimeError):
        call_command("run_suite", "--host", "127.0.0.1", "--no-beat", stdout=StringIO())

    assert set(User.objects.values_list("username", flat=True)) == {r.value for r in Role}
