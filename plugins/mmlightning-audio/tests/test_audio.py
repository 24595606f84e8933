"""mmlightning-audio: WAV reading, log-mel frames, masks after subsampling, the encoder contract."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from mmlightning.testing import check_encoder
from mmlightning_audio import AudioEncoder
from mmlightning_audio.features import mel_filterbank, read_wav


def write_wav(path: Path, samples: np.ndarray, rate: int = 8000, channels: int = 1) -> str:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.astype(np.int16).tobytes())
    return path.name


def test_encoder_contract(tmp_path):
    encoder = AudioEncoder(dim=16, layers=1, heads=2, sample_rate=8000, n_mels=20)
    check_encoder(encoder, encoder.example_values(tmp_path, 3), tmp_path)


def test_stereo_is_mixed_and_scaled(tmp_path):
    stereo = np.stack([np.full(100, 16384), np.full(100, -16384)], 1).reshape(-1)
    waveform, rate = read_wav(tmp_path / write_wav(tmp_path / "s.wav", stereo, channels=2))
    assert rate == 8000 and waveform.shape == (100,) and waveform.abs().max() == 0


def test_padding_mask_follows_subsampling(tmp_path):
    encoder = AudioEncoder(dim=16, layers=1, heads=2, sample_rate=8000, n_mels=20).eval()
    processor = encoder.processor()
    short = write_wav(tmp_path / "a.wav", np.random.default_rng(0).normal(0, 3000, 800))
    long = write_wav(tmp_path / "b.wav", np.random.default_rng(1).normal(0, 3000, 4000))
    items = [processor(short, tmp_path, False), processor(long, tmp_path, False)]
    batch = processor.batch(items)
    features = encoder(batch)
    assert features.mask.sum(1).tolist() == [(((n + 1) // 2) + 1) // 2 for n in batch["mask"].sum(1).tolist()]
    alone = encoder(processor.batch(items[:1])).pooled
    assert torch.allclose(alone, features.pooled[:1], atol=1e-5)  # padding does not change a clip's encoding


def test_resampling_keeps_duration(tmp_path):
    clip = write_wav(tmp_path / "c.wav", np.random.default_rng(0).normal(0, 3000, 16000), rate=16000)
    processor = AudioEncoder(sample_rate=8000, n_mels=20).processor()
    assert processor(clip, tmp_path, False)["mel"].shape[0] == 8000 // processor.hop + 1


def test_bad_audio_says_what_is_wrong(tmp_path):
    processor = AudioEncoder(sample_rate=8000).processor()
    (tmp_path / "x.wav").write_bytes(b"RIFF0000 not really")
    silent = write_wav(tmp_path / "silent.wav", np.zeros(800))
    for value, reason in [("nope.wav", "audio file not found"), ("x.wav", "unreadable WAV"), (silent, "silent")]:
        with pytest.raises(ValueError, match=reason):
            processor.check(value, tmp_path)


def test_mel_filters_cover_the_spectrum():
    filters = mel_filterbank(256, 40, 8000)
    assert filters.shape == (129, 40) and (filters.sum(0) > 0).all() and filters.max() <= 1.0


def test_noise_corruption_is_the_clean_clip_at_severity_zero_and_falls_in_snr(tmp_path):
    clip = write_wav(tmp_path / "tone.wav", 3000 * np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000))
    processor = AudioEncoder(dim=16, layers=1, heads=2, sample_rate=8000).processor()
    clean = processor(clip, tmp_path, train=False)["mel"]
    assert processor.corruptions() == ("noise",)
    same = processor.corrupt(clip, tmp_path, "noise", 0.0, torch.Generator().manual_seed(0))["mel"]
    assert torch.equal(clean, same)
    changes = [
        float(
            (processor.corrupt(clip, tmp_path, "noise", s, torch.Generator().manual_seed(0))["mel"] - clean)
            .abs()
            .mean()
        )
        for s in (0.25, 0.5, 1.0)
    ]
    assert 0 < changes[0] < changes[1] < changes[2]
    with pytest.raises(ValueError, match="no audio corruption 'blur'"):
        processor.corrupt(clip, tmp_path, "blur", 0.5, torch.Generator())
