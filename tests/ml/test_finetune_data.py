"""Dataset loading and validation: every bad input gets its own, specific error."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from ml.finetune.data import (
    MAX_LABEL_CHARS,
    MAX_LABELS,
    MAX_TEXT_CHARS,
    DatasetInvalid,
    class_weights,
    load_rows,
    rows_hash,
    stratified_split,
    subsample,
    validate,
)


def _csv(tmp_path, body: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def _rows(n_per_class: dict[str, int]) -> list[tuple[str, str]]:
    return [(f"{label} example number {i}", label)
            for label, n in n_per_class.items() for i in range(n)]


def test_csv_with_extra_columns_and_upper_case_header_loads(tmp_path):
    # given a CSV whose header has other columns and different case
    path = _csv(tmp_path, 'id,Text,LABEL\n1,"Where is, my parcel?",shipping\n2,refund please,refund\n')

    # when it is read, then only text and label are kept
    assert load_rows(path) == [("Where is, my parcel?", "shipping"), ("refund please", "refund")]


def test_jsonl_is_detected_by_suffix_and_by_content(tmp_path):
    lines = "\n".join(json.dumps({"text": f"t{i}", "label": "ab"[i % 2], "x": 1}) for i in range(4))
    assert len(load_rows(_csv(tmp_path, lines, "d.jsonl"))) == 4
    assert len(load_rows(_csv(tmp_path, lines, "upload.dat"))) == 4  # sniffed: starts with "{"


def test_wrong_columns_is_an_error_naming_them(tmp_path):
    report = validate(_csv(tmp_path, "sentence,category\nhello,greeting\nbye,goodbye\n"))
    assert not report.ok
    assert "missing column(s) text, label" in report.errors[0]
    assert "sentence" in report.errors[0]


@pytest.mark.parametrize("body", ["", "   \n\n", "text,label\n"])
def test_empty_file_is_an_error(tmp_path, body):
    report = validate(_csv(tmp_path, body))
    assert not report.ok
    assert report.errors[0].startswith("file is empty")


def test_single_class_is_an_error(tmp_path):
    report = validate(_csv(tmp_path, "text,label\na,x\nb,x\nc,x\n"))
    assert not report.ok
    assert report.errors == ["only one class ('x'): a classifier needs at least two"]


def test_non_utf8_reports_the_byte_offset(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncaf\u00e9,x\n".encode("latin-1"))  # é is 0xe9 at byte 14
    report = validate(path)
    assert not report.ok
    assert "not UTF-8" in report.errors[0]
    assert "byte offset 14" in report.errors[0]
    assert "0xe9" in report.errors[0]


def test_malformed_jsonl_lines_are_listed_with_numbers(tmp_path):
    body = '{"text": "a", "label": "x"}\n{"text": "b", "label": \n[1, 2]\n{"text": "c"}\n'
    report = validate(_csv(tmp_path, body, "d.jsonl"))
    assert not report.ok
    assert report.errors[0].startswith("line 2: malformed JSON")
    assert report.errors[1] == "line 3: expected a JSON object, got list"
    assert report.errors[2] == "line 4: missing key(s) label"


@pytest.mark.parametrize("opener", ["[", '{"a":'], ids=["arrays", "objects"])
def test_deeply_nested_jsonl_is_an_error_naming_the_line(tmp_path, opener):
    # given a JSONL file whose second line nests 100 000 levels deep (json.loads would
    # raise RecursionError)
    body = '{"text": "a", "label": "x"}\n' + opener * 100_000 + "\n" + '{"text": "b", "label": "y"}\n'
    # when it is validated, then the line is named and nothing is kept from it
    report = validate(_csv(tmp_path, body, "deep.jsonl"))
    assert not report.ok
    assert report.errors == ["line 2: JSON nested too deeply (arrays or objects within each other)"]
    assert len(report.rows) == 2


def test_label_over_the_length_limit_is_an_error_naming_the_line(tmp_path):
    long_label = "x" * (MAX_LABEL_CHARS + 1)
    path = _csv(tmp_path, f"text,label\nhello,a\nbye,b\nagain,{long_label}\n")
    report = validate(path)
    assert not report.ok
    assert report.errors == [f"line 4: label is {MAX_LABEL_CHARS + 1} characters long, "
                             f"over the limit of {MAX_LABEL_CHARS}"]
    # a label at the limit is fine
    assert validate(_csv(tmp_path, f"text,label\nhello,{'y' * MAX_LABEL_CHARS}\nbye,b\n", "ok.csv")).ok


def test_text_over_the_length_limit_is_an_error_naming_the_line(tmp_path):
    body = json.dumps({"text": "w" * (MAX_TEXT_CHARS + 1), "label": "a"}) + "\n" + '{"text": "b", "label": "c"}\n'
    report = validate(_csv(tmp_path, body, "long.jsonl"))
    assert not report.ok
    assert report.errors == [
        f"line 1: text is {MAX_TEXT_CHARS + 1} characters long, over the limit of {MAX_TEXT_CHARS}"]


def test_rows_in_memory_are_checked_by_row_number():
    report = validate([("hello", "a"), ("bye", "b" * (MAX_LABEL_CHARS + 5))])
    assert not report.ok
    assert report.errors[0].startswith("row 2: label is")


def test_too_many_distinct_labels_is_an_error_without_listing_them(tmp_path):
    # given one more label than allowed (two rows each, so every class is trainable)
    lines = [f"text {i} {k},label-{i}" for i in range(MAX_LABELS + 1) for k in range(2)]
    report = validate(_csv(tmp_path, "text,label\n" + "\n".join(lines) + "\n"))
    assert not report.ok
    assert report.errors == [f"{MAX_LABELS + 1} distinct labels, over the limit of {MAX_LABELS}; "
                             "is the label column the right one?"]
    assert report.label_counts == {}  # a rejected report stays small
    # and exactly the limit passes
    at_limit = [line for line in lines if not line.endswith(f"label-{MAX_LABELS}")]
    assert validate(_csv(tmp_path, "text,label\n" + "\n".join(at_limit) + "\n", "ok.csv")).ok


def test_many_oversized_lines_are_listed_up_to_ten_then_counted(tmp_path):
    long = "z" * (MAX_LABEL_CHARS + 1)
    body = "text,label\n" + "".join(f"row {i},{long}\n" for i in range(15)) + "a,b\nc,d\n"
    report = validate(_csv(tmp_path, body))
    assert len(report.errors) == 11
    assert report.errors[-1] == "... and 5 more bad lines"


def test_file_over_the_size_limit_is_an_error(tmp_path):
    path = _csv(tmp_path, "text,label\n" + "hello world,x\nbye world,y\n" * 100)
    report = validate(path, max_bytes=1000)
    assert not report.ok
    assert "over the limit of 1000 bytes" in report.errors[0]


def test_labels_not_matching_the_model_are_errors(tmp_path):
    rows = _rows({"refund": 3, "shipping": 3, "lottery": 2})
    report = validate(rows, expected_labels={"refund", "shipping", "account"})
    assert not report.ok
    assert any("not in the model's label set: lottery" in e for e in report.errors)
    assert any("missing from the data: account" in e for e in report.errors)


def test_duplicates_and_conflicts_are_dropped_and_reported():
    # given exact repeats (also differing only in spacing), a text with two labels, an empty row
    rows = [("where is my parcel", "shipping"), ("where is  my parcel", "shipping"),
            ("refund me", "refund"), ("refund me", "refund"), ("cancel it", "refund"),
            ("cancel it", "shipping"), ("", "refund"), ("money back", "refund"),
            ("track it", "shipping")]

    report = validate(rows)

    assert report.ok
    assert report.duplicates == 2
    assert report.conflicts == 1
    assert report.dropped_empty == 1
    assert sorted(report.rows) == sorted([("where is my parcel", "shipping"), ("refund me", "refund"),
                                          ("money back", "refund"), ("track it", "shipping")])
    assert report.label_counts == {"refund": 2, "shipping": 2}
    assert any("2 duplicate row(s) dropped" in w for w in report.warnings)
    assert any("conflicting labels" in w for w in report.warnings)
    assert report.to_dict()["n_rows"] == 4
    assert "rows" not in report.to_dict()


def test_imbalance_and_tiny_classes_are_warnings(tmp_path):
    report = validate(_rows({"big": 40, "small": 3, "tiny": 1}))
    assert report.ok
    assert report.imbalance_ratio == 40.0
    assert any("strong imbalance" in w for w in report.warnings)
    assert any("tiny class(es) with fewer than 2 rows: tiny" in w for w in report.warnings)


def test_data_hash_is_the_sha256_of_the_file_bytes(tmp_path):
    import hashlib

    path = _csv(tmp_path, "text,label\na,x\nb,y\n")
    assert validate(path).data_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert validate([("a", "x"), ("b", "y")]).data_hash == rows_hash([("a", "x"), ("b", "y")])


def test_stratified_split_keeps_proportions_and_every_class_in_train():
    rows = _rows({"a": 100, "b": 50, "c": 10, "d": 2, "e": 1})
    split = stratified_split(rows, dev_fraction=0.1, test_fraction=0.1, seed=3)

    assert sorted(split.train + split.dev + split.test) == sorted(rows)
    assert {label for _, label in split.train} == {"a", "b", "c", "d", "e"}
    test_counts = Counter(label for _, label in split.test)
    assert test_counts["a"] == pytest.approx(10, abs=1)
    assert test_counts["b"] == pytest.approx(5, abs=1)
    assert split == stratified_split(rows, dev_fraction=0.1, test_fraction=0.1, seed=3)  # seeded


def test_split_with_more_classes_than_held_out_rows_still_trains_every_class():
    rows = _rows({f"c{i}": 3 for i in range(30)})  # 90 rows, 9 test rows < 30 classes
    split = stratified_split(rows, 0.1, 0.1, seed=0)
    assert {label for _, label in split.train} == {f"c{i}" for i in range(30)}
    assert len(split.test) == 9
    assert len(split.dev) == 9


def test_subsample_keeps_every_class():
    rows = _rows({"a": 200, "b": 5, "c": 1})
    picked = subsample(rows, 20, seed=1)
    assert len(picked) == 20
    assert {label for _, label in picked} == {"a", "b", "c"}


def test_class_weights_are_inverse_frequency_with_mean_one_per_row():
    labels = ["a"] * 30 + ["b"] * 10
    weights = class_weights(labels, ["a", "b", "unseen"])
    assert weights[1] == pytest.approx(3 * weights[0])
    assert (30 * weights[0] + 10 * weights[1]) / 40 == pytest.approx(1.0)
    assert weights[2] == 1.0


def test_load_rows_raises_with_the_report(tmp_path):
    with pytest.raises(DatasetInvalid) as invalid:
        load_rows(_csv(tmp_path, "foo,bar\n1,2\n"))
    assert "missing column(s)" in str(invalid.value)
    assert invalid.value.report.ok is False
