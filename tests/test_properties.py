"""Property-based: any manifest file is read or reported row by row, and any value a first-party processor or
codec meets is either accepted or refused with a ValueError (which becomes a bad row); nothing else escapes."""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmlightning.data.manifest import read_manifest

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
LINES = st.lists(
    st.one_of(
        st.binary(max_size=60),
        JSON.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(st.sampled_from(["text", "label", "image"]), JSON, max_size=3).map(
            lambda v: json.dumps(v).encode()
        ),
        st.integers(1, 3000).map(lambda n: b"[" * n),
    ),
    max_size=8,
)


def accounted(manifest, lines: int) -> None:
    """Every row and bad row has a line within the file; a bad row says why."""
    assert all(1 <= row.line <= lines for row in manifest.rows)
    assert all(0 <= bad.line <= lines and bad.reason for bad in manifest.bad)


@SETTINGS
@given(LINES)
def test_any_jsonl_is_read_or_reported_by_line(lines):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.jsonl"
        path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines))
        manifest = read_manifest(path)
        accounted(manifest, max(len(lines), 1))
        assert all(isinstance(row.values, dict) for row in manifest.rows)


@SETTINGS
@given(st.lists(st.binary(max_size=40), max_size=6))
def test_any_csv_is_read_or_reported_by_line(lines):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.csv"
        path.write_bytes(b"text,label\n" + b"\n".join(lines))
        data = path.read_bytes()
        accounted(read_manifest(path), data.count(b"\n") + data.count(b"\r") + 2)  # csv ends lines at \r too


@SETTINGS
@given(st.binary(max_size=200))
def test_any_parquet_file_is_read_or_reported(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.parquet"
        path.write_bytes(b"PAR1" + data + b"PAR1")
        accounted(read_manifest(path), 10**6)


def refused_cleanly(check, value) -> None:
    try:
        check(value)
    except ValueError:
        pass  # a bad row, with its reason


VALUES = JSON | st.text(max_size=30).map(lambda s: "../" + s) | st.just("/etc/passwd")


@SETTINGS
@given(VALUES)
def test_the_text_processor_accepts_or_refuses(value):
    from mmlightning_text import TextEncoder

    encoder = TextEncoder(dim=8, layers=1, heads=2, vocab_size=50)
    encoder.fit(["some words to learn a vocabulary from", "and a few more"])
    processor = encoder.processor()
    refused_cleanly(lambda v: processor(v, Path("."), train=True), value)


def files(folder: Path) -> dict[str, bytes]:
    """Files a manifest may point at: junk, a truncated PNG, an empty file, half a WAV header."""
    return {
        "junk.bin": b"\x00\x01junk",
        "cut.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 5,
        "empty.wav": b"",
        "half.wav": b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt ",
    }


@SETTINGS
@given(VALUES | st.sampled_from(["junk.bin", "cut.png", "empty.wav", "half.wav", "missing.png"]))
def test_the_image_and_audio_processors_accept_or_refuse(value):
    from mmlightning_audio import AudioEncoder
    from mmlightning_vision import TimmEncoder

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name, data in files(root).items():
            (root / name).write_bytes(data)
        for encoder in (TimmEncoder("test_resnet", image_size=32, dim=8), AudioEncoder(dim=8, layers=1, heads=2)):
            processor = encoder.processor()
            refused_cleanly(lambda v, p=processor: p.check(v, root), value)
            refused_cleanly(lambda v, p=processor: p(v, root, train=True), value)


@SETTINGS
@given(JSON)
def test_the_target_codecs_accept_or_refuse(value):
    from mmlightning_heads import ClassificationHead, MultiLabelHead, RegressionHead, TokenClassificationHead

    heads = [
        ClassificationHead(4, labels=["a", "b"]),
        MultiLabelHead(4, labels=["a", "b"]),
        RegressionHead(4),
        TokenClassificationHead(4),
    ]
    heads[-1].set_fitted({"tags": ["O", "B-PER"]})
    for head in heads:
        codec = head.target()
        refused_cleanly(codec.check, value)
        refused_cleanly(codec.encode, value)
