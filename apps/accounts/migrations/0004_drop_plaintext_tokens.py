"""API tokens used to be DRF's authtoken keys, stored in the clear. They no longer
authenticate anybody (knox digests replaced them, ``rest_framework.authtoken`` is no longer
installed), so the leftover table is dropped, and with it its migration history, so that an
install which goes back to an older release gets the table re-created by its migrations.
Users obtain new tokens (POST /api/auth/token/)."""

from django.db import migrations

TABLE = "authtoken_token"


def drop_plaintext_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if TABLE in connection.introspection.table_names():
        schema_editor.execute(f"DROP TABLE {schema_editor.quote_name(TABLE)}")
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE app = %s", ["authtoken"])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_api_tokens_tickets_throttle_cache")]
    # Keys cannot come back: going backwards leaves the table to authtoken's own migrations.
    operations = [migrations.RunPython(drop_plaintext_tokens, migrations.RunPython.noop)]
