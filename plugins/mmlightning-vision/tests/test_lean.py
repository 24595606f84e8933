"""The lean transforms: the same pixels as timm's, bit for bit, with less work per sample."""

from __future__ import annotations

import functools
import random

import numpy
import pytest
import torch
from PIL import Image
from timm.data import create_transform
from torchvision import transforms

from mmlightning.data.resume import seeded
from mmlightning_vision.lean import Flip, ToNormalized, lean

CONFIG = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "interpolation": "bicubic"}


def pictures(count: int) -> list[Image.Image]:
    rng = numpy.random.default_rng(0)
    sizes = [(32, 32), (45, 61), (200, 120)]
    return [Image.fromarray(rng.integers(0, 256, (*sizes[i % 3], 3), dtype=numpy.uint8)) for i in range(count)]


@pytest.mark.parametrize(
    "train, size, crop_pct, extra",
    [
        (True, 32, 1.0, {"scale": (0.8, 1.0), "color_jitter": 0.0}),  # the CIFAR-10 config: jitter off
        (True, 48, 0.875, {}),  # timm's defaults: a real ColorJitter, kept
        (True, 48, 0.875, {"color_jitter": 0.0, "re_prob": 0.5}),  # random erasing after the normalisation
        (False, 48, 0.875, {}),
        (False, 32, 1.0, {}),
    ],
)
def test_lean_transforms_give_timms_pixels_bit_for_bit(train, size, crop_pct, extra):
    made = create_transform(input_size=(3, size, size), crop_pct=crop_pct, is_training=train, **CONFIG, **extra)
    fast = lean(create_transform(input_size=(3, size, size), crop_pct=crop_pct, is_training=train, **CONFIG, **extra))
    assert any(isinstance(step, ToNormalized) for step in fast.transforms)
    assert ("ColorJitter" in repr(fast)) == ("ColorJitter" in repr(made) and "brightness=None" not in repr(made))
    assert ("Flip(" in repr(fast)) == train
    for index, picture in enumerate(pictures(12)):
        want = seeded(index, functools.partial(made, picture))
        got = seeded(index, functools.partial(fast, picture))
        assert torch.equal(want, got) and want.stride() == got.stride() and want.dtype == got.dtype


def test_anything_but_an_rgb_picture_takes_torchvisions_own_steps():
    fast = lean(create_transform(input_size=(3, 32, 32), crop_pct=1.0, is_training=False, **CONFIG))
    grey = Image.fromarray(numpy.zeros((32, 32), dtype=numpy.uint8), mode="L")
    with pytest.raises(RuntimeError):  # as timm's own transform: one channel cannot take three channels' mean
        fast(grey)
    flip = Flip(transforms.RandomHorizontalFlip(1.0))
    tensor = torch.arange(6.0).view(1, 2, 3)
    assert torch.equal(flip(tensor), tensor.flip(-1))


def test_seeded_leaves_the_global_generators_as_they_were():
    torch.manual_seed(5)
    random.seed(5)
    before = torch.rand(3), random.random()
    torch.manual_seed(5)
    random.seed(5)
    first = seeded(11, lambda: (torch.rand(2), random.random()))
    again = seeded(11, lambda: (torch.rand(2), random.random()))
    assert torch.equal(first[0], again[0]) and first[1] == again[1]  # the same seed, the same draws
    assert torch.equal(torch.rand(3), before[0]) and random.random() == before[1]  # as if nothing had run
