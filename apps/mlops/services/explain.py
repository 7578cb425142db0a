"""Explanations of a model version's predictions: which words made it choose its label.

``model_version_classifier`` loads the version (sync: disk and registry; call it from a
worker thread, as the API's ``prepare`` does); ``model_version_explain`` awaits the
attributions on the process's compute lane (``ml.explain.aexplain``), so the event loop is
never blocked and the torch work never competes with serving's.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from apps.mlops.models import ModelVersion
from ml.artifacts import ArtifactError
from ml.explain import DEFAULT_STEPS, Explanation, aexplain
from ml.registry import default_registry

log = logging.getLogger(__name__)


class VersionNotExplainable(Exception):
    """The version is not a classifier (an embedder, a chat LM, the entity model)."""


class VersionUnavailable(Exception):
    """The version's artifact cannot be loaded in this process."""


def is_explainable(version: ModelVersion) -> bool:
    return version.kind.endswith("classifier")


def model_version_classifier(*, version: ModelVersion) -> Any:
    """The loaded classifier of ``version`` (the registry keeps it for the next call).

    Raises:
        VersionNotExplainable: the version is not a classifier.
        VersionUnavailable: its artifact is missing or fails to load (the reason is logged;
            the message names no server path).
    """
    if not is_explainable(version):
        raise VersionNotExplainable(
            f"{version.version} is a {version.kind}; only classifier versions can be explained"
        )
    try:
        return default_registry().load_artifact(version.artifact_path)
    except (ArtifactError, OSError, ValueError, RuntimeError) as exc:
        log.warning("cannot load %s for an explanation: %s", version.version, exc)
        raise VersionUnavailable(f"{version.version} cannot be loaded on this server") from exc


def explanation_payload(explanation: Explanation) -> dict[str, Any]:
    return asdict(explanation)


async def model_version_explain(
    *, classifier: Any, texts: list[str], target: str | None = None, steps: int = DEFAULT_STEPS
) -> list[dict[str, Any]]:
    """Word attributions per text, in input order (see ``ml.explain.Explanation``).

    Raises:
        ml.explain.ExplainError: texts, target or steps the explainer refuses (nothing ran).
    """
    explanations = await aexplain(classifier, texts, target=target, steps=steps)
    return [explanation_payload(e) for e in explanations]
