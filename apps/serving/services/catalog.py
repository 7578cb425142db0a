"""Which model a request means, and what ``/v1/models`` lists.

A request names its model by role (``"embedder"``, ``"chat-lm"``, ...: whatever that role
serves now), by version id (``ModelVersion.version``, e.g. ``intent-20261204T101500-3f9a``;
the bundled default of a role is ``<role>-default``) or by ``ModelVersion`` primary key.
Only the serving version of a role answers: a candidate is listed (so clients see what
is coming) but must be promoted before it serves.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from apps.accounts.roles import user_has_role
from apps.mlops.models import ModelRole, ModelVersion
from apps.mlops.permissions import ROLE_OWNERS, visible_roles
from apps.mlops.services.serving import model_get, model_get_ready, registry_error, registry_sync
from apps.serving.exceptions import ModelForbidden, ModelUnavailable, UnknownModel, WrongModel

log = logging.getLogger(__name__)

# What each role does, in the words of the endpoint that serves it.
ROLE_TASKS: dict[str, str] = {
    ModelRole.EMBEDDER: "embeddings (/v1/embeddings)",
    ModelRole.CHAT_LM: "chat (/v1/chat/completions)",
    ModelRole.INTENT: "classification (/api/ml/classify/)",
    ModelRole.SENTIMENT: "classification (/api/ml/classify/)",
    ModelRole.NER: "entities (/api/ml/entities/)",
}
DEFAULT_SUFFIX = "-default"


@dataclass(frozen=True)
class ServedModel:
    """One entry of the model list, and what a request was resolved to.

    Attributes:
        id: what to pass as ``model`` (a role name, or a version id).
        role: the role it serves.
        version: the artifact version (``default`` for the bundled one).
        status: ``serving`` or ``candidate``.
        created: Unix time (seconds) the version was made or promoted.
        base_model: what it was trained from.
    """

    id: str
    role: str
    version: str
    status: str
    created: int
    base_model: str

    @property
    def version_id(self) -> str:
        return self.role + DEFAULT_SUFFIX if self.version == "default" else self.version

    def as_openai(self) -> dict[str, Any]:
        return {"object": "model", "owned_by": "trellis", **asdict(self)}


def _epoch(value: datetime | str | None) -> int:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return 0
    return int(value.timestamp()) if value is not None else 0


def serving_model(role: str, *, promoted_at: bool = False) -> ServedModel:
    """What this process serves for ``role`` now (the promoted version, else the bundled one).

    Args:
        role: the role.
        promoted_at: date ``created`` by the promotion (one more query; for listings)
            rather than by the artifact's manifest.

    Raises:
        ModelUnavailable: the role has no model this process can serve.
    """
    try:
        active = registry_sync(role).active(role)
    except Exception as exc:  # ml.registry.ModelUnavailable / ArtifactError: nothing to serve
        log.warning("no model can serve %s: %s", role, exc)
        raise ModelUnavailable(f"No model can serve {role} on this server: {exc}") from exc
    manifest = active.manifest
    created = _epoch(manifest.created_at)
    if promoted_at:
        row = ModelVersion.objects.filter(role=role, version=active.version).only("promoted_at").first()
        if row is not None and row.promoted_at is not None:
            created = _epoch(row.promoted_at)
    return ServedModel(
        id=active.version if active.version != "default" else role + DEFAULT_SUFFIX,
        role=role,
        version=active.version,
        status="serving",
        created=created,
        base_model=manifest.base_model or "",
    )


def serving_ready(role: str) -> tuple[str, Any] | None:
    """The id of what serves ``role`` (as ``serving_model``) and its loaded model, when both
    are known without I/O (``model_get_ready``: synced lately, in memory); else None."""
    ready = model_get_ready(role)
    if ready is None:
        return None
    version, model = ready
    return (role + DEFAULT_SUFFIX if version == "default" else version), model


def model_check_access(*, user: Any, role: str) -> None:
    """Raises ModelForbidden unless ``user`` holds a role that uses this model role."""
    owners = ROLE_OWNERS.get(role, ())
    if not user_has_role(user, owners):
        raise ModelForbidden(
            f"Your role does not allow using the {role} model (it is for: admin, {', '.join(owners)}).",
            param="model",
        )


def _wrong_role(model: str, role: str, wanted: str) -> WrongModel:
    return WrongModel(
        f"The model `{model}` serves {ROLE_TASKS[role]}; this endpoint needs a {wanted} model "
        f"(`{wanted}` or one of its versions).",
        param="model",
    )


def _by_version(model: str) -> ModelVersion | None:
    query = ModelVersion.objects.filter(version=model)
    if model.isdigit():
        query = ModelVersion.objects.filter(version=model) | ModelVersion.objects.filter(pk=int(model))
    return query.first()


def model_resolve(*, model: str, role: str) -> ServedModel:
    """The serving model of ``role`` that ``model`` names.

    Raises:
        UnknownModel: no such role or version, or the version is not the serving one.
        WrongModel: ``model`` belongs to another role.
        ModelUnavailable: the version is promoted but this server could not load it.
    """
    name = model.strip()
    if name in ROLE_TASKS:
        if name != role:
            raise _wrong_role(name, name, role)
        return serving_model(role)
    if name.endswith(DEFAULT_SUFFIX) and name.removesuffix(DEFAULT_SUFFIX) in ROLE_TASKS:
        named_role, version = name.removesuffix(DEFAULT_SUFFIX), "default"
        row = None
    else:
        row = _by_version(name)
        if row is None or row.status == ModelVersion.Status.RETIRED:
            raise UnknownModel(f"The model `{name}` does not exist; GET /v1/models lists them.", param="model")
        named_role, version = row.role, row.version
    if named_role != role:
        raise _wrong_role(name, named_role, role)
    if row is not None and row.status == ModelVersion.Status.CANDIDATE:
        raise UnknownModel(
            f"The model `{name}` is a candidate of {role}, not promoted: only the serving version "
            f"answers (promote it, or use `{role}`).",
            param="model",
        )
    serving = serving_model(role)
    if serving.version != version:
        if row is not None:  # promoted in the database, but this process kept the previous one
            why = registry_error(role) or "it is being loaded"
            raise ModelUnavailable(f"The model `{name}` is promoted but not yet serving here: {why}", param="model")
        raise UnknownModel(
            f"The model `{name}` is not serving: {role} serves `{serving.id}` now.", param="model"
        )
    return serving


def model_list(*, user: Any) -> list[ServedModel]:
    """Per role the caller may use: the role itself (an alias of its serving version), the
    serving version, and the candidates awaiting promotion."""
    entries: list[ServedModel] = []
    for role in visible_roles(user):
        try:
            serving = serving_model(role, promoted_at=True)
        except ModelUnavailable:
            serving = None
        if serving is not None:
            entries.append(ServedModel(**{**asdict(serving), "id": role}))
            entries.append(serving)
        candidates = ModelVersion.objects.filter(role=role, status=ModelVersion.Status.CANDIDATE)
        entries.extend(
            ServedModel(id=row.version, role=role, version=row.version, status="candidate",
                        created=_epoch(row.created_at), base_model=row.base_model)
            for row in candidates
        )
    return entries


def model_retrieve(*, user: Any, model_id: str) -> ServedModel:
    """One entry of ``model_list`` by id (or ModelVersion primary key).

    Raises:
        UnknownModel: the caller has no such model.
    """
    entries = model_list(user=user)
    for entry in entries:
        if entry.id == model_id:
            return entry
    row = _by_version(model_id) if model_id.isdigit() else None
    if row is not None:
        for entry in entries:
            if entry.id == row.version:
                return entry
    raise UnknownModel(f"The model `{model_id}` does not exist; GET /v1/models lists them.", param="model")


def model_load(role: str) -> Any:
    """The loaded model serving ``role`` (``model_get``); call it off the event loop.

    Raises:
        ModelUnavailable: it cannot be loaded.
    """
    try:
        return model_get(role)
    except Exception as exc:  # ml.registry.ModelUnavailable / ArtifactError / a loader's error
        log.exception("loading the %s model failed", role)
        raise ModelUnavailable(f"The {role} model cannot be loaded on this server: {exc}") from exc
