"""The KV cache of a continuous batch: left-padded rows that join and leave between steps.

Each row is one sequence. Its keys/values sit at the right end of the row; the columns to
their left are padding, masked out by a 2-D attention mask (1 = real token). Rotary
position embeddings are applied to keys when they are computed, so padding never shifts a
sequence's positions: each decode step passes every row's own position explicitly.

- ``add`` merges sequences prefilled outside the batch (alone, or several short prompts
  together, left-padded) by left-padding whichever side is shorter to the common length.
- ``keep`` drops rows that left, then trims leading columns that are padding in every row
  (a long sequence leaving would otherwise make every later step attend over its length).
- ``step`` runs one forward pass of one new token per row.

Works with any decoder whose layers all use full attention and a ``DynamicCache`` (Llama,
Qwen2, SmolLM, Mistral without a sliding window); all tensors stay on the model's device.
Only the lane thread touches an instance.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import CacheLayerMixin


def _kv(layer: CacheLayerMixin) -> tuple[torch.Tensor, torch.Tensor]:
    if layer.keys is None or layer.values is None:
        raise ValueError("cache layer holds no keys/values")
    return layer.keys, layer.values


def _left_pad(tensor: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    if pad <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = pad
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


class BatchKV:
    """Keys/values and attention mask of the rows decoding together.

    Args:
        device: where the mask lives (the model's device).
        dtype: the dtype decode steps keep keys/values in (the model's); a cache prefilled
            under bf16 autocast is cast to it when it joins. None keeps what arrives.
    """

    def __init__(self, device: torch.device | str, dtype: torch.dtype | None = None) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # (rows, columns) long, 1 = real token

    @property
    def rows(self) -> int:
        return 0 if self.mask is None else int(self.mask.shape[0])

    @property
    def columns(self) -> int:
        """Cached length, padding included."""
        return 0 if self.mask is None else int(self.mask.shape[1])

    @staticmethod
    def new_cache() -> DynamicCache:
        """An empty cache of full-attention layers for a prefill."""
        return DynamicCache()

    def clear(self) -> None:
        self.cache, self.mask = None, None

    def add(self, cache: DynamicCache, mask: torch.Tensor | None = None) -> None:
        """Appends the rows of a prefilled cache (left-padded as ``mask`` says) below the others.

        Args:
            cache: a cache of one or more rows, as ``prefill`` or ``prefill_group`` left it.
            mask: its ``(rows, columns)`` attention mask, 1 = real token; None for one row
                without padding.

        Raises:
            ValueError: ``mask`` does not match the cache's shape.
        """
        if self.dtype is not None:
            for layer in cache.layers:
                keys, values = _kv(layer)
                if keys.dtype != self.dtype:
                    layer.keys, layer.values = keys.to(self.dtype), values.to(self.dtype)
        layers = [_kv(layer) for layer in cache.layers]
        length = cache.get_seq_length()
        if mask is None:
            mask = torch.ones((1, length), dtype=torch.long, device=self.device)
        if not layers or tuple(mask.shape) != (layers[0][0].shape[0], length):
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not fit the cache")
        mask = mask.to(device=self.device, dtype=torch.long)
        if self.cache is None or self.mask is None:
            self.cache, self.mask = cache, mask
            return
        width = max(self.columns, length)
        grow, pad = width - self.columns, width - length
        # Build every layer first and swap them in after: a failure (out of memory) midway
        # leaves the batch as it was.
        merged = [
            (
                torch.cat([_left_pad(keys, grow, 2), _left_pad(their_keys, pad, 2)], dim=0),
                torch.cat([_left_pad(values, grow, 2), _left_pad(their_values, pad, 2)], dim=0),
            )
            for (keys, values), (their_keys, their_values) in zip(
                (_kv(layer) for layer in self.cache.layers), layers, strict=True
            )
        ]
        merged_mask = torch.cat([_left_pad(self.mask, grow, 1), _left_pad(mask, pad, 1)], dim=0)
        for layer, (keys, values) in zip(self.cache.layers, merged, strict=True):
            layer.keys, layer.values = keys, values
        self.mask = merged_mask

    def keep(self, rows: list[int]) -> None:
        """Keeps only ``rows`` (indices, in order), then trims all-padding columns."""
        if self.cache is None or self.mask is None:
            return
        if not rows:
            self.clear()
            return
        if len(rows) != self.rows:
            index = torch.tensor(rows, dtype=torch.long, device=self.device)
            self.cache.batch_select_indices(index)
            self.mask = self.mask.index_select(0, index)
        # argmax finds each row's first real column; every row has at least one.
        lead = int(self.mask.argmax(dim=1).min())
        if lead > 0:
            for layer in self.cache.layers:
                keys, values = _kv(layer)
                layer.keys, layer.values = keys[:, :, lead:, :], values[:, :, lead:, :]
            self.mask = self.mask[:, lead:]

    def step(self, model: PreTrainedModel, tokens: list[int], positions: list[int]) -> torch.Tensor:
        """One forward pass: each row's newest token at its own position.

        Args:
            model: the causal LM.
            tokens: per row, the token to feed (sampled last step).
            positions: per row, that token's position (= real tokens already cached).

        Returns:
            Next-token logits, shape ``(rows, vocab)``.
        """
        if self.cache is None or self.mask is None or len(tokens) != self.rows:
            raise ValueError(f"{len(tokens)} tokens for a batch of {self.rows} rows")
        device = self.device
        ones = torch.ones((self.rows, 1), dtype=torch.long, device=device)
        mask = torch.cat([self.mask, ones], dim=1)
        out = model(
            input_ids=torch.tensor(tokens, dtype=torch.long, device=device).unsqueeze(1),
            attention_mask=mask,
            position_ids=torch.tensor(positions, dtype=torch.long, device=device).unsqueeze(1),
            past_key_values=self.cache,
            cache_position=torch.tensor([self.columns], dtype=torch.long, device=device),
            use_cache=True,
            logits_to_keep=1,
        )
        self.mask = mask  # only once the pass succeeded: the cache grew by one column too
        return out.logits[:, -1, :]


def prefill(model: PreTrainedModel, cache: DynamicCache, ids: list[int], done: int) -> torch.Tensor:
    """Feeds one chunk of a prompt (batch 1, no padding) into ``cache``.

    Args:
        model: the causal LM.
        cache: the sequence's own cache, holding its first ``done`` prompt tokens.
        ids: the chunk's token ids.
        done: prompt tokens already in ``cache``.

    Returns:
        Logits for the token after the chunk, shape ``(vocab,)``.
    """
    device = model.device
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    out = model(
        input_ids=input_ids,
        attention_mask=torch.ones((1, done + len(ids)), dtype=torch.long, device=device),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    return out.logits[0, -1, :].float()  # bf16 under a prefill autocast


def prefill_group(
    model: PreTrainedModel, prompts: list[list[int]], pad_id: int
) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
    """Prefills several whole prompts in one left-padded forward pass.

    Four 39-token prompts took 0.48 s together against 0.87 s one by one on 2 CPU
    threads (batch-1 passes leave the matrix units half idle), which is also what the
    last of four simultaneous streams waits before its first token.

    Args:
        model: the causal LM.
        prompts: token ids of each prompt (non-empty).
        pad_id: any valid token id for the padding (it is masked out).

    Returns:
        The cache (one row per prompt, padding keys/values zeroed so that nothing
        computed for a padding position can leak into later steps), its attention mask,
        and each row's next-token logits, shape ``(rows, vocab)``.
    """
    device = model.device
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    positions = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        start = width - len(prompt)
        ids[row, start:] = torch.tensor(prompt, dtype=torch.long)
        mask[row, start:] = 1
        positions[row, start:] = torch.arange(len(prompt))
    mask = mask.to(device)
    cache = BatchKV.new_cache()
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask,
        position_ids=positions.to(device),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    padding = (mask == 0)[:, None, :, None]
    for layer in cache.layers:
        keys, values = _kv(layer)
        layer.keys, layer.values = keys.masked_fill(padding, 0), values.masked_fill(padding, 0)
    return cache, mask, out.logits[:, -1, :].float()
