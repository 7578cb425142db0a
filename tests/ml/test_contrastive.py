"""The SetFit-style contrastive stage on the real MiniLM encoder: classes separate, folder loads.

Kept small for CI on one CPU thread: 60 templated rows, 96 pairs, 6 steps of 16 pairs (separation gap 0.17 -> 0.34).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from ml.finetune.contrastive import contrastive_stage, make_pairs

# Three intents whose wording overlaps on purpose ("my card", "payment"), so the frozen
# encoder mixes them and the stage has something to separate.
TEMPLATES = {
    "card_lost": ["I lost {x}", "{x} was stolen", "cannot find {x} anywhere", "someone took {x}"],
    "card_declined": ["{x} was declined", "{x} got rejected at the shop", "why does {x} not work",
                      "payment with {x} failed"],
    "card_fee": ["why was I charged a fee on {x}", "extra charge on {x}", "what does {x} cost per year",
                 "fee for using {x} abroad"],
}
OBJECTS = ["my card", "my debit card", "my credit card", "the card", "my new card", "my visa card",
           "my mastercard", "my virtual card", "my contactless card", "my bank card"]


def _rows(objects: list[str]) -> list[tuple[str, str]]:
    return [(t.format(x=x), label) for label, ts in TEMPLATES.items() for t in ts for x in objects]


def _separation(model_dir: Path, rows: list[tuple[str, str]]) -> float:
    """Mean within-class cosine minus mean between-class cosine of normalised embeddings."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    emb = model.encode([t for t, _ in rows], normalize_embeddings=True, convert_to_numpy=True)
    labels = np.array([label for _, label in rows])
    sims = emb @ emb.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(rows), dtype=bool)
    return float(sims[same & off_diagonal].mean() - sims[~same].mean())


def test_stage_separates_classes_on_held_out_sentences(tmp_path):
    from ml.defaults import embedder_weights

    # given: training rows with half the objects, held-out rows with the other half
    rng = random.Random(0)
    objects = OBJECTS[:]
    rng.shuffle(objects)
    train, held_out = _rows(objects[:5]), _rows(objects[5:])
    base = Path(embedder_weights())

    # when: the contrastive stage runs on the training rows
    out = contrastive_stage(base, train, pairs=96, epochs=1, seed=0, out_dir=tmp_path / "enc",
                            max_length=32, learning_rate=5e-5)

    # then: a sentence-transformers folder that also loads as a classifier base, on which
    # held-out sentences of one class are closer together relative to other classes
    assert (out / "modules.json").is_file()
    assert (out / "config.json").is_file()
    before, after = _separation(base, held_out), _separation(out, held_out)
    assert after > before + 0.05, (before, after)


def test_pairs_are_balanced_and_reproducible():
    rows = _rows(OBJECTS[:3]) + [("only one text here", "rare")]
    pairs = make_pairs(rows, 101, seed=7)
    assert len(pairs) == 101
    assert sum(p.similar for p in pairs) == 50
    label_of = dict(rows)
    for p in pairs:
        assert (label_of[p.first] == label_of[p.second]) == (p.similar == 1.0)
        assert p.first != p.second
    assert pairs == make_pairs(rows, 101, seed=7)
    assert pairs != make_pairs(rows, 101, seed=8)


@pytest.mark.parametrize(("rows", "kwargs", "message"), [
    ([("a", "x"), ("b", "x")], {}, "at least two labels"),
    ([("a", "x"), ("b", "y")], {}, "two different texts"),
    ([("a", "x"), ("b", "x"), ("c", "y")], {"loss": "triplet"}, "loss must be one of"),
    ([("a", "x"), ("b", "x"), ("c", "y")], {"pairs": 1}, "pairs must be"),
])
def test_bad_input_is_refused_before_training(rows, kwargs, message, tmp_path):
    from ml.defaults import embedder_weights

    with pytest.raises(ValueError, match=message):
        contrastive_stage(embedder_weights(), rows, out_dir=tmp_path / "enc", **kwargs)
    assert not (tmp_path / "enc").exists()
