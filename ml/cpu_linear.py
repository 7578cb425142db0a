"""A faster multi-threaded CPU matmul for the few-row inputs of batched decoding.

A decode step of the continuous batch feeds one token per sequence, so every Linear
layer of the chat LM sees 2-8 rows. For such inputs torch's CPU ``linear`` (``x @ W.T``)
splits the work badly over threads, while the same product computed as ``(W @ x.T).T``
keeps both cores busy. Measured with the 135M chat LM on 2 threads (ms per decode step;
in brackets: the step's cost relative to one row):

    rows                 1          4            8
    x @ W.T           78-86   124-151 (1.6x)  140-151 (1.8x)
    (W @ x.T).T       77-82    86-90 (1.1x)   109-112 (1.4x)

so 4 streams decode ~3.5x the tokens of one instead of ~2.4x. On one thread the two are
equal at 4 rows and ``x @ W.T`` wins at 8, so the switch applies only with 2+ threads.
Next-token logits differ by ~6e-5 at most (summation order). One row and prompt-sized
inputs keep torch's own path, so batch-1 decoding and prefill are unchanged. CPU only:
GPUs have no such gap.
"""

from __future__ import annotations

import torch
from torch.nn import functional

__all__ = ["SKINNY_MAX_ROWS", "SkinnyLinear", "use_skinny_linears"]

SKINNY_MAX_ROWS = 16  # decode steps hold at most the gate's 8 rows on CPU; prefill has more


class SkinnyLinear(torch.nn.Linear):
    """``nn.Linear`` that computes 2..SKINNY_MAX_ROWS-row inputs as ``(W @ x.T).T`` (2+ threads)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
        if not 2 <= rows <= SKINNY_MAX_ROWS or torch.get_num_threads() < 2:
            return functional.linear(x, self.weight, self.bias)
        out = (self.weight @ x.reshape(rows, x.shape[-1]).t()).t()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], out.shape[-1])


def use_skinny_linears(model: torch.nn.Module) -> int:
    """Switches every plain ``nn.Linear`` of ``model`` to ``SkinnyLinear`` (weights untouched).

    Returns:
        How many layers were switched.
    """
    switched = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear:
            module.__class__ = SkinnyLinear
            switched += 1
    return switched
