"""bf16 prefill, fp32 decode: the chat LM's CPU split (``ChatLM(prefill_model=...)``).

On a CPU with bf16 matrix units a bf16 copy of the weights prefills prompts ~2x faster,
while one-row decode steps are faster in fp32; so prompts prefill through the copy and the
steps decode in fp32 from keys/values cast back when the sequence joins the batch.
"""

from __future__ import annotations

import copy

import pytest
import torch

from ml.compute_lane import ComputeLane
from ml.generate import ChatLM, GenerationGate

PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a story about a dragon who bakes bread."}],
    [
        {"role": "system", "content": "You are a terse assistant for a small bakery in Lyon. Answer politely."},
        {"role": "user", "content": "When do you open on Sundays, and do you sell croissants?"},
    ],
    [{"role": "user", "content": "Passages:\n[1] Returns: items can be returned within 30 days of delivery "
                                 "for a full refund. " * 6 + "\n\nQuestion: How long do I have to return an item?"}],
]


@pytest.fixture(scope="module")
def lane():
    lane = ComputeLane("test-bf16-prefill-lane")
    yield lane
    lane.shutdown()


@pytest.fixture(scope="module")
def pair(registry, lane) -> tuple[ChatLM, ChatLM]:
    base = registry.get("chat-lm")
    if base.info.device != "cpu" or base.model.dtype != torch.float32:
        pytest.skip("the bf16-prefill split is a CPU profile for an fp32 model")
    bf16 = copy.deepcopy(base.model).to(torch.bfloat16)

    def make(prefill_model) -> ChatLM:
        return ChatLM(base.model, base.tokenizer, version=base.version, info=base.info, prefill_model=prefill_model,
                      lane=lane, gate=GenerationGate(max_concurrent=4, max_waiting=4))

    return make(bf16), make(None)


def test_prompts_prefill_through_the_bf16_copy_and_steps_decode_in_fp32(pair):
    lm16, _ = pair
    passes: list[tuple[str, int, torch.dtype | None]] = []

    def hook_for(name):
        def hook(module, args, kwargs):
            cache = kwargs.get("past_key_values")
            layer = cache.layers[0] if cache is not None and cache.layers else None
            keys = None if layer is None or layer.keys is None else layer.keys.dtype
            passes.append((name, int(kwargs["input_ids"].shape[1]), keys))
        return hook

    handles = [lm16.model.register_forward_pre_hook(hook_for("fp32"), with_kwargs=True),
               lm16.decoder.prefill_model.register_forward_pre_hook(hook_for("bf16"), with_kwargs=True)]
    try:
        text = lm16.generate_text(PROMPTS[3], max_new_tokens=6)
    finally:
        for handle in handles:
            handle.remove()

    # then the prompt went through the bf16 copy in one pass (its CPU chunk is 512 tokens),
    # every one-token step through the fp32 model on an fp32 cache, and the reply is text
    assert [(name, length > 1) for name, length, _ in passes if name == "bf16"] == [("bf16", True)]
    steps = [p for p in passes if p[0] == "fp32"]
    assert steps and all(length == 1 and dtype == torch.float32 for _, length, dtype in steps)
    assert lm16.decoder.prefill_chunk == 512
    assert text.strip()
    assert lm16.stats()["prefill_dtype"] == "bfloat16"


def test_bf16_prefill_picks_the_fp32_first_token(pair):
    lm16, lm32 = pair
    # the first token decides how a reply opens: bf16 prefill must not change it
    firsts16 = [lm16.generate_text(messages, max_new_tokens=1) for messages in PROMPTS]
    firsts32 = [lm32.generate_text(messages, max_new_tokens=1) for messages in PROMPTS]
    assert firsts16 == firsts32
    assert all(first.strip() for first in firsts16)
    assert lm32.stats()["prefill_dtype"] == "float32"
