"""Video path -> ``frames`` normalised frames ``(T, 3, S, S)``; clip-level augmentation and the robustness
corruptions (dropped frames, frozen frames, blur, noise)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmlightning import Processor
from mmlightning_video.decode import MAX_BYTES, MAX_PIXELS, read_clip


def resolve(value: Any, root: Path) -> Path:
    return Processor.resolve(value, root, "video")


class VideoProcessor(Processor):
    """Decodes ``frames`` frames of a clip (uniformly spread; a random frame per segment when training), scaled and
    centre-cut to ``size``, normalised with the frame encoder's ``mean`` and ``std``.

    Training augmentation (``augment``), the same for every frame of a clip so that motion is kept: temporal jitter,
    a random shift of up to ``shift`` of the size (edges repeated), and a left-right flip when ``flip`` (off by
    default: it turns a leftward motion into a rightward one)."""

    def __init__(
        self,
        frames: int,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool = True,
        shift: float = 0.1,
        flip: bool = False,
        max_bytes: int = MAX_BYTES,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.frames, self.size, self.mean, self.std = frames, size, list(mean), list(std)
        self.augment, self.shift, self.flip = augment, shift, flip
        self.max_bytes, self.max_pixels = max_bytes, max_pixels

    @property
    def random_in_training(self) -> bool:  # type: ignore[override]
        return self.augment

    def clip(self, value: Any, root: Path, train: bool = False) -> np.ndarray:
        """The chosen frames as decoded, ``(T, S, S, 3)`` uint8."""
        return read_clip(
            resolve(value, root), self.frames, self.size, train, max_bytes=self.max_bytes, max_pixels=self.max_pixels
        )

    def check(self, value: Any, root: Path) -> None:
        self.clip(value, root)

    def __call__(self, value: Any, root: Path, train: bool) -> dict[str, Tensor]:
        train = train and self.augment
        clip = self.clip(value, root, train)
        if train:
            clip = self._augment(clip)
        return {"frames": self._normalise(clip)}

    def _augment(self, clip: np.ndarray) -> np.ndarray:
        margin = round(self.shift * self.size)
        if margin:
            padded = np.pad(clip, ((0, 0), (margin, margin), (margin, margin), (0, 0)), mode="edge")
            top, left = (int(v) for v in torch.randint(0, 2 * margin + 1, (2,)))
            clip = padded[:, top : top + self.size, left : left + self.size]
        if self.flip and bool(torch.rand(()) < 0.5):
            clip = clip[:, :, ::-1]
        return np.ascontiguousarray(clip)

    def _normalise(self, clip: np.ndarray) -> Tensor:
        frames = torch.from_numpy(clip).permute(0, 3, 1, 2).float().div_(255)  # (T, 3, S, S)
        mean, std = torch.tensor(self.mean)[:, None, None], torch.tensor(self.std)[:, None, None]
        return (frames - mean) / std

    def corruptions(self) -> tuple[str, ...]:
        return ("dropped", "frozen", "blur", "noise")

    def corrupt(
        self, value: Any, root: Path, kind: str, severity: float, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """``dropped``: each frame black with probability ``severity``; ``frozen``: each frame a repeat of the one
        before with probability ``severity`` (a stuttering feed); ``blur``: a Gaussian blur of sigma ``severity``
        times a sixteenth of the size; ``noise``: Gaussian noise of standard deviation ``severity`` (the normalised
        frames' own scale)."""
        if kind not in self.corruptions():
            raise ValueError(f"no video corruption '{kind}': choose from {', '.join(self.corruptions())}")
        clip = self.clip(value, root)
        if severity <= 0:
            return {"frames": self._normalise(clip)}
        hit = torch.rand(len(clip), generator=generator) < severity
        if kind == "dropped":
            clip = clip.copy()
            clip[hit.numpy()] = 0
        elif kind == "frozen":
            clip = clip.copy()
            for t in range(1, len(clip)):
                if hit[t]:
                    clip[t] = clip[t - 1]
        frames = self._normalise(clip)
        if kind == "noise":
            frames = frames + severity * torch.randn(frames.shape, generator=generator)
        elif kind == "blur":
            from torchvision.transforms.functional import gaussian_blur

            sigma = severity * self.size / 16
            frames = gaussian_blur(frames, [2 * math.ceil(3 * sigma) + 1] * 2, [sigma, sigma])
        return {"frames": frames}

    def blank(self) -> dict[str, Tensor]:
        return {"frames": torch.zeros(self.frames, 3, self.size, self.size)}

    def preview(self, value: Any, root: Path) -> Any:
        """The frames the model sees, as a list of pictures (a dashboard shows them as an animation)."""
        from PIL import Image

        return [Image.fromarray(frame) for frame in self.clip(value, root)]
