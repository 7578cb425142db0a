"""The few-row CPU matmul of the chat LM: same results as nn.Linear, used only where it pays."""

from __future__ import annotations

import pytest
import torch

from ml.cpu_linear import SKINNY_MAX_ROWS, SkinnyLinear, use_skinny_linears


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 96), (3, 96), (2, 1, 96), (8, 1, 96), (SKINNY_MAX_ROWS + 1, 96), (2, 20, 96)])
def test_skinny_linear_matches_linear(shape, bias, threads):
    torch.manual_seed(0)
    plain = torch.nn.Linear(96, 40, bias=bias)
    skinny = torch.nn.Linear(96, 40, bias=bias)
    skinny.load_state_dict(plain.state_dict())
    assert use_skinny_linears(skinny) == 1
    x = torch.randn(*shape)

    with torch.inference_mode():
        got, want = skinny(x), plain(x)

    assert isinstance(skinny, SkinnyLinear)
    assert got.shape == want.shape == (*shape[:-1], 40)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_the_chat_lm_uses_it_on_cpu_only(registry):
    lm = registry.get("chat-lm")
    layers = [m for m in lm.model.modules() if isinstance(m, torch.nn.Linear)]

    assert layers
    assert all(isinstance(m, SkinnyLinear) for m in layers) == (not lm.info.is_gpu)
