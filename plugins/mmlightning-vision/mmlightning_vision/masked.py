"""Masked patch reconstruction: blank out image patches before encoding and reconstruct them from the fused tokens."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlightning import Batch, Features, Head, HeadOutput
from mmlightning.layers import MultiHeadAttention
from mmlightning.processing import NoPrediction


class MaskedPatchHead(Head):
    """A masked-image objective (MAE / SimMIM style) that works with any image encoder and fusion.

    ``prepare_batch`` splits each image into a ``grid`` x ``grid`` of patches and blanks ``rate`` of them (to
    zero, the normalised mean) on a copy of the batch. The head reconstructs every patch at ``resolution``
    pixels a side: one learned query per patch attends to the ``modality`` tokens of the fused features (or
    the pooled vector when the fusion kept none), and a linear layer gives its pixels. The loss is the mean
    squared error over the blanked patches, against the original (normalised) pixels average-pooled to that
    resolution. No target column; logs ``mse`` of the masked patches. Runs in training and validation (a
    fixed mask in validation).
    """

    modality = "image"
    uses_target = False

    def __init__(
        self, dim: int, modality: str = "image", grid: int = 4, rate: float = 0.5, resolution: int = 4, heads: int = 4
    ) -> None:
        super().__init__()
        if not 0 < rate < 1:
            raise ValueError(f"rate must be between 0 and 1, got {rate}")
        self.source, self.grid, self.rate, self.resolution = modality, grid, rate, resolution
        self.queries = nn.Parameter(torch.randn(grid * grid, dim) * 0.02)  # (P, D)
        self.attend = MultiHeadAttention(dim, heads if dim % heads == 0 else 1)
        self.norm = nn.LayerNorm(dim)
        self.pixels = nn.Linear(dim, 3 * resolution * resolution)

    def prepare_batch(self, batch: Batch, stage: str) -> Batch:
        if stage not in ("train", "val"):
            return batch
        pixels = batch.inputs[self.source]["pixels"]  # (B, 3, H, W)
        b, _, h, w = pixels.shape
        generator = None if stage == "train" else torch.Generator(device=pixels.device).manual_seed(0)
        hidden = torch.rand(b, self.grid * self.grid, generator=generator, device=pixels.device) < self.rate  # (B, P)
        hidden[~hidden.any(1), 0] = True  # at least one patch each
        cover = F.interpolate(
            hidden.view(b, 1, self.grid, self.grid).float(), size=(h, w), mode="nearest"
        )  # (B, 1, H, W)
        inputs = {**batch.inputs, self.source: {**batch.inputs[self.source], "pixels": pixels * (1 - cover)}}
        size = self.grid * self.resolution
        small = F.adaptive_avg_pool2d(pixels, size)  # (B, 3, g*r, g*r)
        patches = small.unfold(2, self.resolution, self.resolution).unfold(
            3, self.resolution, self.resolution
        )  # (B, 3, g, g, r, r)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(b, self.grid * self.grid, -1)  # (B, P, 3*r*r)
        present = batch.inputs[self.source].get("present", torch.ones(b, dtype=torch.bool, device=pixels.device))
        target = torch.cat([patches, (hidden & present[:, None]).float()[..., None]], -1)  # (B, P, 3*r*r + 1)
        return dataclasses.replace(batch, inputs=inputs, targets={**batch.targets, self.name: target})

    def forward(self, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> HeadOutput:
        if self.source in fused.spans:
            context, mask = fused.tokens[:, fused.spans[self.source]], fused.mask[:, fused.spans[self.source]]
        else:
            context, mask = fused.pooled[:, None], fused.present[:, None]
        queries = self.queries.expand(context.shape[0], -1, -1)  # (B, P, D)
        predicted = self.pixels(self.norm(queries + self.attend(queries, context, mask)))  # (B, P, 3*r*r)
        target = batch.targets.get(self.name)
        loss = None
        if target is not None:
            hidden = target[..., -1].bool()  # (B, P)
            loss = F.mse_loss(predicted[hidden], target[..., :-1][hidden]) if hidden.any() else predicted.sum() * 0.0
        return HeadOutput(loss=loss, predictions=predicted)

    def make_metrics(self) -> dict[str, nn.Module]:
        from torchmetrics import MeanSquaredError

        return {"mse": MeanSquaredError()}

    def metric_inputs(self, output: HeadOutput, batch: Batch) -> tuple[Tensor, Tensor] | None:
        target = batch.targets.get(self.name)
        if target is None or not target[..., -1].bool().any():
            return None
        hidden = target[..., -1].bool()
        return output.predictions[hidden].flatten(), target[..., :-1][hidden].flatten()

    def target(self) -> NoPrediction:
        return NoPrediction()  # nothing to write per sample: a pretraining objective

    def example_inputs(self, encoded: Mapping[str, Features], targets: Any) -> dict[str, dict[str, Tensor]]:
        b = encoded[self.source].pooled.shape[0]
        g = torch.Generator().manual_seed(0)
        return {
            self.source: {"pixels": torch.randn(b, 3, 32, 32, generator=g), "present": torch.ones(b, dtype=torch.bool)}
        }
