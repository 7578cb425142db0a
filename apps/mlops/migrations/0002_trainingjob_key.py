"""Every training job gets a unique key that names its artifact and checkpoint folders.

Existing rows get distinct keys: the column is added nullable, filled one row at a time,
then made unique and required (a single default would give every row the same value).
"""

import uuid

from django.db import migrations, models


def fill_keys(apps, schema_editor):
    TrainingJob = apps.get_model("mlops", "TrainingJob")
    for pk in list(TrainingJob.objects.filter(key__isnull=True).values_list("pk", flat=True)):
        TrainingJob.objects.filter(pk=pk).update(key=uuid.uuid4())


class Migration(migrations.Migration):

    dependencies = [
        ("mlops", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="trainingjob",
            name="key",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(fill_keys, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="trainingjob",
            name="key",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]
