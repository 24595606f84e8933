"""Writing clips with PyAV: for tests, the kit's example values and the surveillance example's dataset."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def write_clip(
    path: Path,
    frames: np.ndarray,
    fps: int = 12,
    audio: np.ndarray | None = None,
    rate: int = 16000,
    codec: str = "libx264",
) -> Path:
    """``frames`` ``(T, H, W, 3)`` uint8 as an MP4 (H.264, even sizes), with ``audio`` (mono floats in [-1, 1]) as
    an AAC track at ``rate`` when given."""
    import av

    frames = np.asarray(frames, dtype=np.uint8)
    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=rate)
            sound.layout = "mono"
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None and audio is not None:
            samples = np.asarray(audio, dtype=np.float32).reshape(1, -1)
            chunk = 1024
            for start in range(0, samples.shape[1], chunk):
                piece = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, start : start + chunk]), "fltp", "mono"
                )
                piece.sample_rate, piece.pts, piece.time_base = rate, start, Fraction(1, rate)
                container.mux(sound.encode(piece))
            container.mux(sound.encode())
    return Path(path)


def moving_square(frames: int, size: int, direction: str = "right", colour: int = 255, seed: int = 0) -> np.ndarray:
    """A bright square drifting across a dark frame in ``direction`` (up, down, left, right). ``-> (T, S, S, 3)``."""
    rng = np.random.default_rng(seed)
    side = max(2, size // 4)
    start = rng.integers(size // 4, size - size // 4 - side + 1, 2)
    step = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}[direction]
    travel = (size // 4) / max(1, frames - 1)
    clip = np.full((frames, size, size, 3), 20, dtype=np.uint8)
    for t in range(frames):
        y, x = (
            (start + np.array(step) * travel * t - np.array(step) * size // 8).round().astype(int).clip(0, size - side)
        )
        clip[t, y : y + side, x : x + side] = colour
    return clip
