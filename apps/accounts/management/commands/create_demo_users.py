from django.core.management.base import BaseCommand

from apps.accounts.services import demo_users_ensure


class Command(BaseCommand):
    help = "Creates one demo user per role (admin, agent, analyst, merchandiser)."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="trellis-demo")

    def handle(self, *args, password: str, **options):
        for login in demo_users_ensure(password=password):
            self.stdout.write(f"  {login.username:<13} / {login.password}   ({login.role})")
