import os

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.services import DEMO_PASSWORD, DemoUsersRefused, demo_users_ensure


class Command(BaseCommand):
    help = (
        "Creates one demo user per role (admin, agent, analyst, merchandiser) for a local try-out. "
        "Refused in production and for a suite listening on a non-loopback host; existing users "
        "keep their passwords."
    )

    def add_arguments(self, parser):
        parser.add_argument("--password", default=DEMO_PASSWORD, help="password for users created now")
        parser.add_argument(
            "--host",
            default=os.environ.get("TRELLIS_HOST", "127.0.0.1"),
            help="address the suite listens on (default: TRELLIS_HOST or 127.0.0.1); must be a loopback one",
        )

    def handle(self, *args, password: str, host: str, **options):
        try:
            logins = demo_users_ensure(host=host, password=password)
        except DemoUsersRefused as refused:
            raise CommandError(f"Demo users not created: {refused}") from refused
        for login in logins:
            if login.created:
                self.stdout.write(f"  {login.username:<13} / {password}   ({login.role}) created")
            else:
                self.stdout.write(f"  {login.username:<13} exists, password unchanged   ({login.role})")
