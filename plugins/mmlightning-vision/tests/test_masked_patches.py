"""mmlightning-vision: masked patch reconstruction."""

from __future__ import annotations

import torch

from mmlightning import Batch, HeadContext
from mmlightning.testing import check_head, random_features
from mmlightning_vision import MaskedPatchHead


def test_contract():
    check_head(MaskedPatchHead, dim=16)
    check_head(MaskedPatchHead, dim=16, grid=2, resolution=2)


def test_blanked_patches_are_zero_and_their_originals_are_the_target():
    head = MaskedPatchHead(8, grid=2, rate=0.5, resolution=2)
    head.bind(HeadContext("mim", {}))
    pixels = torch.arange(2 * 3 * 8 * 8, dtype=torch.float).view(2, 3, 8, 8)
    batch = Batch(inputs={"image": {"pixels": pixels, "present": torch.tensor([True, False])}}, ids=["a", "b"])
    masked = head.prepare_batch(batch, "train")
    new, target = masked.inputs["image"]["pixels"], masked.targets["mim"]  # (2, 3, 8, 8), (2, 4, 3*2*2 + 1)
    for patch in range(4):
        rows, cols = slice(4 * (patch // 2), 4 * (patch // 2) + 4), slice(4 * (patch % 2), 4 * (patch % 2) + 4)
        blank = bool((new[0, :, rows, cols] == 0).all())
        assert blank == bool(target[0, patch, -1])  # a blanked patch is a target, and only those
        if not blank:
            assert torch.equal(new[0, :, rows, cols], pixels[0, :, rows, cols])  # the others are untouched
    expected = torch.nn.functional.adaptive_avg_pool2d(pixels, 4)[0, 0, :2, :2].flatten()  # patch 0, red, 2x2
    assert torch.allclose(target[0, 0, :4], expected)
    assert not target[1, :, -1].any()  # a sample without the image has nothing to reconstruct
    assert torch.equal(batch.inputs["image"]["pixels"], pixels) and head.prepare_batch(batch, "predict") is batch
    out = head(random_features(2, 3, 8), {}, masked)
    assert out.predictions.shape == (2, 4, 12) and torch.isfinite(out.loss)
