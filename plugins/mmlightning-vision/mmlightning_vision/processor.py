"""Image path -> normalised pixels, with timm's transforms for the model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from mmlightning import Processor
from mmlightning.errors import TooLargeError


def resolve(value: Any, root: Path) -> Path:
    return Processor.resolve(value, root, "image")


MAX_PIXELS = 40_000_000  # a larger picture is a bad row: a decompression bomb, or far beyond any model's input


def opened(path: Path, max_pixels: int = MAX_PIXELS, needed: int = 0) -> Any:
    """``Image.open`` with the size read from the header first: a picture over ``max_pixels`` is refused before
    any pixel is decoded. A JPEG at least four times ``needed`` on its shorter side is decoded at a smaller scale
    (``draft``: still at least twice ``needed``), so a 12-megapixel photo for a 224-pixel model costs little."""
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as err:
        raise TooLargeError(f"image {path} is too large to decode safely ({err})") from err
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"unreadable image {path}: {err}") from err
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise TooLargeError(
            f"image {path} is {width}x{height} ({width * height / 1e6:.0f} megapixels), over the limit of "
            f"{max_pixels / 1e6:.0f}: shrink it (or raise the encoder's max_pixels)"
        )
    if needed and image.format == "JPEG" and min(width, height) >= 4 * needed:
        image.draft("RGB", (2 * needed, 2 * needed))
    return image


class ImageProcessor(Processor):
    """Decodes an image with PIL (RGB) and applies the train or eval transform. A picture over ``max_pixels``
    (read from its header, before decoding) is a bad row."""

    def __init__(
        self,
        data_config: dict[str, Any],
        augment: bool = True,
        augment_args: dict[str, Any] | None = None,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.data_config, self.augment, self.augment_args = dict(data_config), augment, dict(augment_args or {})
        self.max_pixels = max_pixels
        self.data_config["input_size"] = tuple(self.data_config["input_size"])
        self._transforms: dict[bool, Any] = {}

    @property
    def random_in_training(self) -> bool:  # type: ignore[override]
        return self.augment

    def transform(self, train: bool) -> Any:
        train = train and self.augment
        if train not in self._transforms:
            from timm.data import create_transform

            from mmlightning_vision.lean import lean

            made = create_transform(**self.data_config, is_training=train, **(self.augment_args if train else {}))
            self._transforms[train] = lean(made)  # the same pixels, with less work per sample
        return self._transforms[train]

    def check(self, value: Any, root: Path) -> None:
        path = resolve(value, root)
        try:
            with opened(path, self.max_pixels) as image:
                image.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(f"unreadable image {path}: {err}") from err

    def __call__(self, value: Any, root: Path, train: bool) -> dict[str, Tensor]:
        return {"pixels": self.transform(train)(self._rgb(value, root))}  # (3, H, W)

    def _rgb(self, value: Any, root: Path) -> Image.Image:
        path = resolve(value, root)
        needed = math.ceil(max(self.data_config["input_size"][1:]) / self.data_config.get("crop_pct", 1.0))
        try:
            with opened(path, self.max_pixels, needed) as image:
                return image.convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"unreadable image {path}: {err}") from err

    def decoded(self, value: Any, root: Path) -> dict[str, Tensor]:
        """The decoded picture, ``(H, W, 3)`` uint8, before any transform: the transforms (random in training) run
        on it as on a picture read from its file. A JPEG far larger than the model's input is kept at the reduced
        scale ``__call__`` decodes it at; a small picture (CIFAR-10's 32 px) takes 3 KB."""
        return {"rgb": torch.from_numpy(numpy.asarray(self._rgb(value, root)).copy())}

    def from_decoded(self, decoded: dict[str, Tensor], train: bool) -> dict[str, Tensor]:
        rgb = decoded["rgb"]  # (H, W, 3) uint8
        picture = Image.frombytes("RGB", (rgb.shape[1], rgb.shape[0]), rgb.numpy().tobytes())
        return {"pixels": self.transform(train)(picture)}

    def corruptions(self) -> tuple[str, ...]:
        return ("noise", "blur")

    def corrupt(
        self, value: Any, root: Path, kind: str, severity: float, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """``noise``: Gaussian noise of standard deviation ``severity`` (the normalised image's own scale);
        ``blur``: a Gaussian blur of sigma ``severity`` times a sixteenth of the image's width."""
        item = self(value, root, train=False)
        if severity <= 0:
            return item
        pixels = item["pixels"]  # (3, H, W)
        if kind == "noise":
            pixels = pixels + severity * torch.randn(pixels.shape, generator=generator)
        elif kind == "blur":
            from torchvision.transforms.functional import gaussian_blur

            sigma = severity * pixels.shape[-1] / 16
            pixels = gaussian_blur(pixels, [2 * math.ceil(3 * sigma) + 1] * 2, [sigma, sigma])
        else:
            raise ValueError(f"no image corruption '{kind}': choose from {', '.join(self.corruptions())}")
        return {"pixels": pixels}

    def blank(self) -> dict[str, Tensor]:
        return {"pixels": torch.zeros(self.data_config["input_size"])}

    def collate(self, items: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        return {"pixels": torch.stack([item["pixels"] for item in items])}  # (B, 3, H, W)

    def preview(self, value: Any, root: Path) -> Any:
        with opened(resolve(value, root), self.max_pixels, 256) as image:
            thumb = image.convert("RGB")
        thumb.thumbnail((256, 256))
        return thumb

    def preview_weights(self, value: Any, root: Path, weights: Tensor) -> Any:
        """The picture as the model saw it (resized and centre-cropped) with ``weights`` ``(H, W)`` over it as a
        red heat map: the strongest cell fully red at half opacity, the weakest clear."""
        with opened(resolve(value, root), self.max_pixels) as image:
            seen = self.as_seen(image.convert("RGB"))
        heat = weights.float().cpu()
        heat = (heat - heat.min()) / (heat.max() - heat.min()).clamp(min=1e-12)  # (H, W) in [0, 1]
        alpha = Image.fromarray((heat * 128).byte().numpy(), mode="L").resize(seen.size, Image.Resampling.BILINEAR)
        return Image.composite(Image.new("RGB", seen.size, (255, 0, 0)), seen, alpha)

    def as_seen(self, image: Image.Image) -> Image.Image:
        """The evaluation transform's geometry (timm: shorter side to size / crop_pct, centre crop), at least 128 px."""
        height, width = self.data_config["input_size"][1:]
        scale = max(height, width) / float(self.data_config.get("crop_pct") or 1.0) / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
        left, top = (image.width - width) // 2, (image.height - height) // 2
        seen = image.crop((left, top, left + width, top + height))
        grow = max(1, -(-128 // min(height, width)))
        return seen.resize((width * grow, height * grow), Image.Resampling.NEAREST)
