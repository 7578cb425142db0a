"""Mean pooling for fine-tuned BERT classifiers, in place of BERT's ``[CLS]`` pooler.

``AutoModelForSequenceClassification`` on a BERT encoder classifies from the pooler: a
dense + tanh layer on the first token. Sentence-transformers encoders (the bundled
all-MiniLM-L6-v2) were trained to give sentence vectors as the mask-averaged last hidden
states instead, and their pooler was never trained for that: a fine-tune that starts from
``[CLS]`` starts from a worse sentence vector than the frozen probe it should beat.

``use_mean_pooling(model)`` puts a forward pre-hook on the encoder that keeps the
attention mask of the pass, then either swaps BERT's pooler for ``MaskedMeanPooler`` (no
weights: the head reads the sentence vector itself) or, for heads that read the first
position of the hidden states (MPNet, RoBERTa: dense + tanh + projection), hands them the
mean in that position. The model keeps its class, its ``save_pretrained`` folder and its
peft wrappers; the artifact's manifest says ``extra.pooling = "mean"`` and the loaders
call ``apply_pooling`` again.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

__all__ = ["POOLINGS", "MaskedMeanPooler", "apply_pooling", "masked_mean", "pooling_of", "use_mean_pooling"]

POOLINGS = ("mean", "cls")
_CURRENT = threading.local()  # the attention mask of the forward pass running in this thread


class MaskedMeanPooler(torch.nn.Module):
    """The mean of the last hidden states over the real (unmasked) tokens."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        mask = getattr(_CURRENT, "mask", None)
        _CURRENT.mask = None
        return masked_mean(hidden_states, mask)


def masked_mean(hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``(batch, dim)`` mean of ``(batch, tokens, dim)`` states over the tokens ``mask`` keeps.

    Without a matching ``(batch, tokens)`` mask, the plain mean over all positions.
    """
    if mask is None or mask.dim() != 2 or mask.shape[:2] != hidden_states.shape[:2]:
        return hidden_states.mean(dim=1)
    weights = mask.to(hidden_states.dtype).unsqueeze(-1)
    return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def _mean_in_first_position(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Forward pre-hook of a head that reads ``features[:, 0]``: that position becomes the mean."""
    del module
    mask = getattr(_CURRENT, "mask", None)
    _CURRENT.mask = None
    if not args or not isinstance(args[0], torch.Tensor) or args[0].dim() != 3:
        return None
    features = args[0]
    mean = masked_mean(features, mask).unsqueeze(1)
    return (torch.cat([mean, features[:, 1:]], dim=1), *args[1:])


def _stash_mask(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Forward pre-hook of the encoder: the pooler of this pass reads this mask."""
    del module
    mask = kwargs.get("attention_mask")
    if mask is None and len(args) > 1:
        mask = args[1]  # BertModel.forward(input_ids, attention_mask, ...)
    _CURRENT.mask = mask


# Sequence-classification models whose ``classifier`` reads the first position of the
# hidden states (``features[:, 0, :]``) through dense + tanh + out_proj.
_FIRST_POSITION_HEADS = frozenset({"mpnet", "roberta", "xlm-roberta", "camembert"})
_HOOKED = "_trellis_mean_pooling"


def use_mean_pooling(model: torch.nn.Module) -> bool:
    """Makes a sequence classifier read the mask-averaged hidden states.

    BERT-style encoders lose their ``[CLS]`` pooler (``MaskedMeanPooler`` instead); heads
    that read the first position (MPNet, RoBERTa) get the mean there. Call it before
    wrapping the model with peft. Other models (DistilBERT, ...) are left as they are.

    Returns:
        Whether the model now mean-pools.
    """
    if pooling_of(model) == "mean":
        return True
    encoder = getattr(model, "base_model", model)
    pooler = getattr(encoder, "pooler", None)
    head = getattr(model, "classifier", None)
    model_type = getattr(getattr(model, "config", None), "model_type", "")
    if isinstance(pooler, torch.nn.Module):
        encoder.pooler = MaskedMeanPooler()
    elif isinstance(head, torch.nn.Module) and model_type in _FIRST_POSITION_HEADS and encoder is not model:
        head.register_forward_pre_hook(_mean_in_first_position)
        setattr(head, _HOOKED, True)
    else:
        return False
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
    pooled = any(isinstance(m, MaskedMeanPooler) or getattr(m, _HOOKED, False) for m in model.modules())
    return "mean" if pooled else "cls"
