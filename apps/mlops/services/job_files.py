"""Where a training job's files live, and whether what is there is the job's own.

Folders are named by the job's unique key, never by its database id (ids repeat across
databases). A finished artifact counts as the job's only when its manifest carries the
job's key and the hash of the job's dataset; anything else found there is set aside.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings

from apps.mlops.models import TrainingJob
from apps.mlops.services.job_progress import JobReporter
from ml.artifacts import ArtifactError, Manifest, read_manifest, set_aside

log = logging.getLogger(__name__)


def job_dirs(job: TrainingJob) -> tuple[Path, Path]:
    """(artifact dir, checkpoint dir) of a job: named by its key, fixed per job, so a retry resumes."""
    root = Path(settings.ARTIFACTS_DIR)
    return root / job.role / f"job-{job.key}", root / "checkpoints" / f"job-{job.key}"


def not_own(job: TrainingJob, manifest: Manifest) -> str | None:
    """Why an artifact is not the job's own, or None when it is."""
    if manifest.job_key != str(job.key):
        return "it was made by another job"
    if manifest.data_hash != job.dataset.sha256:
        return "it was trained on other data"
    return None


def own_artifact(job: TrainingJob, out_dir: Path, reporter: JobReporter) -> Path | None:
    """The job's finished artifact (saved before its worker died, not yet registered), or None.

    Anything else in the folder is set aside (renamed, not deleted) with a warning, so the
    job trains into an empty folder and can never register what it did not train.
    """
    if not out_dir.exists():
        return None
    try:
        why = not_own(job, read_manifest(out_dir))
    except ArtifactError:
        why = "it holds no finished artifact"
    if why is None:
        return out_dir
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
        return None
    moved = set_aside(out_dir)
    log.warning("job %s: artifact folder %s refused (%s); set aside as %s", job.pk, out_dir, why, moved)
    reporter.log(f"a model folder already at this job's place was set aside ({why}); training afresh")
    return None
