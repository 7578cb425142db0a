"""The frozen baseline a fine-tune must beat: logistic regression on an encoder's embeddings.

Shared by bench/eval_classifiers.py (the probe measured in the same run as each fine-tune) and
bench/bench_finetune.py ``--probe`` (encoders side by side on subsets).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

PROBE_C = 10.0  # inverse regularisation of the head (sklearn's C); 1.0 under-fits 77 intents


def frozen_probe(encoder: Path, train: list[tuple[str, str]], test: list[tuple[str, str]],
                 *, batch_size: int = 64) -> dict[str, Any]:
    """Fits the probe on ``train`` and scores it on ``test``.

    Returns:
        accuracy, weighted_f1, macro_f1 on ``test``, sentences_per_s (embedding both splits)
        and seconds (embedding plus fitting).
    """
    import numpy as np
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    model = SentenceTransformer(str(encoder), device="cpu", local_files_only=True)
    started = time.perf_counter()
    x_train = model.encode([t for t, _ in train], batch_size=batch_size, normalize_embeddings=True)
    x_test = model.encode([t for t, _ in test], batch_size=batch_size, normalize_embeddings=True)
    embedded = time.perf_counter() - started
    head = LogisticRegression(max_iter=2000, C=PROBE_C).fit(x_train, [y for _, y in train])
    pred = head.predict(np.asarray(x_test))
    gold = [y for _, y in test]
    return {"accuracy": float(accuracy_score(gold, pred)),
            "weighted_f1": float(f1_score(gold, pred, average="weighted")),
            "macro_f1": float(f1_score(gold, pred, average="macro")),
            "sentences_per_s": (len(train) + len(test)) / embedded,
            "seconds": time.perf_counter() - started}
