"""The fast ranking paths against brute force: top rows, inner products, popularity's walk."""

from __future__ import annotations

import numpy as np
import pytest

from ml.recommend import Catalogue, Filters, Interaction, PopularityRecommender
from ml.recommend.base import inner_products, top_rows
from ml.recommend.blend import blend_lists
from ml.recommend.types import Reason, Scored


def _brute_top(scores: np.ndarray, k: int, mask: np.ndarray) -> list[int]:
    allowed = [r for r in range(len(scores)) if mask[r] and np.isfinite(scores[r])]
    return sorted(allowed, key=lambda r: (-scores[r], r))[:k]


@pytest.mark.parametrize("seed", range(6))
def test_top_rows_matches_brute_force_with_ties_masks_and_gaps(seed):
    rng = np.random.default_rng(seed)
    n = 3000
    scores = rng.integers(0, 40, size=n).astype(np.float64)  # many ties
    scores[rng.random(n) < 0.3] = -np.inf
    scores[rng.random(n) < 0.01] = np.nan
    mask = rng.random(n) < 0.8
    for k in (1, 7, 100, 2500, 5000):
        assert top_rows(scores, k, mask).tolist() == _brute_top(scores, k, mask)
    sparse = np.full(n, -np.inf)
    sparse[[5, 9, 700]] = [0.2, 0.9, 0.2]
    assert top_rows(sparse, 10).tolist() == [9, 5, 700]


def test_inner_products_equal_numpys_and_check_the_dimension():
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((500, 24)).astype(np.float32)
    vector = rng.standard_normal(24).astype(np.float32)
    assert inner_products(matrix, vector) == pytest.approx(matrix @ vector, abs=1e-4)
    assert inner_products(matrix[:, :8], vector[:8]) == pytest.approx(matrix[:, :8] @ vector[:8], abs=1e-4)
    assert len(inner_products(np.empty((0, 24), np.float32), vector)) == 0
    with pytest.raises(ValueError, match="dimensions"):
        inner_products(matrix, vector[:5])


def _shop(rng: np.random.Generator, n_items: int = 400, n_categories: int = 6):
    items = [f"i{n}" for n in range(n_items)]
    categories = {item: f"c{rng.integers(0, n_categories)}" for item in items if rng.random() < 0.9}
    catalogue = Catalogue(items=items, categories=categories, available={i for i in items if rng.random() < 0.85})
    events = [
        Interaction(
            user=f"u{rng.integers(0, 50)}",
            item=items[int(rng.zipf(1.3)) % n_items],
            kind=str(rng.choice(["view", "cart", "purchase"])),
            ts=float(rng.integers(0, 90)) * 86_400,
        )
        for _ in range(3000)
    ]
    return catalogue, events


def _brute_popular(
    pop: PopularityRecommender, catalogue: Catalogue, k: int, history: list[Interaction], filters: Filters
) -> list[tuple[str, float, str]]:
    """The rule written out: score x (1 + boost x the history's share of the item's category)."""
    scores = pop.item_scores()
    touched: dict[str, float] = {}
    for event in history:
        category = catalogue.categories.get(event.item)
        if category is not None:
            touched[category] = touched.get(category, 0.0) + event.strength
    total = sum(touched.values())
    seen = {e.item for e in history}
    rows = []
    for item, score in scores.items():
        category = catalogue.categories.get(item)
        if item in seen or item not in catalogue.available:
            continue
        if filters.include_categories is not None and category not in filters.include_categories:
            continue
        if category in filters.exclude_categories:
            continue
        lift = pop.category_boost * touched.get(category, 0.0) / total if total else 0.0
        rows.append((item, score * (1 + lift), "popular_in_category" if lift > 0 else pop.reason_kind))
    position = {item: n for n, item in enumerate(catalogue.items)}
    return sorted(rows, key=lambda row: (-row[1], position[row[0]]))[:k]


@pytest.mark.parametrize("seed", range(4))
def test_popularity_walk_equals_ranking_the_whole_catalogue(seed):
    rng = np.random.default_rng(seed)
    catalogue, events = _shop(rng)
    pop = PopularityRecommender(half_life_days=20, category_boost=2.0)
    pop.fit(events, catalogue)
    histories = [[], events[:3], [e for e in events if e.user == "u1"], events[10:40]]
    filter_sets = [
        Filters(),
        Filters(include_categories=frozenset({"c2"})),
        Filters(exclude_categories=frozenset({"c0", "c1"})),
    ]
    for history in histories:
        for filters in filter_sets:
            for k in (1, 10, 150):
                got = [
                    (s.item, s.score, s.reason.kind) for s in pop.recommend("u", k, history=history, filters=filters)
                ]
                want = _brute_popular(pop, catalogue, k, history, filters)
                assert [g[0] for g in got] == [w[0] for w in want]
                assert [g[1] for g in got] == pytest.approx([w[1] for w in want])
                assert [g[2] for g in got] == [w[2] for w in want]


def test_popularity_similar_is_the_category_by_popularity(catalogue, events):
    pop = PopularityRecommender(half_life_days=0)
    pop.fit(events, catalogue)
    similar = pop.similar("mug_green", 5, exclude={"mug_blue"})
    assert [s.item for s in similar] == ["mug_red"]
    assert all(s.reason.category == "mugs" for s in similar)


def test_blend_lists_keeps_each_members_share_and_they_sum_to_the_score():
    lists = {
        "content": [Scored("a", 0.9, Reason("similar_to", "x")), Scored("b", 0.5, Reason("similar_to", "x"))],
        "cooccurrence": [Scored("b", 7.0, Reason("co_bought", "x")), Scored("c", 1.0, Reason("co_bought", "x"))],
        "als": [Scored("a", 3.0, Reason("popular"))],
    }
    blended = blend_lists(lists, {"content": 1.0, "cooccurrence": 0.5, "als": 0.0})

    assert [(s.item, s.score) for s in blended] == [("a", 1.0), ("b", 0.5), ("c", 0.0)]
    assert blended[1].parts == {"content": 0.0, "cooccurrence": 0.5}
    assert blended[1].reason.kind == "co_bought"  # the larger share gives the reason
    assert all(s.score == pytest.approx(sum(s.parts.values())) for s in blended)
    assert "als" not in blended[0].parts
