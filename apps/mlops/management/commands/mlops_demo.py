from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand

from apps.accounts.models import User
from apps.mlops.sample_data import intent_sample_rows, rows_to_csv
from apps.mlops.services.datasets import dataset_create


class Command(BaseCommand):
    help = "Loads a generated sample intent dataset, ready to fine-tune from the Models page."

    def handle(self, *args, **options):
        owner = User.objects.filter(username="admin").first()
        upload = SimpleUploadedFile("sample-intents.csv", rows_to_csv(intent_sample_rows(400)), content_type="text/csv")
        dataset = dataset_create(uploaded_file=upload, name="Sample intents (generated)", role="intent", user=owner)
        self.stdout.write(f"  sample dataset #{dataset.pk}: {dataset.rows} rows, labels {sorted(dataset.label_counts)}")
