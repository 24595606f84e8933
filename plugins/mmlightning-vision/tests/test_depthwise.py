"""Depthwise convolutions run in fp32 under CPU bf16 autocast where bf16 is slow, and nothing else changes."""

from __future__ import annotations

import torch
from torch import nn

from mmlightning_vision import TimmEncoder
from mmlightning_vision.depthwise import Float32Depthwise, fp32_depthwise


def test_only_depthwise_convolutions_change_class_and_their_names_stay():
    plain = TimmEncoder("tf_efficientnet_lite0", image_size=64, fp32_depthwise=False)
    swapped = TimmEncoder("tf_efficientnet_lite0", image_size=64)
    depthwise = [m for m in swapped.modules() if isinstance(m, Float32Depthwise)]
    assert len(depthwise) == 16  # the sixteen blocks' depthwise convolutions, four of them padded-same stride 2
    assert all(m.groups == m.in_channels for m in depthwise)
    assert not any(isinstance(m, Float32Depthwise) for m in plain.modules())
    assert list(plain.state_dict()) == list(swapped.state_dict())  # checkpoints load either way


def test_under_cpu_autocast_slow_depthwise_kernels_run_in_fp32():
    torch.manual_seed(0)
    strided = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
    still = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    pointwise = nn.Conv2d(8, 8, 1)
    model = nn.ModuleList([strided, still, pointwise])
    reference = [m(torch.ones(1, 8, 6, 6)) for m in model]
    assert fp32_depthwise(model) == 2
    x = torch.randn(2, 8, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert strided(x).dtype == torch.float32  # a stride of 2: fp32 whether it trains or not
        assert still(x).dtype == torch.float32  # its weight trains: fp32
        still.weight.requires_grad_(False)
        assert still(x).dtype == torch.bfloat16  # stride 1 and frozen: bf16 is the faster
        assert pointwise(x).dtype == torch.bfloat16  # not depthwise: untouched
    for module, before in zip(model, reference):
        torch.testing.assert_close(module(torch.ones(1, 8, 6, 6)), before)  # without autocast, the same results
