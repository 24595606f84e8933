"""WAV path -> normalised log-mel frames (with SpecAugment-style masking when training); batches padded with a mask."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mmlightning import Processor
from mmlightning_audio.features import log_mel, mel_filterbank, read_audio, resample


def resolve(value: Any, root: Path) -> Path:
    return Processor.resolve(value, root, "audio")


class AudioProcessor(Processor):
    """Reads a WAV file (or a video's sound track), resamples, computes log-mel frames, normalises them per clip,
    crops to ``max_seconds``. A file with no sound track gives nothing: that row is missing this modality."""

    def __init__(self, sample_rate: int, n_mels: int, n_fft: int, hop: int, max_seconds: float, augment: bool) -> None:
        self.sample_rate, self.n_mels, self.n_fft, self.hop = sample_rate, n_mels, n_fft, hop
        self.max_seconds, self.max_frames, self.augment = max_seconds, int(max_seconds * sample_rate / hop) + 1, augment
        self.filters = mel_filterbank(n_fft, n_mels, sample_rate)

    random_in_training = True  # long clips are cropped at random in training, whatever ``augment`` says

    def check(self, value: Any, root: Path) -> None:
        found = read_audio(resolve(value, root))
        if found is not None and not found[0].abs().max() > 0:
            raise ValueError(f"{value}: the clip is silent (all samples are zero)")

    def __call__(self, value: Any, root: Path, train: bool) -> dict[str, Tensor] | None:
        return self.from_decoded(self.decoded(value, root), train)  # None: no sound track, a missing modality

    def decoded(self, value: Any, root: Path) -> dict[str, Tensor]:
        """The whole clip's log-mel frames, before the crop, normalisation and masking (random in training) that
        ``from_decoded`` applies; empty for a file with no sound track."""
        found = read_audio(resolve(value, root))
        if found is None:
            return {}
        return {"mel": log_mel(resample(found[0], found[1], self.sample_rate), self.filters, self.n_fft, self.hop)}

    def from_decoded(self, decoded: dict[str, Tensor], train: bool) -> dict[str, Tensor] | None:
        return self._finish(decoded["mel"], train) if "mel" in decoded else None

    def corruptions(self) -> tuple[str, ...]:
        return ("noise",)

    def corrupt(
        self, value: Any, root: Path, kind: str, severity: float, generator: torch.Generator
    ) -> dict[str, Tensor] | None:
        """``noise``: white noise added to the waveform at a signal-to-noise ratio falling from 20 dB (severity
        just above 0) to -5 dB (severity 1)."""
        if kind != "noise":
            raise ValueError(f"no audio corruption '{kind}': choose from {', '.join(self.corruptions())}")
        found = read_audio(resolve(value, root))
        if found is None:
            return None
        waveform = resample(found[0], found[1], self.sample_rate)
        if severity > 0:
            snr_db = 20.0 - 25.0 * severity
            power = waveform.pow(2).mean() / 10 ** (snr_db / 10)
            waveform = waveform + power.sqrt() * torch.randn(waveform.shape, generator=generator)
        return self._features(waveform, train=False)

    def _features(self, waveform: Tensor, train: bool) -> dict[str, Tensor]:
        return self._finish(log_mel(waveform, self.filters, self.n_fft, self.hop), train)  # (T, n_mels)

    def _finish(self, mel: Tensor, train: bool) -> dict[str, Tensor]:
        if mel.shape[0] > self.max_frames:
            start = int(torch.randint(0, mel.shape[0] - self.max_frames + 1, ())) if train else 0
            mel = mel[start : start + self.max_frames]
        mel = (mel - mel.mean()) / mel.std().clamp(min=1e-5)
        if train and self.augment:
            mel = _mask(_mask(mel, 0, max(1, mel.shape[0] // 8)), 1, max(1, self.n_mels // 8))
        return {"mel": mel}

    def blank(self) -> dict[str, Tensor]:
        return {"mel": torch.zeros(1, self.n_mels)}

    def collate(self, items: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        longest = max(item["mel"].shape[0] for item in items)
        mel = torch.zeros(len(items), longest, self.n_mels)  # (B, T, n_mels)
        mask = torch.zeros(len(items), longest, dtype=torch.bool)  # (B, T)
        for row, item in enumerate(items):
            mel[row, : item["mel"].shape[0]] = item["mel"]
            mask[row, : item["mel"].shape[0]] = True
        return {"mel": mel, "mask": mask}

    def preview(self, value: Any, root: Path) -> Any:
        found = read_audio(resolve(value, root))
        return "(no sound track)" if found is None else (found[0].numpy(), found[1])


def _mask(mel: Tensor, axis: int, width: int) -> Tensor:
    """Zero one random band of up to ``width`` frames (axis 0) or mel bins (axis 1)."""
    size = mel.shape[axis]
    span = int(torch.randint(0, width + 1, ()))
    start = int(torch.randint(0, max(1, size - span + 1), ()))
    mel = mel.clone()
    mel.narrow(axis, start, min(span, size - start)).zero_()
    return mel
