"""A discrete image tokenizer (VQ-VAE): a picture -> a short grid of codebook entries, and back."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlightning import Batch, Encoder, Features, Head, HeadOutput
from mmlightning.errors import ConfigError
from mmlightning.processing import NoPrediction
from mmlightning_vision.pictures import CodebookUsage, PixelError, PixelProcessor, SampleImages, picture_table

log = logging.getLogger(__name__)


class Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class VQVAEEncoder(Encoder):
    """A VQ-VAE image tokenizer (van den Oord et al. 2017): a convolutional encoder that shrinks the picture
    ``2 ** downsample`` times per side, a vector quantiser with EMA codebook updates and a commitment loss
    (``vector-quantize-pytorch``), and a convolutional decoder back to pixels (``decode``).

    Its features are the quantised vectors, one token per cell of the grid (a 28-pixel digit: 7 x 7 = 49), with
    ``codes`` (each cell's codebook entry) and, in training, ``loss`` (the commitment loss). Train it with
    ``ReconstructionHead``; a generation head (``ImageGenerationHead``) then learns to write its codes, with the
    tokenizer frozen (``InitFrom`` its run, ``freeze``). Pixels are read as they are (``PixelProcessor``: ``channels``
    1 for grey, 3 for colour, resized to ``image_size``, scaled to [0, 1]), never augmented.
    """

    modality = "image"

    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        dim: int = 32,
        codebook_size: int = 512,
        hidden: int = 64,
        downsample: int = 2,
        decay: float = 0.9,
        commitment_weight: float = 0.25,
        dead_code_threshold: float = 2.0,
        max_pixels: int = 40_000_000,
    ) -> None:
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize  # 4 s to import: only when a tokenizer is built

        if image_size % (2**downsample):
            raise ConfigError(
                f"VQVAEEncoder: image_size {image_size} is not a multiple of 2**downsample ({2**downsample})"
            )
        self.image_size, self.channels, self.dim, self.codebook_size = image_size, channels, dim, codebook_size
        self.max_pixels = max_pixels
        down: list[nn.Module] = []
        width = channels
        for _ in range(downsample):
            down += [nn.Conv2d(width, hidden, 4, stride=2, padding=1), nn.ReLU()]
            width = hidden
        self.encoder = nn.Sequential(*down, Residual(hidden), Residual(hidden), nn.ReLU(), nn.Conv2d(hidden, dim, 1))
        up: list[nn.Module] = [nn.Conv2d(dim, hidden, 3, padding=1), Residual(hidden), Residual(hidden)]
        for i in range(downsample):
            last = i == downsample - 1
            up += [nn.ReLU(), nn.ConvTranspose2d(hidden, channels if last else hidden, 4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*up)
        self.quantizer = VectorQuantize(
            dim=dim,
            codebook_size=codebook_size,
            decay=decay,
            commitment_weight=commitment_weight,
            kmeans_init=True,
            threshold_ema_dead_code=dead_code_threshold,
        )
        self.side = image_size // 2**downsample
        self.set_fitted({})  # nothing learnt from the data before training

    def processor(self) -> PixelProcessor:
        return PixelProcessor(self.image_size, self.channels, self.max_pixels)

    def facts(self) -> dict[str, Any]:
        return {"codebook_size": self.codebook_size, "grid": [self.side, self.side], "channels": self.channels}

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        cells = self.encoder(inputs["pixels"] * 2 - 1)  # (B, D, h, w)
        vectors = cells.flatten(2).transpose(1, 2)  # (B, h*w, D)
        with torch.autocast(vectors.device.type, enabled=False):  # the codebook's EMA stays in fp32
            quantised, codes, loss = self.quantizer(vectors.float())  # (B, N, D), (B, N), ()
        features = Features.from_tokens(quantised, None, inputs.get("present"))
        features.grid, features.codes = (self.side, self.side), codes
        features.loss = loss if self.training else None
        return features

    def vectors(self, codes: Tensor) -> Tensor:
        """Codebook entries -> their vectors. ``(B, N) long -> (B, N, D)``."""
        return self.quantizer.get_output_from_indices(codes)

    def decode_vectors(self, vectors: Tensor) -> Tensor:
        """Quantised vectors -> pixels, about [0, 1] (not clamped: training sees the error beyond it).
        ``(B, N, D) -> (B, C, H, W)``."""
        grid = vectors.transpose(1, 2).reshape(vectors.shape[0], self.dim, self.side, self.side)
        return (self.decoder(grid) + 1) / 2

    def decode(self, codes: Tensor) -> Tensor:
        """Codes -> pixels in [0, 1]. ``(B, N) long -> (B, C, H, W)``."""
        return self.decode_vectors(self.vectors(codes)).clamp(0, 1)

    def example_values(self, root: Path, count: int) -> list[Any]:
        from PIL import Image

        values = []
        for i in range(count):
            name = f"example_{i}.png"
            Image.new("L", (self.image_size + 3 * i, self.image_size), color=30 * i % 255).save(Path(root) / name)
            values.append(name)
        return values


def tokenizer_of(head: Head, key: str) -> VQVAEEncoder:
    """The model's encoder ``key``, which must be an image tokenizer (it gives codes and decodes them)."""
    encoders = head.context.encoders
    encoder = encoders.get(key)
    if encoder is None or not hasattr(encoder, "decode"):
        kind = "none" if encoder is None else type(encoder).__name__
        raise ConfigError(
            f"head '{head.name}' ({type(head).__name__}) needs encoder '{key}' to be an image tokenizer that gives codes "
            f"and decodes them (VQVAEEncoder); it is {kind}. Encoders: {sorted(encoders)}; set the head's image=KEY"
        )
    return encoder  # type: ignore[return-value]


class ReconstructionHead(Head):
    """Trains an image tokenizer (``VQVAEEncoder``) as an autoencoder: its quantised features decoded back to
    pixels, mean squared error against the input, plus the quantiser's commitment loss. No target column.

    Metrics per epoch: ``mse``; ``codes_used`` (the share of the codebook that coded at least one cell this epoch)
    and ``perplexity`` (the effective number of codes); a warning when fewer than half the codes are used (most are
    dead: a smaller ``codebook_size`` would do). Validation logs a table of ``previews`` pictures beside their
    reconstructions (W&B shows them)."""

    modality = "image"
    uses_target = False

    def __init__(self, dim: int, image: str = "image", previews: int = 8) -> None:
        super().__init__()
        self.source, self.previews = image, previews

    def forward(self, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> HeadOutput:
        features = encoded[self.source]
        tokenizer = tokenizer_of(self, self.source)
        pixels = batch.inputs[self.source]["pixels"]  # (B, C, H, W)
        rebuilt = tokenizer.decode_vectors(features.tokens.float())  # (B, C, H, W)
        present = features.present
        loss = F.mse_loss(rebuilt[present], pixels[present].float()) if present.any() else rebuilt.sum() * 0.0
        if features.loss is not None:
            loss = loss + features.loss
        self.last_codes = features.codes[present] if features.codes is not None else None  # for the usage metric
        return HeadOutput(loss=loss, predictions=rebuilt)

    def make_metrics(self) -> dict[str, nn.Module]:
        size = int(self.context.facts(self.source)["codebook_size"])
        return {"mse": PixelError(), "codes": CodebookUsage(size), "previews": SampleImages(self.previews)}

    def metric_inputs(self, output: HeadOutput, batch: Batch) -> tuple[Any, Any] | None:
        pixels, made = batch.inputs[self.source]["pixels"], output.predictions
        present = batch.inputs[self.source].get("present", torch.ones(len(pixels), dtype=torch.bool))
        if not present.any():
            return None
        shown = torch.stack([pixels[present].float(), made[present].float()], 1)  # (B, 2, C, H, W)
        found = {"pixels": pixels[present], "made": made[present], "shown": shown}
        codes = self.__dict__.get("last_codes")
        found["codes"] = codes if codes is not None else torch.zeros(0, dtype=torch.long)
        return found, None

    def metric_values(self, name: str, value: Tensor) -> dict[str, float]:
        if name == "previews":
            return {}
        if name == "codes":
            used, perplexity = float(value[0]), float(value[1])
            if used < 0.5:
                log.warning(
                    "head '%s': only %.0f%% of the codebook's codes are used (the rest are dead); a smaller "
                    "codebook_size, or a lower decay, would do",
                    self.name,
                    100 * used,
                )
            return {"codes_used": used, "perplexity": perplexity}
        return super().metric_values(name, value)

    def metric_tables(self, name: str, value: Tensor) -> dict[str, Any]:
        if name != "previews" or value.numel() == 0:
            return {}
        return {"reconstructions": picture_table(["input", "reconstruction"], value)}

    def target(self) -> NoPrediction:
        return NoPrediction()

    def example_inputs(self, encoded: Mapping[str, Features], targets: Sequence[Any]) -> dict[str, dict[str, Tensor]]:
        b = encoded[self.source].pooled.shape[0]
        g = torch.Generator().manual_seed(0)
        return {
            self.source: {"pixels": torch.rand(b, 1, 28, 28, generator=g), "present": torch.ones(b, dtype=torch.bool)}
        }
