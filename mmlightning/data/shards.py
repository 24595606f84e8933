"""Shards: a split's checked rows and the media files its processors read, packed into LitData chunks by
``mmlightning optimize`` and read back by index (``--data.train=shards://DIR``).

A shard folder holds LitData's ``index.json`` and chunk files, ``rows.jsonl`` (each row's values and the manifest
line it came from, in the shards' order) and ``mmlightning.json``, written last: a folder without it was never
finished. Each stored sample is one bytes value (:func:`pack`): a JSON header naming its files, then their bytes.
Nothing is pickled.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mmlightning.data.dataset import ManifestDataset
from mmlightning.data.manifest import Manifest, Row
from mmlightning.errors import ConfigError, MissingFileError
from mmlightning.processing import StoredRoot

SCHEME = "shards://"
META = "mmlightning.json"
ROWS = "rows.jsonl"
FORMAT = 1
HEAD = struct.Struct("<I")
log = logging.getLogger(__name__)


def is_shards(path: Any) -> bool:
    return isinstance(path, str) and path.startswith(SCHEME)


def folder_of(uri: str) -> Path:
    return Path(uri[len(SCHEME) :] if is_shards(uri) else uri)


def pack(position: int, files: dict[str, bytes], decoded: dict[str, dict[str, Tensor]] | None = None) -> bytes:
    """One sample: its position in the shards, its files' bytes and its decoded forms (per encoder key, the tensors
    its processor's ``decoded`` gave), after a JSON header naming them."""
    arrays = [
        (key, name, tensor.contiguous()) for key, named in (decoded or {}).items() for name, tensor in named.items()
    ]
    blobs = [tensor.numpy().tobytes() for _, _, tensor in arrays]
    header = json.dumps(
        {
            "position": position,
            "files": [[name, len(data)] for name, data in files.items()],
            "decoded": [
                [key, name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape), len(blob)]
                for (key, name, tensor), blob in zip(arrays, blobs)
            ],
        }
    )
    raw = header.encode()
    return HEAD.pack(len(raw)) + raw + b"".join(files.values()) + b"".join(blobs)


def unpack(
    blob: bytes | memoryview, keys: Collection[str] = ()
) -> tuple[int, dict[str, memoryview], dict[str, dict[str, Tensor]]]:
    """A sample's position, files and the decoded forms of ``keys`` (the others are not copied out)."""
    view = memoryview(blob)
    (size,) = HEAD.unpack_from(view)
    header = json.loads(bytes(view[HEAD.size : HEAD.size + size]))
    files, start = {}, HEAD.size + size
    for name, length in header["files"]:
        files[name] = view[start : start + length]
        start += length
    decoded: dict[str, dict[str, Tensor]] = {}
    for key, name, dtype, shape, length in header.get("decoded", []):
        if key in keys:
            kind = getattr(torch, dtype)
            data = bytearray(view[start : start + length])  # a copy the tensor may write to
            tensor = torch.frombuffer(data, dtype=kind) if length else torch.empty(0, dtype=kind)
            decoded.setdefault(key, {})[name] = tensor.reshape(shape)
        start += length
    return int(header["position"]), files, decoded


@dataclass
class ShardRow(Row):
    position: int = 0  # the sample's index in the shards


@dataclass
class ShardManifest(Manifest):
    """The rows of a shard folder; ``files``: the columns whose files the shards hold."""

    folder: Path = Path(".")
    files: list[str] = field(default_factory=list)
    source: str = ""
    decoded: dict[str, str] = field(default_factory=dict)  # encoder key -> its processor's fingerprint

    @property
    def root(self) -> Path:
        return self.folder


def read_shards(uri: str) -> ShardManifest:
    """A shard folder's rows, after checking it is whole (:func:`check_folder`)."""
    folder, meta, again = check_folder(uri)
    rows: list[Row] = []
    with (folder / ROWS).open(encoding="utf-8") as handle:
        for position, line in enumerate(handle):
            stored = json.loads(line)
            rows.append(ShardRow(stored["line"], stored["values"], position))
    if len(rows) != meta["rows"]:
        raise ConfigError(f"The shards at {folder} hold {len(rows)} rows, not the {meta['rows']} written; {again}")
    return ShardManifest(
        folder / ROWS,
        rows,
        [],
        folder=folder,
        files=meta["files"],
        source=meta["source"],
        decoded=meta.get("decoded", {}),
    )


