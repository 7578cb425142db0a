"""Labelled text data for fine-tuning: loading and validation (splits: ``ml.finetune.splits``).

A dataset is a CSV file with ``text`` and ``label`` columns (header names matched
case-insensitively, other columns ignored) or a JSONL file with one ``{"text", "label"}``
object per line, or rows already in memory. ``validate`` reports every problem a user can
fix (as ``errors``) and everything it repaired on its own (as ``warnings``: duplicates,
empty rows, conflicting labels) before any model is loaded. Sizes are bounded (labels,
label length, text length, JSON nesting) so that an upload cannot make every page that
shows the dataset, or the worker that parses it, pay for one hostile file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ml.finetune.splits import Row, Split, class_weights, stratified_split, subsample
from ml.ood import OOS_LABEL  # rows with this label are out-of-scope examples, not a class

__all__ = ["DEFAULT_MAX_BYTES", "MAX_LABELS", "MAX_LABEL_CHARS", "MAX_TEXT_CHARS", "OOS_LABEL", "DatasetInvalid", "Row",
           "Split", "ValidationReport", "class_weights", "load_rows", "rows_hash", "stratified_split",
           "subsample", "validate"]

# 50 MiB of CSV is ~500k short texts: far more than a CPU fine-tune gets through.
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
# Largest/smallest class count above which training needs class weights to be fair.
STRONG_IMBALANCE = 10.0
# Parse errors listed one by one before the rest is summarised as a count.
MAX_LISTED_ERRORS = 10
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
# Distinct labels of one dataset. Intent taxonomies run to a few hundred (CLINC150: 150,
# BANKING77: 77); 1000 leaves room while keeping a dataset's label counts (stored on its
# row, listed on its page) under ~100 KB and the confusion matrix under 10^6 cells.
MAX_LABELS = 1000
# Characters of one label: a class name, not a sentence (and a column on every report).
MAX_LABEL_CHARS = 100
# Characters of one text: 512 tokens (the longest max_length a job may set) is ~2,500
# characters of English; the rest is truncated away, so 10,000 is generous.
MAX_TEXT_CHARS = 10_000


class DatasetInvalid(Exception):
    """A dataset failed validation; ``report`` says why."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__("; ".join(report.errors) or "invalid dataset")
        self.report = report


@dataclass
class ValidationReport:
    """What ``validate`` found.

    Attributes:
        ok: True when there are no errors (warnings are allowed).
        errors: problems that block training.
        warnings: problems repaired automatically or worth a look.
        rows: the clean rows (deduplicated, conflicts and empty rows dropped).
        dropped_empty: rows dropped for an empty text or label.
        duplicates: exact (text, label) repeats dropped.
        conflicts: texts that appeared with more than one label (all their rows dropped).
        label_counts: label -> number of clean rows.
        imbalance_ratio: largest over smallest class count (0 when there are no rows).
        data_hash: sha256 of the file bytes (or of the canonical JSONL of in-memory rows).
        oos_rows: clean rows labelled with the out-of-scope label: examples of what the
            model must abstain on, not a class (not in ``rows`` or ``label_counts``).
    """

    ok: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    dropped_empty: int = 0
    duplicates: int = 0
    conflicts: int = 0
    label_counts: dict[str, int] = field(default_factory=dict)
    imbalance_ratio: float = 0.0
    data_hash: str = ""
    oos_rows: list[Row] = field(default_factory=list)

    def to_dict(self, *, include_rows: bool = False) -> dict[str, Any]:
        """JSON-ready summary (rows left out unless asked: they can be large)."""
        data = asdict(self)
        if not include_rows:
            data.pop("rows")
            data.pop("oos_rows")
        data["n_rows"] = len(self.rows)
        data["n_oos_rows"] = len(self.oos_rows)
        return data


# -- parsing ----------------------------------------------------------------------------
class _Problems:
    """Problems of single lines: listed one by one up to MAX_LISTED_ERRORS, then counted."""

    def __init__(self) -> None:
        self.listed: list[str] = []
        self.count = 0

    def add(self, problem: str) -> None:
        self.count += 1
        if self.count <= MAX_LISTED_ERRORS:
            self.listed.append(problem)

    def errors(self) -> list[str]:
        more = self.count - len(self.listed)
        return self.listed + ([f"... and {more} more bad lines"] if more else [])


def _size_problem(text: str, label: str) -> str | None:
    """Why a row is over the size limits, or None."""
    if len(label) > MAX_LABEL_CHARS:
        return f"label is {len(label)} characters long, over the limit of {MAX_LABEL_CHARS}"
    if len(text) > MAX_TEXT_CHARS:
        return f"text is {len(text)} characters long, over the limit of {MAX_TEXT_CHARS}"
    return None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return str(value)
    return value.strip() if isinstance(value, str) else ""


def _is_jsonl(path: Path | None, text: str) -> bool:
    if path is not None and path.suffix.lower() in JSONL_SUFFIXES:
        return True
    if path is not None and path.suffix.lower() in {".csv", ".tsv", ".txt"}:
        return False
    return text.lstrip().startswith("{")  # sniff: a JSONL file starts with an object


