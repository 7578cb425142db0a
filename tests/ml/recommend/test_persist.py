from __future__ import annotations

import pytest

from ml import recommend
from ml.recommend import ALSRecommender, Blend, ContentRecommender, CoOccurrenceRecommender, Diversity
from ml.recommend import PopularityRecommender as Popularity
from ml.recommend.persist import POINTER, current_version

from .conftest import buy


def test_save_load_round_trip_gives_the_same_answers(tmp_path, catalogue, events):
    members = [ContentRecommender(), CoOccurrenceRecommender(), ALSRecommender(factors=4, iterations=5),
               Popularity(half_life_days=7)]
    blend = Blend({"content": 1.0, "cooccurrence": 0.5, "als": 0.5, "popularity": 0.2}, members,
                  diversity=Diversity(max_per_category=2))
    blend.fit(events, catalogue)
    blend.save(tmp_path / "blend")
    loaded = recommend.load(tmp_path / "blend")
    assert isinstance(loaded, Blend) and loaded.weights == blend.weights and loaded.diversity == blend.diversity
    history = [buy("ann", "mug_red", 1), buy("ann", "toy_car", 2, kind="view")]
    for user in ("ann", "bob", None):
        assert loaded.recommend(user, 4, history=history) == blend.recommend(user, 4, history=history)
    assert loaded.similar("mug_red", 3) == blend.similar("mug_red", 3)


def test_save_swaps_versions_atomically_and_keeps_two(tmp_path, catalogue, events):
    pop = Popularity()
    pop.fit(events, catalogue)
    first = pop.save(tmp_path)
    pop.fit(events + [buy("x", "lamp", 9)] * 5, catalogue)
    second = pop.save(tmp_path)
    third = pop.save(tmp_path)
    assert current_version(tmp_path) == third
    assert (tmp_path / POINTER).read_text() == third.name
    assert not first.exists() and second.exists()
    assert not list(tmp_path.glob(".staging-*"))
    assert recommend.load(tmp_path).recommend(None, 1)[0].item == "lamp"


def test_load_of_nothing_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved recommender"):
        recommend.load(tmp_path)
