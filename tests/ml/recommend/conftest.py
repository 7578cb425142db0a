"""A toy shop with known answers: two mug buyers, two toy buyers, fake 4-d embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from ml.recommend import Catalogue, Interaction

DAY = 86_400.0
ITEMS = ["mug_red", "mug_blue", "mug_green", "toy_car", "toy_bus", "lamp"]
CATEGORIES = {"mug_red": "mugs", "mug_blue": "mugs", "mug_green": "mugs", "toy_car": "toys", "toy_bus": "toys",
              "lamp": "lamps"}
# Mugs point along x, toys along y, the lamp along z; within a group items differ a little.
EMBEDDINGS = np.array([
    [1.0, 0.0, 0.0, 0.0],
    [0.95, 0.05, 0.0, 0.0],
    [0.9, 0.0, 0.1, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.05, 0.95, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
], dtype=np.float32)
EMBEDDINGS /= np.linalg.norm(EMBEDDINGS, axis=1, keepdims=True)


def buy(user: str, item: str, day: float, kind: str = "purchase") -> Interaction:
    return Interaction(user=user, item=item, kind=kind, ts=day * DAY)


@pytest.fixture
def catalogue() -> Catalogue:
    return Catalogue(items=list(ITEMS), categories=dict(CATEGORIES), available=set(ITEMS),
                     embeddings=EMBEDDINGS.copy())


@pytest.fixture
def events() -> list[Interaction]:
    return [
        buy("ann", "mug_red", 1), buy("ann", "mug_blue", 1),
        buy("bob", "mug_red", 2), buy("bob", "mug_blue", 2), buy("bob", "mug_green", 3),
        buy("cat", "toy_car", 4), buy("cat", "toy_bus", 4),
        buy("dan", "toy_car", 5), buy("dan", "toy_bus", 5),
        buy("eve", "mug_red", 6),
    ]
