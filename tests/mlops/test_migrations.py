"""The job-key and traceback migrations on rows that existed before them, and back again."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("mlops", "0001_initial")]
AFTER = [("mlops", "0003_trainingjob_traceback")]
OLD_LOG = (
    "12:00:00 started on cpu; split {'train': 32}\n"
    "12:00:05 Traceback (most recent call last):\n"
    '  File "/srv/trellis/ml/finetune/classification.py", line 300, in train_classifier\n'
    "    raise OSError(...)\n"
    "OSError: cannot read '/srv/trellis/var/media/datasets/x.csv'\n"
    "12:00:05 OSError: cannot read '/srv/trellis/var/media/datasets/x.csv'"
)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_schema():
    """The database at mlops 0001; put back to the latest migrations afterwards."""
    apps = _migrate(BEFORE)
    yield apps
    executor = MigrationExecutor(connection)
    _migrate(executor.loader.graph.leaf_nodes())


def test_existing_jobs_get_distinct_keys_and_their_tracebacks_move_out_of_the_log(old_schema):
    # given three jobs made before the migrations, one failed with a traceback in its log
    Dataset = old_schema.get_model("mlops", "Dataset")
    TrainingJob = old_schema.get_model("mlops", "TrainingJob")
    dataset = Dataset.objects.create(name="d", role="intent", task="text-classification", file="d.csv",
                                     sha256="0" * 64, size_bytes=1, rows=1)
    TrainingJob.objects.create(dataset=dataset, role="intent", status="succeeded", log_tail="12:00:00 done")
    TrainingJob.objects.create(dataset=dataset, role="intent", status="queued")
    failed = TrainingJob.objects.create(
        dataset=dataset, role="intent", status="failed", log_tail=OLD_LOG,
        error="OSError: cannot read '/srv/trellis/var/media/datasets/x.csv'\nmore detail")

    # when the migrations run
    new_apps = _migrate(AFTER)

    # then every job has its own key
    Job = new_apps.get_model("mlops", "TrainingJob")
    keys = list(Job.objects.values_list("key", flat=True))
    assert len(keys) == 3 and None not in keys and len(set(keys)) == 3
    # and the failed job's traceback left the log for the admins-only column, its error one line
    job = Job.objects.get(pk=failed.pk)
    assert job.error == "OSError: cannot read '<path>'"
    assert "Traceback (most recent call last):" in job.traceback
    assert "/srv/trellis/ml/finetune/classification.py" in job.traceback
    assert "Traceback" not in job.log_tail and "/srv/" not in job.log_tail
    assert job.log_tail.splitlines() == [
        "12:00:00 started on cpu; split {'train': 32}", "12:00:05 OSError: cannot read '<path>'"]

    # and both migrations reverse
    _migrate(BEFORE)
    columns = {c.name for c in connection.introspection.get_table_description(
        connection.cursor(), TrainingJob._meta.db_table)}
    assert "key" not in columns and "traceback" not in columns
