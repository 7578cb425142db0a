"""The stored default blend moves to the served configuration (ml/recommend/served.py) where it
still holds the old defaults, i.e. nobody changed it (an A/B winner made default is kept)."""

from django.db import migrations

# Literal copies: a migration must not follow later edits of the code it migrates to.
OLD_DEFAULT = {"content": 0.5, "cooccurrence": 1.0, "als": 1.0, "popularity": 0.2}
SERVED_DEFAULT = {"content": 0.5, "cooccurrence": 0.5, "als": 1.0, "popularity": 0.0, "trending": 0.25}


def _swap(apps, before, after):
    config = apps.get_model("recommend", "RecommenderConfig")
    for row in config.objects.filter(name="default"):
        if row.weights == before and not row.diversity:
            row.weights = after
            row.save(update_fields=["weights"])


def forwards(apps, schema_editor):
    _swap(apps, OLD_DEFAULT, SERVED_DEFAULT)


def backwards(apps, schema_editor):
    _swap(apps, SERVED_DEFAULT, OLD_DEFAULT)


class Migration(migrations.Migration):
    dependencies = [("recommend", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
