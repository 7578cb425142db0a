"""A failed job's traceback moves to its own column (admins only); ``error`` becomes one line.

Before, the traceback was appended to the log tail and the error held the exception text,
both shown to every role holder and both naming server paths. Forward, existing rows are
repaired the same way new failures are stored; backward drops the column (the log tails
stay without the tracebacks).
"""

import re

from django.db import migrations, models

STAMP = re.compile(r"^\d\d:\d\d:\d\d ")
TRACEBACK_START = re.compile(r"^\d\d:\d\d:\d\d (Traceback \(most recent call last\):.*)$")
# A frozen copy of apps.mlops.services.training.PATH_PATTERN (migrations never import services).
PATH = re.compile(r"""(?<![\w.:/~-])~?/[^\s'",;:()\[\]{}<>]+""")
ERROR_MAX_CHARS = 300


def _split_log(log_tail):
    kept, traceback_lines, inside = [], [], False
    for line in log_tail.splitlines():
        start = TRACEBACK_START.match(line)
        if start:
            inside = True
            traceback_lines.append(start.group(1))
            continue
        if inside and STAMP.match(line):
            inside = False
        (traceback_lines if inside else kept).append(line)
    return "\n".join(kept), "\n".join(traceback_lines)


def _one_line(error):
    first = next((line.strip() for line in error.splitlines() if line.strip()), "")
    first = PATH.sub("<path>", first)
    return first if len(first) <= ERROR_MAX_CHARS else first[: ERROR_MAX_CHARS - 1] + "\u2026"


def move_tracebacks(apps, schema_editor):
    TrainingJob = apps.get_model("mlops", "TrainingJob")
    rows = TrainingJob.objects.exclude(error="").values_list("pk", "error", "log_tail")
    for pk, error, log_tail in list(rows) + list(
        TrainingJob.objects.filter(error="", log_tail__contains="Traceback (most recent").values_list(
            "pk", "error", "log_tail")):
        log, traceback = _split_log(log_tail)
        TrainingJob.objects.filter(pk=pk).update(
            error=_one_line(error), log_tail=PATH.sub("<path>", log),
            traceback="\n".join(part for part in (traceback, error) if part))


class Migration(migrations.Migration):

    dependencies = [
        ("mlops", "0002_trainingjob_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="trainingjob",
            name="traceback",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.RunPython(move_tracebacks, migrations.RunPython.noop),
    ]
