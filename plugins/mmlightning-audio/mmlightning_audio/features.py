"""Reading WAV files and turning waveforms into log-mel spectrograms, with torch and the standard library."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

WIDTHS = {1: np.uint8, 2: np.int16, 4: np.int32}


def read_wav(path: Path) -> tuple[Tensor, int]:
    """A PCM WAV file -> (mono waveform in [-1, 1], sample rate). Raises ValueError saying what is wrong."""
    try:
        with path.open("rb") as file, wave.open(file, "rb") as handle:  # a path, or a file read from shards
            width, channels, rate = handle.getsampwidth(), handle.getnchannels(), handle.getframerate()
            raw = handle.readframes(handle.getnframes())
    except (wave.Error, EOFError) as err:
        raise ValueError(f"unreadable WAV file {path}: {err} (expected uncompressed PCM)") from err
    if width not in WIDTHS:
        raise ValueError(f"{path}: {8 * width}-bit samples are not supported (expected 8, 16 or 32-bit PCM)")
    samples = np.frombuffer(raw, dtype=WIDTHS[width]).astype(np.float32)
    samples = (samples - 128.0) / 128.0 if width == 1 else samples / float(2 ** (8 * width - 1))
    if samples.size < channels:
        raise ValueError(f"{path}: the file holds no audio")
    mono = samples[: samples.size - samples.size % channels].reshape(-1, channels).mean(1)
    return torch.from_numpy(mono.copy()), rate


def read_audio(path: Path) -> tuple[Tensor, int] | None:
    """A WAV file, or the sound track of any container FFmpeg reads (MP4, WebM, MP3, FLAC, ...: decoded by PyAV)
    -> (mono waveform in [-1, 1], sample rate); None for a file with no audio stream (a silent video)."""
    with path.open("rb") as handle:  # a path, or a file read from shards (mmlightning.processing.StoredFile)
        head = handle.read(12)
    if head[:4] == b"RIFF":  # WAV (or a broken one: read_wav says what is wrong)
        return read_wav(path)
    try:
        import av
    except ImportError:
        raise ValueError(f"{path} is not a WAV file; reading other formats needs PyAV: pip install av") from None
    try:
        with av.open(str(path) if isinstance(path, Path) else path, metadata_errors="ignore") as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate or stream.rate
            chunks = [f.to_ndarray().reshape(-1, f.samples) for f in container.decode(stream)]  # (channels, n)
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"unreadable audio in {path}: {err}") from err
    if not chunks or not rate:
        raise ValueError(f"{path}: its audio stream holds no samples")
    samples = np.concatenate(chunks, axis=1).astype(np.float32)
    if np.issubdtype(chunks[0].dtype, np.integer):
        samples /= float(np.iinfo(chunks[0].dtype).max)
    return torch.from_numpy(samples.mean(0).copy()), int(rate)


def resample(waveform: Tensor, rate: int, target: int) -> Tensor:
    """Linear-interpolation resampling (enough for speech features; exact when the rates match)."""
    if rate == target:
        return waveform
    length = max(1, round(waveform.numel() * target / rate))
    return F.interpolate(waveform[None, None], size=length, mode="linear", align_corners=False)[0, 0]


def mel_filterbank(n_fft: int, n_mels: int, rate: int) -> Tensor:
    """Triangular HTK mel filters. ``-> (n_fft // 2 + 1, n_mels)``."""

    def mel(hz: float) -> float:
        return 2595.0 * math.log10(1.0 + hz / 700.0)

    points = torch.linspace(mel(0.0), mel(rate / 2), n_mels + 2)
    hz = 700.0 * (10 ** (points / 2595.0) - 1.0)  # (n_mels + 2,)
    bins = torch.linspace(0, rate / 2, n_fft // 2 + 1)[:, None]  # (F, 1)
    left, centre, right = hz[:-2], hz[1:-1], hz[2:]
    rising = (bins - left) / (centre - left).clamp(min=1e-6)
    falling = (right - bins) / (right - centre).clamp(min=1e-6)
    return rising.minimum(falling).clamp(min=0.0)  # (F, n_mels)


def log_mel(waveform: Tensor, filters: Tensor, n_fft: int, hop: int) -> Tensor:
    """Waveform ``(S,)`` -> log-mel frames ``(T, n_mels)``."""
    if waveform.numel() < n_fft:
        waveform = F.pad(waveform, (0, n_fft - waveform.numel()))
    spectrum = torch.stft(
        waveform, n_fft, hop, window=torch.hann_window(n_fft), center=True, return_complex=True
    )  # (F, T)
    power = spectrum.abs().pow(2).T  # (T, F)
    return torch.log(power @ filters + 1e-6)  # (T, n_mels)
