"""Model versions: evaluation, promotion behind an evaluation gate, rollback.

Promotion changes which artifact the DB marks active; every process picks it up through
``serving.registry_sync`` within seconds, without a restart.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditAction
from apps.audit.services import audit_record
from apps.mlops.models import Dataset, ModelVersion
from apps.mlops.services.serving import registry_sync, serving_reset
from ml.finetune.data import Row
from ml.registry import default_registry

log = logging.getLogger(__name__)

GATE_METRIC = "macro_f1"
# A candidate may trail the active version by this much on the same rows and still pass:
# two runs of the same data differ by about this on a few hundred held-out rows.
GATE_TOLERANCE = 0.005
HELD_OUT_FILE = "heldout.jsonl"


class PromotionRefused(Exception):
    def __init__(self, message: str, candidate_score: float | None, active_score: float | None) -> None:
        super().__init__(message)
        self.message = message
        self.candidate_score = candidate_score
        self.active_score = active_score


def _held_out_rows(version: ModelVersion, dataset: Dataset | None) -> list[Row]:
    """The rows a classifier is judged on: a given dataset, else the candidate's own test split."""
    if dataset is not None:
        from apps.mlops.services.datasets import dataset_rows

        return dataset_rows(dataset)
    path = Path(version.artifact_path) / HELD_OUT_FILE
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [(r["text"], r["label"]) for r in rows]
    raise ValidationError(f"version {version.version} has no held-out rows; evaluate it on a dataset")


def _score(model: Any, rows: list[Row]) -> dict[str, Any]:
    from apps.mlops.services.abstention import classifier_score

    return classifier_score(model, rows)  # abstentions count as the out-of-scope label


def _is_classifier(version: ModelVersion) -> bool:
    return version.kind.endswith("classifier")


def model_version_evaluate(*, version: ModelVersion, dataset: Dataset | None = None) -> dict[str, Any]:
    """Scores ``version`` (and the active version, on the same rows) and stores the report."""
    if not _is_classifier(version):
        report = {"kind": version.kind, "metrics": version.metrics,
                  "note": "generative and embedding models are compared on their training metrics"}
    else:
        rows = _held_out_rows(version, dataset)
        registry = default_registry()
        candidate = _score(registry.load_artifact(version.artifact_path), rows)
        active_row = ModelVersion.objects.filter(role=version.role, status=ModelVersion.Status.ACTIVE).first()
        if active_row is not None and active_row.pk == version.pk:
            active_report = candidate
        else:
            active_model = (registry.load_artifact(active_row.artifact_path) if active_row
                            else registry_sync(version.role).get(version.role))
            active_report = _score(active_model, rows)
        report = {
            "rows": len(rows),
            "dataset": dataset.pk if dataset else None,
            "candidate": candidate,
            "active": {"version": active_row.version if active_row else "default", **active_report},
            "evaluated_at": timezone.now().isoformat(),
        }
    version.eval_report = report
    version.save(update_fields=["eval_report"])
    return report


def _gate(version: ModelVersion) -> tuple[bool, float | None, float | None, str]:
    if not _is_classifier(version):
        cand = version.metrics.get("eval_loss")
        active = ModelVersion.objects.filter(role=version.role, status=ModelVersion.Status.ACTIVE).first()
        act = active.metrics.get("eval_loss") if active else None
        if cand is None or act is None:
            return True, cand, act, "no comparable held-out loss; promoted on request"
        return cand <= act * (1 + GATE_TOLERANCE), cand, act, "held-out loss (lower is better)"
    report = model_version_evaluate(version=version)
    cand = report["candidate"][GATE_METRIC]
    act = report["active"][GATE_METRIC]
    return cand >= act - GATE_TOLERANCE, cand, act, f"held-out {GATE_METRIC} on {report['rows']} rows"


