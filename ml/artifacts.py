"""Model artifacts on disk: a directory with weights (safetensors) and ``manifest.json``.

The manifest says what the directory holds so the registry can load it without guessing:
which loader (``kind``), the base model, task, labels, the hash of the training data,
evaluation metrics, when it was made and from which parent version.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
RENAME_EXCHANGE = 2  # renameat2 flag (Linux >= 3.15): swap two paths in one step
AT_FDCWD = -100
log = logging.getLogger(__name__)

# kind -> what the directory holds; the registry maps each to a loader.
KINDS = (
    "sentence-transformer",  # a SentenceTransformer folder (embedder)
    "hf-classifier",  # AutoModelForSequenceClassification folder (full fine-tune)
    "lora-classifier",  # peft adapter + head on top of ``base_model``
    "fewshot-classifier",  # linear head on frozen embeddings (head.safetensors)
    "zeroshot-classifier",  # label descriptions only, scored by embedding similarity
    "causal-lm",  # AutoModelForCausalLM folder (chat LM)
    "lora-causal-lm",  # peft adapter on top of a causal-lm ``base_model``
    "spacy",  # a spaCy pipeline folder (entities)
)


class ArtifactError(Exception):
    """An artifact is missing, incomplete or unreadable."""


@dataclass
class Manifest:
    """What an artifact directory holds.

    Attributes:
        role: registry role (``embedder``, ``chat-lm``, ``intent``, ``sentiment``, ``ner``).
        kind: one of KINDS; picks the loader.
        version: unique id of this artifact within its role.
        base_model: path or name of the model it starts from.
        task: free text, e.g. ``text-classification``.
        labels: class labels in head order (classifiers).
        data_hash: sha256 of the training data, "" for bundled defaults.
        metrics: evaluation figures (accuracy, macro_f1, ...).
        created_at: ISO-8601 UTC timestamp.
        parent_version: the version this one was trained from, if any.
        job_key: key of the training run that made it ("" when made outside one); a job
            reuses a finished artifact only when this and ``data_hash`` are its own.
        extra: loader-specific settings (label descriptions, LoRA config, ...).
    """

    role: str
    kind: str
    version: str
    base_model: str = ""
    task: str = ""
    labels: list[str] = field(default_factory=list)
    data_hash: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    parent_version: str | None = None
    job_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        known = {f for f in cls.__dataclass_fields__}
        missing = {"role", "kind", "version"} - data.keys()
        if missing:
            raise ArtifactError(f"manifest lacks {sorted(missing)}")
        if data["kind"] not in KINDS:
            raise ArtifactError(f"unknown artifact kind {data['kind']!r}")
        return cls(**{k: v for k, v in data.items() if k in known})


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Writes ``manifest.json`` atomically (``atomic_write_json``).

    Args:
        directory: the artifact directory (created if needed).
        manifest: what to write.

    Returns:
        The manifest path.
    """
    directory.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(directory / MANIFEST, manifest.to_dict(), indent=2)


def read_manifest(directory: Path) -> Manifest:
    """Reads and checks ``manifest.json``.

    Raises:
        ArtifactError: the directory or manifest is missing or malformed.
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"no manifest at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"unreadable manifest {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"manifest {path} is not an object")
    return Manifest.from_dict(data)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def new_version_id(role: str) -> str:
    """A sortable, unique version id such as ``sentiment-20261122T053000-3f9a``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{role}-{stamp}-{os.urandom(2).hex()}"


def detect_kind(source: Path) -> str:
    """Guesses the artifact kind of a local model folder from the files it holds.

    Raises:
        ArtifactError: nothing in the folder says what it is.
    """
    source = Path(source)
    if (source / MANIFEST).is_file():
        return read_manifest(source).kind
    if (source / "modules.json").is_file():
        return "sentence-transformer"
    if (source / "config.cfg").is_file() and (source / "meta.json").is_file():
        return "spacy"
    if (source / "adapter_config.json").is_file():
        raise ArtifactError(f"{source} is a bare adapter; register its base model and train through Trellis")
    config = source / "config.json"
    if config.is_file():
        try:
            architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
        except ValueError as exc:
            raise ArtifactError(f"unreadable {config}: {exc}") from exc
        if any(a.endswith("ForCausalLM") for a in architectures):
            return "causal-lm"
        if any(a.endswith("ForSequenceClassification") for a in architectures):
            return "hf-classifier"
    raise ArtifactError(f"cannot tell what model {source} holds (no modules.json, config.json or config.cfg)")


