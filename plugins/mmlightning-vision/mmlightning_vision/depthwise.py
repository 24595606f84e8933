"""Depthwise convolutions in fp32 under CPU bf16 autocast, where PyTorch's bf16 kernels are slow.

On CPU, ``--trainer.precision=bf16-mixed`` makes matrix work and ordinary convolutions several times faster on
processors with AMX or AVX-512 bf16, but two backward kernels of depthwise convolutions are far slower in bf16 than
in fp32: the weight gradient (about 4x) and, for a stride of 2, the input gradient (7 to 25x; measured in
``benchmarks/partial_freeze.py``). `TimmEncoder` therefore runs a depthwise convolution in fp32 while CPU autocast is
on, unless its stride is 1 and its weight is frozen (then bf16 is the faster). The module's class changes, not its
parameters: state dicts, names and checkpoints stay the same, and nothing changes without CPU autocast.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.layers import Conv2dSame
from torch import Tensor, nn


class Float32Depthwise:
    """Mixed into a convolution's class: its forward in fp32 when CPU autocast would make it slow in bf16."""

    def forward(self, x: Tensor) -> Tensor:
        conv: Any = self  # an nn.Conv2d once mixed in
        slow = x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
        if slow and (conv.weight.requires_grad or any(s > 1 for s in conv.stride)):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())  # type: ignore[misc]
        return super().forward(x)  # type: ignore[misc]


class Float32DepthwiseConv2d(Float32Depthwise, nn.Conv2d):
    pass


class Float32DepthwiseConv2dSame(Float32Depthwise, Conv2dSame):
    pass


SWAPS: dict[type, type] = {nn.Conv2d: Float32DepthwiseConv2d, Conv2dSame: Float32DepthwiseConv2dSame}


def fp32_depthwise(model: nn.Module) -> int:
    """Gives ``model``'s depthwise convolutions (plain or timm's padded-same ones) the fp32 forward; the count."""
    count = 0
    for module in model.modules():
        swap = SWAPS.get(type(module))
        depthwise = isinstance(module, nn.Conv2d) and module.groups == module.in_channels == module.out_channels > 1
        if swap is not None and depthwise:
            module.__class__ = swap
            count += 1
    return count