def check_folder(uri: str) -> tuple[Path, dict[str, Any], str]:
    """A shard folder is whole: its own file written last, every chunk its full size. Returns the folder, what
    ``mmlightning.json`` says and how to write it again."""
    folder = folder_of(uri)
    again = f"write them again: mmlightning optimize --config C.yaml --out {folder.parent} --overwrite"
    if not folder.is_dir():
        raise MissingFileError(
            f"No shard folder {folder} (from {uri}); write shards with: mmlightning optimize --config C.yaml --out DIR "
            "(then --data.train=shards://DIR/train)"
        )
    meta_path = folder / META
    if not meta_path.is_file():
        raise ConfigError(f"The shards at {folder} are incomplete: no {META}, so writing them never finished; {again}")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ConfigError(
            f"The shards at {folder} are format {meta.get('format')}, this version reads {FORMAT}; {again}"
        )
    index = json.loads((folder / "index.json").read_text()) if (folder / "index.json").is_file() else None
    if index is None:
        raise ConfigError(f"The shards at {folder} have no index.json (LitData's list of chunks); {again}")
    for chunk in index["chunks"]:
        path = folder / chunk["filename"]
        size = path.stat().st_size if path.is_file() else None
        if size != chunk["chunk_bytes"]:
            found = "missing" if size is None else f"{size} bytes"
            raise ConfigError(
                f"The shards at {folder} are truncated: chunk {chunk['filename']} is {found}, its index says "
                f"{chunk['chunk_bytes']} bytes; {again}"
            )
    held = sum(c["chunk_size"] for c in index["chunks"])
    if held != meta["rows"]:
        raise ConfigError(f"The shards at {folder} hold {held} samples, not the {meta['rows']} written; {again}")
    return folder, meta, again


def check_files(manifest: ShardManifest, bundle: Any) -> None:
    """The run reads files only from columns whose files the shards hold."""
    present = set(manifest.columns())  # a column the rows lack is a missing column, reported as such elsewhere
    missing = [c for c in file_columns(bundle) if c in present and c not in manifest.files]
    if missing:
        held = ", ".join(map(repr, manifest.files)) or "none"
        raise ConfigError(
            f"The shards at {manifest.folder} hold no files for column {', '.join(map(repr, missing))}, which this "
            f"run's model "
            f"reads (they hold the files of {held}): they were written for another model; write them with this "
            f"run's config: mmlightning optimize --config C.yaml --out {manifest.folder}"
        )


def file_columns(bundle: Any) -> list[str]:
    """The columns whose values name files the model's processors read."""
    keys = [key for key, processor in bundle.processors.items() if getattr(processor, "reads_files", True)]
    return list(dict.fromkeys(column for key in keys for column in bundle.input_columns(key)))


def streaming(folder: Path) -> Any:
    """LitData's dataset over a shard folder, read by index."""
    try:
        from litdata import StreamingDataset
    except ImportError as err:
        raise ImportError("Reading shards needs LitData: pip install 'mmlightning[streaming]'") from err
    return StreamingDataset(os.fspath(folder), batch_decode=0)  # one sample at a time: read in any order


def usable_decoded(manifest: ShardManifest, bundle: Any) -> tuple[str, ...]:
    """The encoders whose decoded forms in the shards were made with this run's processor settings; the others
    read the stored files (said once, in the log)."""
    usable = []
    for key, made in manifest.decoded.items():
        processor = bundle.processors.get(key)
        if processor is None:
            continue
        now = processor.fingerprint()
        if now == made:
            usable.append(key)
        else:
            log.warning(
                "The shards at %s hold '%s' decoded with other processor settings than this run's (%s, not %s): "
                "reading its stored files instead, which is slower. To use decoded forms, write the shards again "
                "with this run's config: mmlightning optimize --config C.yaml --out DIR --decoded --overwrite",
                manifest.folder,
                key,
                made,
                now,
            )
    return tuple(usable)


class ShardDataset(ManifestDataset):
    """A split's rows read from shards: each sample's media come from its stored bytes (or decoded forms, for the
    encoders in ``decoded``), not from the disk."""

    stream: Any = None  # LitData's dataset, opened in the process (or loader worker) that reads it
    decoded: tuple[str, ...] = ()  # usable_decoded's answer, set by the datamodule

    def media_root(self, row: Row) -> Path:
        if self.stream is None:
            self.stream = streaming(self.root)
        if not isinstance(row, ShardRow):
            raise TypeError(f"a {type(row).__name__} is not a row read from shards")
        position, files, decoded = unpack(self.stream[row.position], self.decoded)
        if position != row.position:
            raise ValueError(f"the shards at {self.root} are out of order (sample {row.position} holds {position})")
        return StoredRoot.holding(self.root, dict(files), decoded)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "stream": None}  # each loader worker opens its own