def wrap_model_dir(source: Path, target: Path, *, role: str, kind: str | None = None,
                   version: str | None = None) -> Manifest:
    """Makes any local model folder (e.g. a larger Hugging Face model) a registry artifact.

    The weights stay where they are; ``target`` gets a manifest whose ``extra.weights_dir``
    points at ``source``.

    Args:
        source: the model folder (Hugging Face, sentence-transformers or spaCy layout).
        target: the artifact directory to create.
        role: registry role it will serve.
        kind: artifact kind; detected from the files when None.
        version: version id; a new one when None.

    Returns:
        The manifest written.
    """
    source = Path(source).resolve()
    if not source.is_dir():
        raise ArtifactError(f"{source} is not a directory")
    kind = kind or detect_kind(source)
    if kind not in KINDS:
        raise ArtifactError(f"unknown artifact kind {kind!r}")
    labels: list[str] = []
    if kind == "hf-classifier":
        config = json.loads((source / "config.json").read_text(encoding="utf-8"))
        id2label = config.get("id2label") or {}
        labels = [id2label[k] for k in sorted(id2label, key=lambda k: int(k))]
    manifest = Manifest(role=role, kind=kind, version=version or new_version_id(role), base_model=str(source),
                        task="registered", labels=labels, extra={"weights_dir": str(source)})
    write_manifest(Path(target), manifest)
    return manifest


def set_aside(directory: Path, *, tag: str = "refused") -> Path:
    """Renames a folder that must not be used to ``<name>.<tag>-<stamp>-<rand>`` beside it.

    Nothing is deleted: the folder may be another deployment's or another database's
    work (two servers on one artifacts store, a restored backup), so it is kept for a
    person to look at, out of the way of the run that found it.

    Args:
        directory: the folder to move.
        tag: word in the new name saying why.

    Returns:
        Where it now is.
    """
    directory = Path(directory)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = directory.with_name(f"{directory.name}.{tag}-{stamp}-{os.urandom(3).hex()}")
    os.replace(directory, target)
    return target


# -- atomic writes ----------------------------------------------------------------------
# The one way ``ml`` publishes a file or a folder: written beside the target under a hidden
# temporary name, flushed to disk, then renamed into place, so a reader (or a crash) sees
# the old complete version or the new complete version, never half of one.


def _fsync_dir(directory: Path) -> None:
    """Makes a rename inside ``directory`` durable (the directory entry is data too)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # e.g. a platform without directory handles: the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(target: Path, write: Callable[[Path], None]) -> Path:
    """Has ``write`` fill a temporary file beside ``target``, then renames it over ``target``.

    Args:
        target: the file to create or replace.
        write: writes the whole content to the path it is given (may reopen it by name,
            as ``torch.save``, ``safetensors`` and FAISS do).

    Returns:
        ``target``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:  # data on disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def atomic_write_bytes(target: Path, data: bytes) -> Path:
    """Writes ``data`` to ``target`` atomically (``atomic_write``)."""
    return atomic_write(target, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(target: Path, obj: Any, *, indent: int | None = None) -> Path:
    """Writes ``obj`` as UTF-8 JSON (sorted keys) to ``target`` atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False)
    return atomic_write_bytes(target, text.encode("utf-8"))


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(root)


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two existing paths in one step (Linux ``renameat2``); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    try:
        renameat2 = ctypes.CDLL(libc_name, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    done = renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0
    if not done:
        log.debug("renameat2 exchange unavailable (errno %d); renaming aside", ctypes.get_errno())
    return done


def publish_dir(staging: Path, target: Path) -> Path:
    """Puts a fully written folder in ``target``'s place; the old folder is deleted after.

    A missing ``target`` appears by one rename. An existing one is swapped with ``staging``
    in one step where the system can (Linux ``renameat2(RENAME_EXCHANGE)``), else it is
    renamed aside first and ``staging`` renamed in right after; either way the old folder
    is deleted only once the new one is in place, so ``target`` always holds one complete
    folder (in the fallback, for the microseconds between the two renames, the complete old
    one waits beside it as ``.<name>.old-*`` and is put back if the second rename fails).

    Args:
        staging: the new folder, on the same filesystem as ``target``; gone afterwards.
        target: the folder to create or replace.

    Returns:
        ``target``.
    """
    staging, target = Path(staging), Path(target)
    _fsync_tree(staging)
    old: Path | None = None
    if not target.exists():
        os.replace(staging, target)
    elif _exchange(staging, target):
        old = staging  # the staging name now holds the previous folder
    else:
        old = target.with_name(f".{target.name}.old-{os.urandom(3).hex()}")
        os.replace(target, old)
        try:
            os.replace(staging, target)
        except BaseException:
            os.replace(old, target)  # the second rename failed: put the old folder back
            raise
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def atomic_replace_dir(target: Path, write: Callable[[Path], None]) -> Path:
    """Has ``write`` fill a staging folder beside ``target``, then publishes it (``publish_dir``).

    A crash while writing leaves only a hidden ``.<name>-*`` folder beside an untouched
    ``target``; readers see the complete old folder or the complete new one.

    Args:
        target: the folder to create or replace.
        write: fills the (empty) staging folder it is given, manifest included.

    Returns:
        ``target``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        staging.chmod(0o755)  # mkdtemp makes it owner-only; workers may run as other users
        write(staging)
        publish_dir(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
