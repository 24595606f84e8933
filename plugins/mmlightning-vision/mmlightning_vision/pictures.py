"""Pictures as pixels: read as they are (for tokenizers and generators), written as PNGs, shown in W&B tables."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from mmlightning import Processor, TargetCodec
from mmlightning_vision.processor import MAX_PIXELS, opened, resolve


class PixelProcessor(Processor):
    """An image file -> ``pixels`` ``(C, S, S)`` in [0, 1]: grey (``channels=1``) or RGB, resized to ``size`` when
    it is not that size already, never augmented or normalised (a tokenizer rebuilds exactly these pixels). A
    picture over ``max_pixels`` (from its header) is a bad row."""

    random_in_training = False

    def __init__(self, size: int, channels: int = 1, max_pixels: int = MAX_PIXELS) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (colour), got {channels}")
        self.size, self.channels, self.max_pixels = size, channels, max_pixels

    def check(self, value: Any, root: Path) -> None:
        with opened(resolve(value, root), self.max_pixels) as image:
            image.verify()

    def __call__(self, value: Any, root: Path, train: bool) -> dict[str, Tensor]:
        with opened(resolve(value, root), self.max_pixels) as image:
            return {"pixels": to_pixels(image, self.size, self.channels)}

    def blank(self) -> dict[str, Tensor]:
        return {"pixels": torch.zeros(self.channels, self.size, self.size)}

    def collate(self, items: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        return {"pixels": torch.stack([item["pixels"] for item in items])}  # (B, C, S, S)

    def preview(self, value: Any, root: Path) -> Any:
        with opened(resolve(value, root), self.max_pixels) as image:
            return to_image(to_pixels(image, self.size, self.channels))


def to_pixels(image: Any, size: int, channels: int) -> Tensor:
    """A PIL image -> ``(C, size, size)`` floats in [0, 1]."""
    import numpy as np
    from PIL import Image

    picture = image.convert("L" if channels == 1 else "RGB")
    if picture.size != (size, size):
        picture = picture.resize((size, size), Image.Resampling.BILINEAR)
    array = torch.from_numpy(np.asarray(picture, dtype=np.uint8).copy()).float() / 255
    return array[None] if channels == 1 else array.permute(2, 0, 1)


def to_image(pixels: Tensor, scale: int = 1) -> Any:
    """``(C, H, W)`` in [0, 1] -> a PIL image (grey or RGB), ``scale`` times larger (nearest neighbour)."""
    from PIL import Image

    array = (pixels.detach().float().clamp(0, 1) * 255).round().byte().cpu()
    image = (
        Image.fromarray(array[0].numpy(), "L")
        if array.shape[0] == 1
        else Image.fromarray(array.permute(1, 2, 0).numpy(), "RGB")
    )
    return image if scale == 1 else image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def png_bytes(pixels: Tensor) -> bytes:
    out = io.BytesIO()
    to_image(pixels).save(out, format="PNG")
    return out.getvalue()


def data_uri(pixels: Tensor) -> str:
    """A picture as a ``data:image/png;base64,...`` string (predictions files and the server's answers)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode()


def grid(pictures: Tensor, columns: int = 8, pad: int = 2) -> Any:
    """``(K, C, H, W)`` -> one PIL image, ``columns`` a row, white between them."""
    k, c, h, w = pictures.shape
    rows = -(-k // columns)
    sheet = torch.ones(c, rows * (h + pad) + pad, min(k, columns) * (w + pad) + pad)
    for i, picture in enumerate(pictures):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        sheet[:, top : top + h, left : left + w] = picture.float().clamp(0, 1)
    return to_image(sheet)


def picture_table(columns: list[str], value: Tensor) -> tuple[list[str], list[list[Any]]]:
    """``(K, M, C, H, W)`` (M pictures a row) -> a table of PIL images, 4 times enlarged, for W&B."""
    return columns, [[to_image(picture, scale=4) for picture in row] for row in value]


class PictureCodec(TargetCodec):
    """A head that draws pictures: each prediction ``(C, H, W)`` in [0, 1] -> a PNG as a data URI."""

    def decode(self, output: Any) -> list[Any]:
        return [data_uri(pixels) for pixels in output.predictions]

    def sheet(self, predictions: Tensor, columns: int = 8) -> str | None:
        out = io.BytesIO()
        grid(predictions, columns).save(out, format="PNG")
        return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


class PixelError(Metric):
    """Mean squared error between pictures and what a head made of them, over the epoch."""

    total: Tensor  # metric states (add_state)
    count: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, found: dict[str, Tensor], _: Any = None) -> None:
        self.total += (found["made"].float() - found["pixels"].float()).pow(2).sum().double()
        self.count += found["pixels"].numel()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp(min=1)).float()


class MeanOf(Metric):
    """The mean of one entry of what a head gives its metrics (``found[key]``, any shape), over the epoch."""

    total: Tensor  # metric states (add_state)
    count: Tensor

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, found: dict[str, Tensor], _: Any = None) -> None:
        self.total += found[self.key].double().sum()
        self.count += found[self.key].numel()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp(min=1)).float()


class CodebookUsage(Metric):
    """How much of a codebook coded the epoch's pictures: ``[share of codes used, perplexity]``."""

    counts: Tensor  # a metric state (add_state)

    def __init__(self, size: int) -> None:
        super().__init__()
        self.add_state("counts", torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, found: dict[str, Tensor], _: Any = None) -> None:
        codes = found["codes"].flatten()
        self.counts += torch.bincount(codes, minlength=self.counts.numel()).double()

    def compute(self) -> Tensor:
        share = self.counts / self.counts.sum().clamp(min=1)
        entropy = -(share[share > 0] * share[share > 0].log()).sum()
        return torch.stack([(self.counts > 0).double().mean(), entropy.exp()]).float()


class SampleImages(Metric):
    """The epoch's first ``count`` pictures beside what a head made of them, ``(K, 2, C, H, W)``, for a table."""

    full_state_update = False
    kept: list[Tensor]  # a metric state (add_state); one tensor once gathered across processes

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count
        self.add_state("kept", [], dist_reduce_fx="cat")

    def update(self, found: dict[str, Tensor], _: Any = None) -> None:
        have = sum(int(part.shape[0]) for part in self.kept)
        if have < self.count and "shown" in found:
            self.kept.append(found["shown"][: self.count - have].detach().float().cpu())

    def compute(self) -> Tensor:
        if not self.kept:
            return torch.zeros(0)
        kept: Any = self.kept
        return torch.cat(kept if isinstance(kept, list) else [kept])[: self.count]
