"""Which encoders a classifier job may start from (``manage.py train --base``, API ``base_model``).

A backbone is either a registered ``embedder`` version (e.g. the all-mpnet-base-v2 folder that
``make models-large`` registers) or a local folder that ``ml.artifacts.detect_kind`` reads as
a sentence-transformers encoder. Anything else is refused before a job is queued.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError

from apps.mlops.models import ModelRole, ModelVersion
from ml.artifacts import ArtifactError, detect_kind, read_manifest

ENCODER_KIND = "sentence-transformer"


def _encoder_folder(path: Path) -> Path | None:
    """The weights folder of an encoder artifact or plain encoder folder, or None."""
    try:
        kind = detect_kind(path)
    except (ArtifactError, OSError, ValueError):
        return None
    if kind != ENCODER_KIND:
        return None
    try:
        weights = read_manifest(path).extra.get("weights_dir")
    except ArtifactError:
        weights = None  # a plain sentence-transformers folder (no manifest)
    folder = Path(weights) if weights else path
    return folder if (folder / "config.json").is_file() else None


def backbone_resolve(value: str) -> str:
    """The encoder folder ``value`` names: a registered embedder version or an encoder folder.

    Raises:
        ValidationError: ``value`` is neither (the message says what is accepted).
    """
    value = str(value).strip()
    version = ModelVersion.objects.filter(role=ModelRole.EMBEDDER, version=value).first()
    if version is not None:
        folder = _encoder_folder(Path(version.artifact_path))
        if folder is None:
            raise ValidationError(f"embedder version {value} has no encoder weights on this server",
                                  code="invalid_backbone")
        return str(folder)
    path = Path(value).expanduser()
    folder = _encoder_folder(path) if path.is_dir() else None
    if folder is None:
        registered = list(ModelVersion.objects.filter(role=ModelRole.EMBEDDER).values_list("version", flat=True)[:10])
        raise ValidationError(
            f"base model {value!r} is not a registered backbone: give an embedder version "
            f"({', '.join(registered) or 'none registered; make models-large registers one'}) "
            "or a sentence-transformers encoder folder",
            code="invalid_backbone",
        )
    return str(folder.resolve())
