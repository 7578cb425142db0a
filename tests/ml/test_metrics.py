"""Evaluation metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from ml.metrics import classification_report, mrr, ndcg_at_k, ranking_report, recall_at_k


def test_classification_report_by_hand():
    # gold: a a a b b c ; predicted: a a b b c c
    # a: P=2/2 R=2/3 F1=0.8 | b: P=1/2 R=1/2 F1=0.5 | c: P=1/2 R=1/1 F1=2/3
    report = classification_report(list("aaabbc"), list("aabbcc"), labels=["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert report["per_class"]["b"]["f1"] == pytest.approx(0.5)
    assert report["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report["support"] == 6


def test_macro_f1_ignores_labels_absent_from_gold():
    report = classification_report(["a", "a"], ["a", "a"], labels=["a", "b"])
    assert report["macro_f1"] == pytest.approx(1.0)
    assert report["per_class"]["b"]["support"] == 0


def test_classification_report_edge_cases():
    assert classification_report([], [], labels=["a"])["support"] == 0
    with pytest.raises(ValueError, match="2 gold labels but 1 predictions"):
        classification_report(["a", "b"], ["a"], labels=["a", "b"])


def test_ranking_metrics_by_hand():
    ranked = [5, 1, 7, 3, 9]
    relevant = {1, 3, 4}
    assert recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, relevant, 5) == pytest.approx(2 / 3)
    # hits at ranks 2 and 4 -> DCG = 1/log2(3) + 1/log2(5); ideal (3 relevant) = 1 + 1/log2(3) + 1/log2(4)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, relevant, 5) == pytest.approx(dcg / ideal)
    assert mrr(ranked, relevant) == pytest.approx(1 / 2)
    assert mrr(ranked, {42}) == 0.0
    assert recall_at_k(ranked, set(), 5) == 0.0 and ndcg_at_k(ranked, set(), 5) == 0.0


def test_perfect_list_scores_one():
    assert ndcg_at_k([1, 2, 3], {1, 2}, 3) == pytest.approx(1.0)
    assert recall_at_k([1, 2, 3], {1, 2}, 2) == 1.0


def test_ranking_report_averages_users():
    report = ranking_report([[1, 2], [3, 4]], [{2}, {9}], ks=(1, 2))
    assert report["recall@1"] == 0.0
    assert report["recall@2"] == pytest.approx(0.5)
    assert report["ndcg@2"] == pytest.approx((1 / math.log2(3)) / 2)
    assert report["mrr"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="one relevant set"):
        ranking_report([[1]], [])