def model_version_promote(*, version: ModelVersion, user: Any, force: bool = False, request: Any = None,
                          origin: str = "") -> ModelVersion:
    """Makes ``version`` the active one of its role if it is not worse than the current one.

    Recorded in the audit log with ``request`` (client address) or, from a command, ``origin``.

    Raises:
        PromotionRefused: the candidate scores below the active version (and not ``force``).
        ValidationError: the version is already active.
    """
    if version.status == ModelVersion.Status.ACTIVE:
        raise ValidationError(f"{version.version} is already active")
    passed, cand, act, basis = _gate(version)
    if not passed and not force:
        raise PromotionRefused(
            f"candidate {version.version} is worse than the active version on {basis}: "
            f"{cand:.4f} vs {act:.4f}; promote with force to override", cand, act)
    # Load it in this process first: a broken artifact is refused here, not in production.
    default_registry().load_artifact(version.artifact_path)
    with transaction.atomic():
        previous = (ModelVersion.objects.select_for_update()
                    .filter(role=version.role, status=ModelVersion.Status.ACTIVE).first())
        if previous is not None:
            previous.status = ModelVersion.Status.RETIRED
            previous.save(update_fields=["status"])
        version.status = ModelVersion.Status.ACTIVE
        version.previous_active = previous
        version.promoted_by = user
        version.promoted_at = timezone.now()
        version.save(update_fields=["status", "previous_active", "promoted_by", "promoted_at"])
        forced = force and not passed
        what = f"promoted {version.role} {version.version}" + (" past the evaluation gate" if forced else "")
        audit_record(
            actor=user, action=AuditAction.MODEL_PROMOTE, target=version, request=request,
            summary=_audit_summary(user, what, origin),
            details={"role": version.role, "version": version.version, "forced": forced,
                     "previous": previous.version if previous else None,
                     "gate": {"basis": basis, "passed": passed, "candidate_score": cand, "active_score": act},
                     "origin": origin or None},
        )
    log.info("%s promoted %s (%s; forced=%s)", getattr(user, "username", "system"), version.version, basis, force)
    _resync(version.role)
    return version


def model_version_rollback(*, role: str, user: Any, request: Any = None, origin: str = "") -> ModelVersion | None:
    """Re-activates the version that was active before the current one (audited like promotion).

    Returns:
        The now active version, or None when the role went back to its bundled default.

    Raises:
        ValueError: nothing is active, so there is nothing to roll back.
    """
    with transaction.atomic():
        current = (ModelVersion.objects.select_for_update()
                   .filter(role=role, status=ModelVersion.Status.ACTIVE).first())
        if current is None:
            raise ValueError(f"{role} serves its bundled default; there is nothing to roll back")
        target = current.previous_active
        current.status = ModelVersion.Status.RETIRED
        current.save(update_fields=["status"])
        if target is not None:
            target.status = ModelVersion.Status.ACTIVE
            target.promoted_by = user
            target.promoted_at = timezone.now()
            target.save(update_fields=["status", "promoted_by", "promoted_at"])
        now_serving = target.version if target else "the bundled default"
        audit_record(
            actor=user, action=AuditAction.MODEL_ROLLBACK, target=current, request=request,
            summary=_audit_summary(user, f"rolled {role} back from {current.version} to {now_serving}", origin),
            details={"role": role, "from": current.version, "to": target.version if target else None,
                     "origin": origin or None},
        )
    log.info("%s rolled %s back from %s to %s", getattr(user, "username", "system"), role, current.version,
             target.version if target else "the bundled default")
    _resync(role)
    return target


def _audit_summary(user: Any, what: str, origin: str) -> str:
    who = getattr(user, "username", "") or "system"
    return f"{who} {what}" + (f" ({origin})" if origin else "")


def _resync(role: str) -> None:
    serving_reset()
    registry_sync(role, force=True)


def model_version_register(*, role: str, path: str, user: Any, kind: str | None = None) -> ModelVersion:
    """Registers any local model folder (a larger LM on a GPU machine, say) as a candidate.

    The folder is wrapped in an artifact (manifest pointing at it) and loaded once to prove
    it works before the version is recorded; promote it like any other candidate.

    Raises:
        ValidationError: unknown role, unreadable folder, or a model that fails to load.
    """
    from django.conf import settings

    from apps.mlops.models import ModelRole
    from ml.artifacts import ArtifactError, new_version_id, wrap_model_dir

    if role not in ModelRole.values:
        raise ValidationError(f"unknown role {role!r}; one of {ModelRole.values}")
    version_id = new_version_id(role)
    target = Path(settings.ARTIFACTS_DIR) / role / version_id
    try:
        manifest = wrap_model_dir(Path(path), target, role=role, kind=kind, version=version_id)
        default_registry().load_artifact(target)
    except (ArtifactError, OSError, ValueError) as exc:
        import shutil

        shutil.rmtree(target, ignore_errors=True)
        raise ValidationError(f"cannot register {path}: {exc}") from exc
    return ModelVersion.objects.create(
        role=role, version=manifest.version, kind=manifest.kind, artifact_path=str(target),
        base_model=manifest.base_model, labels=manifest.labels, created_by=user,
    )
