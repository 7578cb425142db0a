"""Mean pooling for fine-tuned BERT classifiers, in place of BERT's ``[CLS]`` pooler.

``AutoModelForSequenceClassification`` on a BERT encoder classifies from the pooler: a
dense + tanh layer on the first token. Sentence-transformers encoders (the bundled
all-MiniLM-L6-v2) were trained to give sentence vectors as the mask-averaged last hidden
states instead, and their pooler was never trained for that: a fine-tune that starts from
``[CLS]`` starts from a worse sentence vector than the frozen probe it should beat.

``use_mean_pooling(model)`` swaps the pooler for ``MaskedMeanPooler`` (no weights) and
puts a forward pre-hook on the encoder that hands the attention mask to it, so the model
keeps its class, its ``save_pretrained`` folder and its peft wrappers; the artifact's
manifest says ``extra.pooling = "mean"`` and the loaders call ``apply_pooling`` again.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

__all__ = ["POOLINGS", "MaskedMeanPooler", "apply_pooling", "pooling_of", "use_mean_pooling"]

POOLINGS = ("mean", "cls")
_CURRENT = threading.local()  # the attention mask of the forward pass running in this thread


class MaskedMeanPooler(torch.nn.Module):
    """The mean of the last hidden states over the real (unmasked) tokens."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        mask = getattr(_CURRENT, "mask", None)
        _CURRENT.mask = None
        if mask is None or mask.dim() != 2 or mask.shape[:2] != hidden_states.shape[:2]:
            return hidden_states.mean(dim=1)
        weights = mask.to(hidden_states.dtype).unsqueeze(-1)
        return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def _stash_mask(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Forward pre-hook of the encoder: the pooler of this pass reads this mask."""
    del module
    mask = kwargs.get("attention_mask")
    if mask is None and len(args) > 1:
        mask = args[1]  # BertModel.forward(input_ids, attention_mask, ...)
    _CURRENT.mask = mask


def _encoder(model: torch.nn.Module) -> torch.nn.Module | None:
    """The transformers encoder that owns a ``pooler`` (BERT-style), or None."""
    encoder = getattr(model, "base_model", model)
    pooler = getattr(encoder, "pooler", None)
    return encoder if isinstance(pooler, torch.nn.Module) else None


def use_mean_pooling(model: torch.nn.Module) -> bool:
    """Replaces the ``[CLS]`` pooler of a BERT-style classifier with mask-averaged states.

    Call it before wrapping the model with peft. Models whose encoder has no pooler
    (DistilBERT, MPNet's classification head) are left as they are.

    Returns:
        Whether the model now mean-pools.
    """
    encoder = _encoder(model)
    if encoder is None:
        return False
    if not isinstance(encoder.pooler, MaskedMeanPooler):
        encoder.pooler = MaskedMeanPooler()
        encoder.register_forward_pre_hook(_stash_mask, with_kwargs=True)
    return True


def apply_pooling(model: torch.nn.Module, pooling: str) -> str:
    """Gives ``model`` the pooling an artifact was trained with; returns the one in use.

    Raises:
        ValueError: an unknown pooling, or ``mean`` on a model without a pooler.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    if pooling == "mean" and not use_mean_pooling(model):
        raise ValueError(f"{type(model).__name__} has no pooler to replace with mean pooling")
    return pooling


def pooling_of(model: torch.nn.Module) -> str:
    """``mean`` if ``model`` (plain or inside a peft wrapper) mean-pools, else ``cls``."""
    return "mean" if any(isinstance(m, MaskedMeanPooler) for m in model.modules()) else "cls"
