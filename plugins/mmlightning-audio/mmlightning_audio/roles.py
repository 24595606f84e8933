"""Sound files, recognised by their content for `mmlightning auto`: a spectrogram Transformer trained here, its
sample rate and length read from the files."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmlightning.roles import Choice, Column, MediaRole

MP4_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ")


def audio_format(head: bytes) -> str | None:
    """The sound format a file's first bytes show, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:3] == b"ID3" or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "MP3"
    if head[4:8] == b"ftyp" and head[8:12] in MP4_AUDIO_BRANDS:
        return "M4A"
    return None


class AudioRole(MediaRole):
    """Paths of sound files (WAV, FLAC, Ogg, MP3, M4A), told by their first bytes."""

    name = "audio"
    sniff = staticmethod(audio_format)
    order = 20

    def encoder(self, columns: Sequence[str], preset: str, facts: dict[str, Any]) -> Choice:
        rate, seconds = wav_facts(facts["columns"][columns[0]])
        return Choice(
            {
                "class_path": "AudioEncoder",
                "init_args": {
                    "dim": 128,
                    "layers": 2,
                    "heads": 4,
                    "sample_rate": rate,
                    "n_mels": 40,
                    "max_seconds": seconds,
                },
            }
        )


def wav_facts(column: Column) -> tuple[int, float]:
    """The sample rate of the sampled WAV files (the most common) and the length 95% of them fit in, in seconds
    (1 to 10); 16 kHz and 5 s where the files are not WAV."""
    rates: list[int] = []
    lengths: list[float] = []
    for value, head in column.file_heads(64):
        if head is None or audio_format(head) != "WAV" or len(head) < 44:
            continue
        rate, byte_rate = struct.unpack("<II", head[24:32])
        if rate and byte_rate:
            rates.append(rate)
            lengths.append(max(0, (Path(column.root, value).stat().st_size - 44)) / byte_rate)
    if not rates:
        return 16000, 5.0
    lengths.sort()
    seconds = lengths[int(0.95 * (len(lengths) - 1))]
    return max(set(rates), key=rates.count), round(min(10.0, max(1.0, seconds)), 1)