def _parse_csv(text: str) -> tuple[list[Row], list[str], int]:
    first_line = text.split("\n", 1)[0]
    # Tab-separated only when the header says so; csv.Sniffer guesses wrong on prose.
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return [], ["file is empty"], 0
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    missing = [c for c in ("text", "label") if c not in names]
    if missing:
        return [], [f"missing column(s) {', '.join(missing)}: the header must name 'text' "
                    f"and 'label' columns (found: {', '.join(h.strip() for h in header) or 'none'})"], 0
    ti, li = names.index("text"), names.index("label")
    rows: list[Row] = []
    problems = _Problems()
    dropped = 0
    try:
        for record in reader:
            if not any(c.strip() for c in record):
                continue  # blank line
            text_v = _cell(record[ti]) if ti < len(record) else ""
            label_v = _cell(record[li]) if li < len(record) else ""
            too_big = _size_problem(text_v, label_v)
            if too_big:
                problems.add(f"line {reader.line_num}: {too_big}")
            elif text_v and label_v:
                rows.append((text_v, label_v))
            else:
                dropped += 1
    except csv.Error as exc:
        return rows, [*problems.errors(), f"malformed CSV at line {reader.line_num}: {exc}"], dropped
    return rows, problems.errors(), dropped


def _parse_jsonl(text: str) -> tuple[list[Row], list[str], int]:
    rows: list[Row] = []
    problems = _Problems()
    dropped = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        problem = None
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problem = f"line {number}: malformed JSON ({exc.msg} at column {exc.colno})"
        except RecursionError:  # e.g. 100k "[": the C decoder recurses once per level
            problem = f"line {number}: JSON nested too deeply (arrays or objects within each other)"
        else:
            if not isinstance(obj, dict):
                problem = f"line {number}: expected a JSON object, got {type(obj).__name__}"
            else:
                keys = {str(k).lower(): v for k, v in obj.items()}
                missing = [k for k in ("text", "label") if k not in keys]
                if missing:
                    problem = f"line {number}: missing key(s) {', '.join(missing)}"
                else:
                    text_v, label_v = _cell(keys["text"]), _cell(keys["label"])
                    too_big = _size_problem(text_v, label_v)
                    if too_big:
                        problem = f"line {number}: {too_big}"
                    elif text_v and label_v:
                        rows.append((text_v, label_v))
                    else:
                        dropped += 1
        if problem:
            problems.add(problem)
    return rows, problems.errors(), dropped


def _parse_bytes(raw: bytes, path: Path | None) -> tuple[list[Row], list[str], int]:
    """Decodes (strict UTF-8, BOM allowed) and parses; returns rows, errors, empty rows."""
    if not raw.strip():
        return [], ["file is empty"], 0
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [f"file is not UTF-8: invalid byte 0x{raw[exc.start]:02x} at byte offset "
                    f"{exc.start}; save it as UTF-8"], 0
    parse = _parse_jsonl if _is_jsonl(path, text) else _parse_csv
    rows, errors, dropped = parse(text)
    if not errors and not rows and not dropped:
        errors.append("file is empty: no data rows after the header")
    return rows, errors, dropped


def load_rows(path: str | Path) -> list[Row]:
    """Reads ``(text, label)`` rows from a CSV or JSONL file (format from suffix or content).

    Args:
        path: the file.

    Returns:
        Rows with stripped text and label, empty ones skipped (no deduplication).

    Raises:
        DatasetInvalid: the file cannot be parsed (its report lists why).
    """
    path = Path(path)
    raw = path.read_bytes()
    rows, errors, dropped = _parse_bytes(raw, path)
    if errors:
        raise DatasetInvalid(ValidationReport(ok=False, errors=errors, dropped_empty=dropped,
                                              data_hash=hashlib.sha256(raw).hexdigest()))
    return rows


