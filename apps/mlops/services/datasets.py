"""Dataset uploads: validated in full before anything is stored."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from apps.mlops.models import TRAINABLE_ROLES, Dataset, DatasetTask, ModelRole
from ml.finetune.data import Row, load_rows, validate


class DatasetRejected(Exception):
    """The upload failed validation; ``report`` lists every error and warning."""

    def __init__(self, report: dict[str, Any]) -> None:
        super().__init__("; ".join(report.get("errors", [])) or "invalid dataset")
        self.report = report


def _rejected(message: str) -> DatasetRejected:
    return DatasetRejected({"ok": False, "errors": [message], "warnings": []})


def _validate_transcripts(raw: bytes) -> dict[str, Any]:
    """Checks chat transcripts (JSONL, one ``{"messages": [...]}`` per line)."""
    import tempfile
    from collections import Counter

    from ml.finetune.chat_lora import load_conversations

    report: dict[str, Any] = {"ok": False, "errors": [], "warnings": [], "data_hash": hashlib.sha256(raw).hexdigest()}
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report["errors"].append(f"the file is not UTF-8 (bad byte at offset {exc.start})")
        return report
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as tmp:
        tmp.write(raw)
        tmp.flush()
        try:
            conversations = load_conversations(Path(tmp.name))
        except ValueError as exc:
            report["errors"] += [line for line in str(exc).splitlines()[1:] if line.strip()] or [str(exc)]
            return report
    roles = Counter(m["role"] for conv in conversations for m in conv)
    if len(conversations) < 10:
        report["warnings"].append(f"only {len(conversations)} conversations: no held-out loss can be measured")
    report.update(ok=True, n_rows=len(conversations), label_counts=dict(roles))
    return report


def _read_upload(uploaded_file: Any) -> bytes:
    limit = settings.TRELLIS_MAX_UPLOAD_BYTES
    size = getattr(uploaded_file, "size", None)
    if size is not None and size > limit:
        raise _rejected(f"file is {size} bytes; the limit is {limit} bytes")
    chunks, total = [], 0
    for chunk in uploaded_file.chunks() if hasattr(uploaded_file, "chunks") else [uploaded_file.read()]:
        total += len(chunk)
        if total > limit:
            raise _rejected(f"file is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def dataset_validate(*, raw: bytes, role: str, filename: str = "") -> dict[str, Any]:
    """Validation report of an upload for ``role`` (no side effects)."""
    task = TRAINABLE_ROLES.get(ModelRole(role)) if role in ModelRole.values else None
    if task is None:
        raise _rejected(f"role {role!r} cannot be trained from a dataset; choose one of "
                        f"{sorted(str(r) for r in TRAINABLE_ROLES)}")
    if task == DatasetTask.CHAT_TRANSCRIPTS:
        report = _validate_transcripts(raw)
    else:
        import tempfile

        suffix = Path(filename).suffix.lower() or ".csv"
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(raw)
            tmp.flush()
            result = validate(tmp.name, max_bytes=settings.TRELLIS_MAX_UPLOAD_BYTES)
        report = result.to_dict()
    report["task"] = task
    return report


def dataset_create(*, uploaded_file: Any, name: str, role: str, user: Any, source: str = "upload") -> Dataset:
    """Validates an upload and stores it; an invalid one raises and leaves nothing behind.

    The same bytes uploaded again for the same role return the existing Dataset.
    """
    raw = _read_upload(uploaded_file)
    filename = getattr(uploaded_file, "name", "") or "upload.csv"
    report = dataset_validate(raw=raw, role=role, filename=filename)
    if not report.get("ok"):
        raise DatasetRejected(report)
    sha256 = hashlib.sha256(raw).hexdigest()
    existing = Dataset.objects.filter(role=role, sha256=sha256).first()
    if existing is not None:
        return existing
    dataset = Dataset(
        name=(name or filename)[:200], role=role, task=report["task"], source=source, sha256=sha256,
        size_bytes=len(raw), rows=int(report.get("n_rows", 0)),
        label_counts=report.get("label_counts", {}), validation=report, created_by=user,
    )
    try:
        with transaction.atomic():
            dataset.file.save(_storage_name(filename, sha256), ContentFile(raw), save=False)
            dataset.save()
    except IntegrityError:  # the same upload raced us; keep theirs
        dataset.file.delete(save=False)
        return Dataset.objects.get(role=role, sha256=sha256)
    return dataset


def _storage_name(filename: str, sha256: str) -> str:
    suffix = Path(filename).suffix.lower()
    return f"{sha256[:16]}{suffix if suffix in {'.csv', '.jsonl', '.json', '.ndjson'} else '.csv'}"


def dataset_rows(dataset: Dataset) -> list[Row]:
    """The clean ``(text, label)`` rows of a text-classification dataset, out-of-scope rows last."""
    report = validate(dataset.file.path, max_bytes=None)
    return report.rows + report.oos_rows


def dataset_from_rows(*, rows: list[Row], name: str, role: str, user: Any = None) -> Dataset:
    """A dataset built from app feedback (analyst corrections, agent edits)."""
    body = "\n".join(json.dumps({"text": t, "label": lab}, ensure_ascii=False) for t, lab in rows).encode()
    content = ContentFile(body, name=f"{name}.jsonl")
    return dataset_create(uploaded_file=content, name=name, role=role, user=user, source=Dataset.Source.FEEDBACK)


__all__ = ["DatasetRejected", "dataset_create", "dataset_from_rows", "dataset_rows", "dataset_validate", "load_rows"]
