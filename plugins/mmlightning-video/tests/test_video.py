"""mmlightning-video: decoding (short, long, bad files), the encoder contract, augmentation and corruptions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmlightning.testing import check_encoder
from mmlightning_video import VideoEncoder
from mmlightning_video.clips import moving_square, write_clip
from mmlightning_video.decode import read_clip


def small(**kwargs) -> VideoEncoder:
    args = {"model_name": "test_resnet.r160_in1k", "image_size": 32, "frames": 4, "dim": 16, "heads": 2}
    return VideoEncoder(**{**args, **kwargs})


def centre_x(clip: np.ndarray) -> list[float]:
    return [float(np.nonzero(frame[..., 0] > 128)[1].mean()) for frame in clip]


def test_encoder_contract(tmp_path):
    encoder = small()
    check_encoder(encoder, encoder.example_values(tmp_path, 3), tmp_path)


@pytest.mark.parametrize("options", [{"frame_tokens": "cells"}, {"temporal": "mean", "dim": None}])
def test_encoder_variants(tmp_path, options):
    encoder = small(**options)
    check_encoder(encoder, encoder.example_values(tmp_path, 2), tmp_path)


def clip_file(tmp_path: Path, name: str = "c.mp4", frames: int = 12, size: int = 32, **kwargs) -> Path:
    return write_clip(tmp_path / name, moving_square(frames, size, kwargs.pop("direction", "right")), **kwargs)


def test_frames_spread_evenly_and_short_clips_repeat(tmp_path):
    path = clip_file(tmp_path, frames=12)
    xs = centre_x(read_clip(path, 4, 32))
    assert xs == sorted(xs) and xs[0] < xs[-1]  # in time order, moving right
    repeated = read_clip(clip_file(tmp_path, "short.mp4", frames=3), 6, 32)
    assert repeated.shape == (6, 32, 32, 3)
    assert len({round(x) for x in centre_x(repeated)}) == 3  # each of the 3 frames twice, in order


def test_long_clip_is_read_by_seeking_and_matches_decoding_through(tmp_path, monkeypatch):
    import mmlightning_video.decode as decode

    path = write_clip(tmp_path / "long.mp4", np.repeat(moving_square(20, 32), 8, axis=0))  # 160 frames
    through = read_clip(path, 5, 32)
    calls = []
    monkeypatch.setattr(decode, "SEEK_AFTER", 50)
    original = decode._seek
    monkeypatch.setattr(decode, "_seek", lambda *a: calls.append(1) or original(*a))
    sought = read_clip(path, 5, 32)
    assert calls and np.allclose(centre_x(sought), centre_x(through), atol=1.0)


def test_frames_are_scaled_while_decoding_and_the_centre_cut(tmp_path):
    wide = np.zeros((2, 120, 400, 3), dtype=np.uint8)
    wide[:, :, 180:220] = 255  # a bright bar in the middle
    clip = read_clip(write_clip(tmp_path / "wide.mp4", wide), 2, 30)
    assert clip.shape == (2, 30, 30, 3) and clip[:, :, 15, 0].mean() > 200 and clip[:, :, 0, 0].mean() < 40


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_text("not a video at all\n" * 50), "unreadable video file"),
        (lambda p: p.write_bytes(bytes(range(256)) * 40), "unreadable video file"),
    ],
    ids=["zero-byte", "text renamed .mp4", "random bytes"],
)
def test_bad_files_are_bad_rows_with_the_reason(tmp_path, make, reason):
    make(tmp_path / "bad.mp4")
    with pytest.raises(ValueError, match=reason):
        small().processor().check("bad.mp4", tmp_path)


def test_a_truncated_file_is_a_bad_row(tmp_path):
    path = clip_file(tmp_path, frames=24)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(ValueError, match="bad.mp4|c.mp4"):
        small().processor().check("c.mp4", tmp_path)


def test_no_video_stream_and_an_unknown_codec_are_refused(tmp_path):
    import av

    with av.open(str(tmp_path / "sound.m4a"), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(ValueError, match="has no video stream \\(streams: audio\\)"):
        small().processor().check("sound.m4a", tmp_path)
    mkv = write_clip(tmp_path / "c.mkv", moving_square(4, 32), codec="mpeg4")
    data = mkv.read_bytes()
    assert b"V_MPEG4/ISO/ASP" in data
    (tmp_path / "odd.mkv").write_bytes(data.replace(b"V_MPEG4/ISO/ASP", b"V_UNKNOWN/XYZ/Q"))
    with pytest.raises(ValueError, match="odd.mkv"):
        small().processor().check("odd.mkv", tmp_path)


def test_size_limits(tmp_path):
    path = write_clip(tmp_path / "big.mp4", np.zeros((2, 1200, 1600, 3), np.uint8))
    assert read_clip(path, 2, 32).shape == (2, 32, 32, 3)  # 1600x1200 scaled down while decoding
    with pytest.raises(ValueError, match="1600x1200 .* over the limit of 1:"):
        small(max_pixels=1_000_000).processor().check("big.mp4", tmp_path)
    with pytest.raises(ValueError, match="over the limit of 2 kB"):
        small(max_bytes=2000).processor().check("big.mp4", tmp_path)


def test_training_augmentation_is_one_shift_for_the_whole_clip(tmp_path):
    clip_file(tmp_path, frames=8, direction="down")
    processor = small(frames=8, shift=0.2).processor()
    torch.manual_seed(0)
    frames = processor("c.mp4", tmp_path, train=True)["frames"]  # (T, 3, S, S)
    assert frames.shape == (8, 3, 32, 32)
    bright = frames[:, 0] > frames[:, 0].mean()
    columns = [torch.nonzero(b)[:, 1].float().mean().item() for b in bright]
    assert max(columns) - min(columns) < 1.5  # moving down: the same shift in every frame keeps x still


@pytest.mark.parametrize("kind", ["dropped", "frozen", "blur", "noise"])
def test_corruptions(tmp_path, kind):
    clip_file(tmp_path, frames=8)
    processor = small(frames=8).processor()
    clean = processor("c.mp4", tmp_path, train=False)["frames"]
    same = processor.corrupt("c.mp4", tmp_path, kind, 0.0, torch.Generator().manual_seed(0))["frames"]
    hurt = processor.corrupt("c.mp4", tmp_path, kind, 1.0, torch.Generator().manual_seed(0))["frames"]
    again = processor.corrupt("c.mp4", tmp_path, kind, 1.0, torch.Generator().manual_seed(0))["frames"]
    assert torch.equal(same, clean) and torch.equal(hurt, again) and not torch.allclose(hurt, clean)
    if kind == "frozen":
        assert all(torch.equal(hurt[t], hurt[0]) for t in range(8))  # every frame a repeat of the first


def test_preview_is_the_frames(tmp_path):
    clip_file(tmp_path, frames=8)
    shown = small(frames=4).processor().preview("c.mp4", tmp_path)
    assert len(shown) == 4 and shown[0].size == (32, 32)


def test_the_sound_track_feeds_the_audio_encoder_and_no_track_is_a_missing_modality(tmp_path):
    from mmlightning.bundle import ProcessorBundle
    from mmlightning_audio import AudioEncoder

    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    clip_file(tmp_path, "sound.mp4", audio=tone)
    clip_file(tmp_path, "silent.mp4")
    audio = AudioEncoder(dim=16, layers=1, heads=2, sample_rate=16000, n_mels=20).processor()
    assert audio("sound.mp4", tmp_path, train=False)["mel"].shape[0] > 40  # about half a second of frames
    assert audio("silent.mp4", tmp_path, train=False) is None
    audio.check("silent.mp4", tmp_path)  # no sound track is not a bad row
    bundle = ProcessorBundle(
        {"video": small().processor(), "audio": audio}, {}, columns={"audio": "video"}, targets=[], fitted=True
    )
    batch = bundle([{"video": "sound.mp4"}, {"video": "silent.mp4"}], tmp_path)
    assert batch.inputs["audio"]["present"].tolist() == [True, False]
    assert batch.inputs["video"]["present"].tolist() == [True, True]
