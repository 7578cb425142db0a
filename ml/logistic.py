"""Multinomial logistic regression fitted full-batch with L-BFGS: the few-shot head
(``ml.classify.FewShotClassifier``) and the probe a fine-tune's head starts from
(``ml.finetune.probe_head``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["FEWSHOT_C", "fit_logistic_head"]

# Inverse weight penalty per training row (scikit-learn's C); see ``fit_logistic_head``.
FEWSHOT_C = 10.0


def fit_logistic_head(
    features: np.ndarray,
    targets: Sequence[int],
    classes: int,
    *,
    l2: float | None = None,
    iterations: int = 100,
    seed: int = 0,
    balanced: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression, full-batch L-BFGS (convex; < 1 s for 10k rows).

    Args:
        features: ``(rows, dim)`` float32.
        targets: class index per row.
        classes: number of classes (the head's outputs).
        l2: weight penalty on the mean loss; default ``1 / (2 * FEWSHOT_C * rows)``.
        iterations: L-BFGS iterations.
        seed: seeds the initial weights.
        balanced: weight classes by ``rows / (classes * count)``.

    Returns:
        ``weight`` ``(classes, dim)`` and ``bias`` ``(classes,)``, float32.
    """
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    y = torch.tensor(list(targets), dtype=torch.long)
    l2 = 1.0 / (2.0 * FEWSHOT_C * len(y)) if l2 is None else l2
    class_weight = None
    if balanced:
        counts = torch.bincount(y, minlength=classes).float().clamp(min=1.0)
        class_weight = len(y) / (classes * counts)
    gen = torch.Generator().manual_seed(seed)
    weight = (torch.randn(classes, x.shape[1], generator=gen) * 0.01).requires_grad_()
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight.T + bias, y, weight=class_weight)
        loss = loss + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():  # callers may sit inside inference_mode
        optimizer.step(closure)
    return weight.detach().numpy(), bias.detach().numpy()
