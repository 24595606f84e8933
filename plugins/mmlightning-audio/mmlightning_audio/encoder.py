"""`AudioEncoder`: log-mel frames -> strided convolutions -> a Transformer over the frames."""

from __future__ import annotations

import math
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mmlightning import Encoder, Features
from mmlightning.layers import TransformerStack, sinusoidal_positions
from mmlightning_audio.processor import AudioProcessor


class AudioEncoder(Encoder):
    """Audio from WAV files: log-mel frames, two stride-2 convolutions, then a Transformer encoder."""

    modality = "audio"

    def __init__(
        self,
        dim: int = 256,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
        sample_rate: int = 16000,
        n_mels: int = 64,
        window_ms: float = 25.0,
        hop_ms: float = 10.0,
        max_seconds: float = 10.0,
        augment: bool = True,
    ) -> None:
        super().__init__()
        self.dim, self.sample_rate, self.n_mels, self.max_seconds, self.augment = (
            dim,
            sample_rate,
            n_mels,
            max_seconds,
            augment,
        )
        self.hop = max(1, int(sample_rate * hop_ms / 1000))
        self.n_fft = 2 ** math.ceil(math.log2(max(2, int(sample_rate * window_ms / 1000))))
        self.frontend = nn.Sequential(
            nn.Conv1d(n_mels, dim, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv1d(dim, dim, 3, stride=2, padding=1),
            nn.GELU(),
        )
        max_tokens = int(max_seconds * sample_rate / self.hop) // 4 + 2
        self.positions: Tensor
        self.register_buffer("positions", sinusoidal_positions(max_tokens, dim), persistent=False)
        self.stack = TransformerStack(dim, layers, heads, dropout=dropout)
        self.set_fitted({})  # nothing to learn from the data

    def processor(self) -> AudioProcessor:
        return AudioProcessor(self.sample_rate, self.n_mels, self.n_fft, self.hop, self.max_seconds, self.augment)

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        mel, mask = inputs["mel"], inputs["mask"]  # (B, T, n_mels), (B, T)
        x = self.frontend(mel.transpose(1, 2)).transpose(1, 2)  # (B, T/4, D)
        lengths = mask.sum(1)
        for _ in range(2):
            lengths = (lengths + 1) // 2  # what a stride-2, padding-1, kernel-3 convolution keeps
        mask = torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]  # (B, T/4)
        x = self.stack(x + self.positions[: x.shape[1]], mask)  # (B, T/4, D)
        return Features.from_tokens(x, mask, inputs.get("present"))

    def example_values(self, root: Path, count: int) -> list[Any]:
        values = []
        for i in range(count):
            seconds = 0.3 + 0.2 * i
            t = np.arange(int(self.sample_rate * seconds)) / self.sample_rate
            tone = (0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) * 32767).astype(np.int16)
            name = f"example_{i}.wav"
            with wave.open(str(Path(root) / name), "wb") as handle:
                handle.setnchannels(1)
                handle.setsampwidth(2)
                handle.setframerate(self.sample_rate)
                handle.writeframes(tone.tobytes())
            values.append(name)
        return values
