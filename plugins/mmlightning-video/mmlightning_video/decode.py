"""Reading a fixed number of frames from a video file with PyAV (FFmpeg's libraries, in-process).

Frames are scaled while they are decoded (one full-size frame in memory at a time), so a 4K clip costs what a small
one does. A short clip (its frames known from its header) is decoded through and the wanted frames kept; a long one
is read by seeking to each wanted time. Anything that cannot be read is a ``ValueError`` saying what and where.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmlightning.errors import TooLargeError

MAX_BYTES = 500_000_000  # a larger file is a bad row (serve refuses it with this reason)
MAX_PIXELS = 40_000_000  # a frame larger than this (read from the header) is refused before decoding
SEEK_AFTER = 300  # clips with more frames than this are read by seeking, not decoded through


def frame_indices(count: int, frames: int, train: bool) -> list[int]:
    """Which of ``count`` frames to keep: the centre of each of ``frames`` equal segments, or (``train``) a random
    frame in each (temporal jitter, as in TSN). With fewer frames than wanted, frames repeat in order."""
    if count <= 0:
        return []
    edges = np.linspace(0, count, frames + 1)
    if train:
        offsets = torch.rand(frames).numpy()
        picks = edges[:-1] + offsets * (edges[1:] - edges[:-1])
    else:
        picks = (edges[:-1] + edges[1:]) / 2
    return [min(count - 1, int(p)) for p in picks]


@contextmanager
def opened(path: Path, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> Iterator[tuple[Any, Any]]:
    """``(container, video stream)``, after the checks that need no decoding: the file's size, a video stream, a
    frame size within ``max_pixels``."""
    import av

    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"video file {path} is empty (0 bytes)")
    if size > max_bytes:
        raise TooLargeError(
            f"video file {path} is {_size(size)}, over the limit of {_size(max_bytes)}: cut or "
            "re-encode it (or raise the encoder's max_bytes)"
        )
    try:
        container = av.open(str(path) if isinstance(path, Path) else path, metadata_errors="ignore")  # or stored
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"unreadable video file {path}: {err} (expected a video container such as MP4)") from err
    try:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream ({_streams(container)})")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise ValueError(
                f"{path}: its video codec is not one this FFmpeg can decode; re-encode it (H.264 MP4, say: "
                "ffmpeg -i IN -c:v libx264 OUT.mp4)"
            )
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > max_pixels:
            raise TooLargeError(
                f"video {path} is {width}x{height} ({width * height / 1e6:.0f} megapixels a frame), over the limit "
                f"of {max_pixels / 1e6:.0f}: scale it down (or raise the encoder's max_pixels)"
            )
        stream.thread_type = "AUTO"
        yield container, stream
    finally:
        container.close()


def _size(count: float) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.0f} kB"


def _streams(container: Any) -> str:
    kinds = [s.type for s in container.streams]
    return "streams: " + ", ".join(kinds) if kinds else "no streams at all"


def read_clip(
    path: Path,
    frames: int,
    size: int,
    train: bool = False,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """``frames`` RGB frames of ``path`` (``train``: a random frame in each segment), each ``size`` x ``size``: the
    shorter side scaled to ``size``, the centre cut out. ``-> (T, size, size, 3)`` uint8."""
    import av

    with opened(path, max_bytes, max_pixels) as (container, stream):
        width, height = stream.codec_context.width, stream.codec_context.height
        scale = size / max(1, min(width, height))
        shape = (max(size, round(width * scale)), max(size, round(height * scale)))
        try:
            count = stream.frames
            if 0 < count <= SEEK_AFTER:
                kept = _decode_through(container, stream, frame_indices(count, frames, train), shape)
            else:
                kept = _seek(container, stream, frames, train, shape)
        except av.FFmpegError as err:
            codec = stream.codec_context.name if stream.codec_context else "unknown"
            raise ValueError(f"cannot decode the {codec} video in {path}: {err}") from err
    if not kept:
        raise ValueError(f"no frame of {path} could be decoded")
    clip = np.stack(kept)  # (T, h, w, 3)
    top, left = (clip.shape[1] - size) // 2, (clip.shape[2] - size) // 2
    return np.ascontiguousarray(clip[:, top : top + size, left : left + size])


def _rgb(shape: tuple[int, int]) -> Any:
    """frame -> ``(h, w, 3)`` uint8 at ``shape`` (width, height), through one scaler kept for the whole clip (making
    one per frame costs several times the conversion)."""
    from av.video.reformatter import VideoReformatter

    scaler = VideoReformatter()
    return lambda frame: scaler.reformat(frame, shape[0], shape[1], "rgb24").to_ndarray()


def _decode_through(container: Any, stream: Any, wanted: list[int], shape: tuple[int, int]) -> list[np.ndarray]:
    """Decode frame by frame, converting only the wanted ones; a clip shorter than its header says repeats its last
    decoded frame."""
    rgb, need = _rgb(shape), set(wanted)
    found: dict[int, np.ndarray] = {}
    last, index = None, -1
    for index, frame in enumerate(container.decode(stream)):
        if index in need:
            found[index] = rgb(frame)
        last = frame
        if index >= max(wanted):
            break
    if last is not None and len(found) < len(need):
        tail = rgb(last)
        return [found.get(i, tail) for i in wanted]
    return [found[i] for i in wanted if i in found]


def _seek(container: Any, stream: Any, frames: int, train: bool, shape: tuple[int, int]) -> list[np.ndarray]:
    """A long clip (or one whose header does not count its frames): seek to each wanted time and decode from the
    key frame before it to the first frame at or after it."""
    rgb, base = _rgb(shape), float(stream.time_base or 0) or 1e-6
    seconds = float(stream.duration * base) if stream.duration else (container.duration or 0) / 1e6
    if seconds <= 0:  # no duration anywhere: decode through, keeping every frame small
        everything = [rgb(frame) for frame in container.decode(stream)]
        return [everything[i] for i in frame_indices(len(everything), frames, train)]
    kept = []
    for step in frame_indices(10_000, frames, train):
        target = seconds * (step + 0.5) / 10_000
        container.seek(int(target / base), stream=stream, backward=True)
        chosen = None
        for frame in container.decode(stream):
            chosen = frame
            if frame.time is None or frame.time >= target:
                break
        if chosen is not None:
            kept.append(rgb(chosen))
    return kept
