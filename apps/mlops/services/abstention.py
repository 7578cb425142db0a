"""Calibration and out-of-scope abstention of classifier versions (``ml.abstention``).

The settings live in the version's manifest (``extra["calibration"]``, ``extra["abstention"]``):
``calibrate`` fits them on labelled rows, an admin edits the threshold from the version page
or the API, and every edit rewrites the manifest atomically and reloads the version in this
process (other processes read it when they next load the version).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError

from apps.audit.models import AuditAction
from apps.audit.services import audit_record
from apps.mlops.models import ModelVersion
from ml.artifacts import ArtifactError, read_manifest
from ml.finetune.data import Row
from ml.metrics import classification_report
from ml.ood import OOS_LABEL
from ml.ood_threshold import ood_report
from ml.registry import default_registry

log = logging.getLogger(__name__)


class AbstentionUnavailable(Exception):
    """The version cannot abstain: not a classifier, or its artifact is missing."""


def _classifier_manifest(version: ModelVersion) -> Any:
    if not version.kind.endswith("classifier"):
        raise AbstentionUnavailable(f"{version.version} is a {version.kind}; only classifiers abstain")
    try:
        return read_manifest(Path(version.artifact_path))
    except ArtifactError as exc:
        raise AbstentionUnavailable(f"{version.version} has no readable artifact: {exc}") from exc


def version_abstention_get(version: ModelVersion) -> dict[str, Any] | None:
    """``{"calibration", "abstention"}`` of a classifier version, or None when it has neither.

    The threshold curve is the one measured on the held-out rows when it was chosen.
    """
    try:
        manifest = _classifier_manifest(version)
    except AbstentionUnavailable:
        return None
    calibration, abstention = manifest.extra.get("calibration"), manifest.extra.get("abstention")
    if not calibration and not abstention:
        return None
    return {"calibration": calibration or None, "abstention": abstention or None}


def classifier_score(model: Any, rows: list[Row]) -> dict[str, Any]:
    """Classification report of ``model`` on ``rows``, and what its abstention does there.

    The report judges the classes on the in-scope rows by top label, so versions with and
    without abstention compare fairly in the promotion gate. When the model abstains or the
    rows hold out-of-scope examples it gains ``abstention`` (``ml.ood_threshold.ood_report``: in-scope
    accuracy after abstention, out-of-scope precision and recall, the threshold curve).
    """
    texts = [t for t, _ in rows]
    gold = [label for _, label in rows]
    predictions = model.predict(texts, batch_size=64)
    rule = getattr(model, "abstention", None)
    oos_label = rule.oos_label if rule is not None else OOS_LABEL
    in_scope = [i for i, label in enumerate(gold) if label != oos_label]
    labels = sorted({gold[i] for i in in_scope} | set(getattr(model, "labels", [])))
    report = classification_report([gold[i] for i in in_scope], [predictions[i].label for i in in_scope], labels)
    if rule is not None or len(in_scope) < len(gold):
        report["abstention"] = ood_report(gold, predictions, oos_label=oos_label,
                                          threshold=rule.threshold if rule is not None else None)
    return report


def _reload(version: ModelVersion) -> None:
    """Makes this process serve the version's new manifest (loaded copy and active entry)."""
    from ml.abstention import reload_calibration

    registry = default_registry()
    path = Path(version.artifact_path)
    if (version.role, str(path)) in registry.loaded():
        reload_calibration(registry, path)  # the loaded copy, in place: no model reload
    if version.status == ModelVersion.Status.ACTIVE:
        try:
            registry.activate(version.role, path, eager=False)  # the active entry keeps the new manifest
        except ArtifactError as exc:
            log.error("could not re-read %s after an abstention change: %s", version.version, exc)


def model_version_abstention_update(*, version: ModelVersion, threshold: Any, user: Any, request: Any = None,
                                    origin: str = "") -> dict[str, Any]:
    """Sets a classifier version's abstention threshold (audited) and reloads it here.

    Raises:
        ValidationError: the threshold is not a number in [0, 1] (nothing changed).
        AbstentionUnavailable: not a classifier, or no readable artifact.
    """
    from ml.abstention import set_threshold
    from ml.ood import check_threshold

    try:
        value = check_threshold(threshold)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    before = (_classifier_manifest(version).extra.get("abstention") or {}).get("threshold")
    try:
        manifest = set_threshold(version.artifact_path, value)
    except ArtifactError as exc:
        raise AbstentionUnavailable(str(exc)) from exc
    who = getattr(user, "username", "") or "system"
    audit_record(
        actor=user, action=AuditAction.MODEL_ABSTENTION, target=version, request=request,
        summary=f"{who} set the abstention threshold of {version.version} to {value:g}"
        + (f" ({origin})" if origin else ""),
        details={"role": version.role, "version": version.version, "threshold": value, "previous": before,
                 "method": manifest.extra["abstention"]["method"], "origin": origin or None},
    )
    log.info("%s set the abstention threshold of %s to %s (was %s)", who, version.version, value, before)
    _reload(version)
    return {"calibration": manifest.extra.get("calibration"), "abstention": manifest.extra["abstention"]}


def model_version_calibrate(*, version: ModelVersion, rows: list[Row], oos_label: str = OOS_LABEL) -> dict[str, Any]:
    """Fits calibration and abstention of a classifier version on labelled rows.

    Rows labelled ``oos_label`` are the out-of-scope examples; without any the threshold
    keeps 95% of in-scope rows. The manifest is rewritten atomically and reloaded here.

    Raises:
        AbstentionUnavailable: not a classifier, or no readable artifact.
        ValidationError: no row has a label of the model.
    """
    from ml.abstention import calibrate_artifact

    _classifier_manifest(version)
    try:
        manifest = calibrate_artifact(version.artifact_path, rows, oos_label=oos_label, registry=default_registry())
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    _reload(version)
    return {"calibration": manifest.extra["calibration"], "abstention": manifest.extra["abstention"]}


def role_default_calibrate(*, role: str, rows: list[Row], oos_label: str = OOS_LABEL) -> dict[str, Any]:
    """``model_version_calibrate`` for a role's bundled default (e.g. the zero-shot intent model).

    Raises:
        AbstentionUnavailable: the role has no bundled classifier default.
        ValidationError: no row has a label of the model.
    """
    from ml.abstention import calibrate_artifact
    from ml.defaults import bundled_defaults

    locate = bundled_defaults().get(role)
    if locate is None:
        raise AbstentionUnavailable(f"role {role!r} has no bundled default")
    path = Path(locate())
    registry = default_registry()
    try:
        manifest = calibrate_artifact(path, rows, oos_label=oos_label, registry=registry)
    except ArtifactError as exc:
        raise AbstentionUnavailable(str(exc)) from exc
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    if registry.active(role).path == path:
        registry.activate(role, path, eager=False)  # the active entry keeps the new manifest
    return {"calibration": manifest.extra["calibration"], "abstention": manifest.extra["abstention"]}