def rows_hash(rows: Sequence[Row]) -> str:
    """sha256 of rows as canonical JSONL (the data hash of in-memory datasets)."""
    digest = hashlib.sha256()
    for text, label in rows:
        digest.update(json.dumps({"text": text, "label": label}, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


# -- validation -------------------------------------------------------------------------
def _dedupe(rows: Sequence[Row]) -> tuple[list[Row], int, int]:
    """Drops exact repeats and every row of a text seen with two labels.

    Texts are compared after collapsing whitespace, so "a  b" and "a b" are one text.
    """
    labels_of: dict[str, set[str]] = defaultdict(set)
    for text, label in rows:
        labels_of[" ".join(text.split())].add(label)
    seen: set[tuple[str, str]] = set()
    clean: list[Row] = []
    duplicates = 0
    for text, label in rows:
        key = " ".join(text.split())
        if len(labels_of[key]) > 1:
            continue
        if (key, label) in seen:
            duplicates += 1
            continue
        seen.add((key, label))
        clean.append((text, label))
    conflicts = sum(1 for labels in labels_of.values() if len(labels) > 1)
    return clean, duplicates, conflicts


def validate(
    source: str | Path | Sequence[Row],
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    expected_labels: set[str] | None = None,
    min_per_class: int = 2,
    oos_label: str | None = OOS_LABEL,
) -> ValidationReport:
    """Checks a dataset before training and returns its clean rows.

    Errors: file over ``max_bytes``, empty file, non-UTF-8 bytes (with the byte offset),
    missing ``text``/``label`` columns, malformed or too deeply nested JSONL lines and
    labels over MAX_LABEL_CHARS or texts over MAX_TEXT_CHARS characters (with line
    numbers), more than MAX_LABELS labels, fewer than two classes, labels that differ
    from ``expected_labels``. Warnings: dropped
    duplicates, empty rows and conflicting labels, classes under ``min_per_class`` rows,
    imbalance over 10:1.

    Args:
        source: a CSV/JSONL path or ``(text, label)`` rows.
        max_bytes: size limit of a file (None: no limit).
        expected_labels: the label set of the model being retrained, if any.
        min_per_class: fewer rows than this in a class is reported as tiny.
        oos_label: rows with this label are out-of-scope examples, set aside in
            ``oos_rows`` (None: every label is a class). A dataset of nothing else is refused.

    Returns:
        The ValidationReport (``ok`` False when there are errors).
    """
    errors: list[str] = []
    dropped = 0
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            return ValidationReport(ok=False, errors=[f"no such file: {path}"])
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            return ValidationReport(ok=False, errors=[
                f"file is {size} bytes, over the limit of {max_bytes} bytes"])
        raw = path.read_bytes()
        data_hash = hashlib.sha256(raw).hexdigest()
        parsed, errors, dropped = _parse_bytes(raw, path)
    else:
        parsed = []
        problems = _Problems()
        for number, (text, label) in enumerate(source, start=1):
            text_v, label_v = _cell(text), _cell(label)
            too_big = _size_problem(text_v, label_v)
            if too_big:
                problems.add(f"row {number}: {too_big}")
            elif text_v and label_v:
                parsed.append((text_v, label_v))
            else:
                dropped += 1
        data_hash = rows_hash(parsed)
        errors = problems.errors()
        if not parsed and not errors:
            errors.append("no rows")
    rows, duplicates, conflicts = _dedupe(parsed)
    oos_rows = [r for r in rows if oos_label is not None and r[1] == oos_label]
    if oos_rows:
        rows = [r for r in rows if r[1] != oos_label]
        if not rows:
            errors.append(f"every row is labelled {oos_label!r}, the out-of-scope label: out-of-scope rows "
                          "are examples to abstain on, not a class; add rows of at least two real labels")
    counts = dict(sorted(Counter(label for _, label in rows).items()))
    if len(counts) > MAX_LABELS:
        # The counts are left out of the report: listing them is what the limit prevents.
        errors.append(f"{len(counts)} distinct labels, over the limit of {MAX_LABELS}; "
                      "is the label column the right one?")
        counts = {}
    report = ValidationReport(ok=False, errors=errors, rows=rows, dropped_empty=dropped,
                              duplicates=duplicates, conflicts=conflicts, label_counts=counts,
                              data_hash=data_hash, oos_rows=oos_rows)
    if counts:
        report.imbalance_ratio = max(counts.values()) / min(counts.values())
    if not errors:
        _check_labels(report, expected_labels, min_per_class)
    if dropped:
        report.warnings.append(f"{dropped} row(s) with an empty text or label dropped")
    if duplicates:
        report.warnings.append(f"{duplicates} duplicate row(s) dropped")
    if oos_rows:
        report.warnings.append(f"{len(oos_rows)} row(s) labelled {oos_label!r} kept aside as out-of-scope examples "
                               "(for the abstention threshold, not a class)")
    if conflicts:
        report.warnings.append(
            f"{conflicts} text(s) had conflicting labels; all their rows were dropped")
    report.ok = not report.errors
    return report


def _check_labels(report: ValidationReport, expected: set[str] | None, min_per_class: int) -> None:
    counts = report.label_counts
    if len(counts) < 2:
        found = next(iter(counts), None)
        report.errors.append(
            "only one class" + (f" ({found!r})" if found else "") + ": a classifier needs at least two")
    if expected is not None:
        unknown = sorted(set(counts) - set(expected))
        absent = sorted(set(expected) - set(counts))
        if unknown:
            report.errors.append(f"labels not in the model's label set: {', '.join(unknown)} "
                                 f"(expected: {', '.join(sorted(expected))})")
        if absent:
            report.errors.append(f"labels of the model missing from the data: {', '.join(absent)}")
    tiny = sorted(label for label, n in counts.items() if n < min_per_class)
    if tiny:
        report.warnings.append(f"tiny class(es) with fewer than {min_per_class} rows: {', '.join(tiny)}")
    if report.imbalance_ratio > STRONG_IMBALANCE:
        report.warnings.append(
            f"strong imbalance: largest class is {report.imbalance_ratio:.1f}x the smallest "
            "(class weighting compensates)")
