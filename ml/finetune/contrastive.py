"""SetFit-style contrastive stage: pull same-label sentences together before the head trains.

From labelled rows it draws sentence pairs, half from one label (similar) and half from
two labels (dissimilar), and trains the sentence-transformers encoder on them with
``CosineSimilarityLoss`` (SetFit's default, Tunstall et al. 2022) or, with
``loss="mnrl"``, on the similar pairs alone with ``MultipleNegativesRankingLoss`` (the other
sentences of a batch serve as negatives). The result is an ordinary sentence-transformers
folder, which ``AutoModelForSequenceClassification`` also loads, so the classifier
fine-tune starts from it as from any base encoder.

A hand-written loop over the library's losses rather than ``SentenceTransformerTrainer``:
no ``datasets`` dependency, no logging integrations, a seed that fixes everything.
"""

from __future__ import annotations

import logging
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ml import devices
from ml.artifacts import atomic_replace_dir

__all__ = ["LOSSES", "SentencePair", "contrastive_stage", "make_pairs"]

log = logging.getLogger(__name__)

LOSSES = ("cosine", "mnrl")
DEFAULT_PAIRS = 2000  # SetFit's recipe: ~20 pairs per training sentence on small sets
DEFAULT_LR = 2e-5  # SetFit's body learning rate
DEFAULT_BATCH_SIZE = 16  # 16 pairs x 2 x 64 tokens: ~40 MB of MiniLM activations


@dataclass(frozen=True)
class SentencePair:
    """Two sentences and whether they share a label (1.0) or not (0.0)."""

    first: str
    second: str
    similar: float


def make_pairs(rows: Sequence[tuple[str, str]], pairs: int, *, seed: int = 42) -> list[SentencePair]:
    """Balanced similar / dissimilar pairs drawn from labelled rows.

    Similar pairs draw their label uniformly (not by frequency), so a rare class gets as
    many pairs as a common one; dissimilar pairs draw two different labels the same way.

    Args:
        rows: ``(text, label)`` rows.
        pairs: how many pairs in all (half similar, half dissimilar).
        seed: the draw's seed.

    Returns:
        The pairs, shuffled.

    Raises:
        ValueError: fewer than two labels, no label with two distinct texts, or pairs < 2.
    """
    if pairs < 2:
        raise ValueError(f"pairs must be >= 2, not {pairs}")
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in rows:
        if text not in by_label[label]:
            by_label[label].append(text)
    labels = sorted(by_label)
    if len(labels) < 2:
        raise ValueError(f"a contrastive stage needs at least two labels, got {labels}")
    pairable = [label for label in labels if len(by_label[label]) >= 2]
    if not pairable:
        raise ValueError("no label has two different texts to make a similar pair of")
    rng = random.Random(seed)  # noqa: S311 - seeded for reproducible runs, not a secret
    out: list[SentencePair] = []
    for _ in range(pairs // 2):
        first, second = rng.sample(by_label[rng.choice(pairable)], 2)
        out.append(SentencePair(first, second, 1.0))
    for _ in range(pairs - pairs // 2):
        one, other = rng.sample(labels, 2)
        out.append(SentencePair(rng.choice(by_label[one]), rng.choice(by_label[other]), 0.0))
    rng.shuffle(out)
    return out


def contrastive_stage(
    base_model_dir: str | Path,
    rows: Sequence[tuple[str, str]],
    *,
    out_dir: str | Path,
    pairs: int = DEFAULT_PAIRS,
    epochs: int = 1,
    seed: int = 42,
    loss: str = "cosine",
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float = DEFAULT_LR,
    max_length: int = 64,
) -> Path:
    """Trains the encoder on sentence pairs from ``rows`` and saves it.

    Args:
        base_model_dir: a local sentence-transformers folder (e.g. the bundled MiniLM).
        rows: labelled ``(text, label)`` training rows (never the dev or test rows).
        out_dir: where the trained sentence-transformers folder goes (replaced atomically).
        pairs: sentence pairs to draw (half similar, half dissimilar).
        epochs: passes over the pairs.
        seed: seeds the pair draw, the batch order and torch.
        loss: ``cosine`` (CosineSimilarityLoss on all pairs) or ``mnrl``
            (MultipleNegativesRankingLoss on the similar pairs).
        batch_size: pairs per optimizer step.
        learning_rate: peak AdamW rate (linear warmup over 10% of the steps, linear decay).
        max_length: tokens per sentence.

    Returns:
        ``out_dir``.

    Raises:
        ValueError: unknown loss, epochs < 1, or rows that cannot make pairs.
        FileNotFoundError: ``base_model_dir`` is not a directory.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {loss!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, not {epochs}")
    base = Path(base_model_dir)
    if not base.is_dir():
        raise FileNotFoundError(f"base model {base} is not a local directory")
    drawn = make_pairs(rows, pairs, seed=seed)
    if loss == "mnrl":
        drawn = [p for p in drawn if p.similar == 1.0]

    from sentence_transformers import SentenceTransformer, losses
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    device = devices.current().device
    model = SentenceTransformer(str(base), device=device, local_files_only=True)
    model.max_seq_length = max_length
    loss_fn = (losses.CosineSimilarityLoss(model) if loss == "cosine"
               else losses.MultipleNegativesRankingLoss(model))
    steps_per_epoch = math.ceil(len(drawn) / batch_size)
    total = steps_per_epoch * epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * 0.1), total)
    rng = random.Random(seed)  # noqa: S311 - seeded batch order, not a secret
    model.train()
    for epoch in range(epochs):
        order = list(range(len(drawn)))
        rng.shuffle(order)
        loss_sum = 0.0
        for start in range(0, len(order), batch_size):
            batch = [drawn[i] for i in order[start:start + batch_size]]
            features = [_to(model.tokenize([p.first for p in batch]), device),
                        _to(model.tokenize([p.second for p in batch]), device)]
            labels = torch.tensor([p.similar for p in batch], dtype=torch.float32, device=device)
            value = loss_fn(features, labels)
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += float(value.detach()) * len(batch)
        log.info("contrastive epoch %d/%d: %d pairs, mean loss %.4f", epoch + 1, epochs, len(drawn),
                 loss_sum / max(1, len(drawn)))
    model.eval()
    return atomic_replace_dir(Path(out_dir), lambda staging: model.save(str(staging)))


def _to(features: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
