from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import User
from apps.mlops.models import ModelRole
from apps.mlops.services.versions import model_version_register


class Command(BaseCommand):
    help = "Registers a local model folder (e.g. a larger Hugging Face model) as a candidate version of a role."

    def add_arguments(self, parser):
        parser.add_argument("--role", required=True, choices=ModelRole.values)
        parser.add_argument("--path", required=True, help="model folder on this machine")
        parser.add_argument("--kind", default=None, help="artifact kind; detected from the files when omitted")
        parser.add_argument("--user", default="admin")

    def handle(self, *args, role, path, kind, user, **options):
        owner = User.objects.filter(username=user).first()
        try:
            version = model_version_register(role=role, path=path, user=owner, kind=kind)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(self.style.SUCCESS(
            f"registered {version.version} ({version.kind}) as a candidate for {role}; "
            f"promote it with: manage.py promote --version {version.version}"))
