"""Where media come from: the data folder (:class:`MediaRoot`) or shards held in memory (:class:`StoredRoot`,
:class:`StoredFile`). Re-exported by :mod:`mmlightning.processing`."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any


class MediaRoot(type(Path())):  # type: ignore[misc]
    """The folder media paths are relative to, with the other folders the user allowed them to come from."""

    allowed: tuple[str, ...] = ()

    @classmethod
    def make(cls, path: str | Path, allowed: Sequence[str | Path] = ()) -> MediaRoot:
        root = cls(str(path))
        root.allowed = tuple(os.path.abspath(a) for a in allowed)
        return root

    def __reduce__(self) -> Any:  # DataLoader workers get the allowed folders too
        return (MediaRoot.make, (str(self), self.allowed))


class StoredFile(io.BytesIO):
    """A media file held in memory (read from shards written by ``mmlightning optimize``), as
    :meth:`Processor.resolve` gives it: a binary file object that PIL, PyAV and ``wave`` read like a path, with the
    parts of ``Path`` readers use (``name``, ``suffix``, ``open``, ``stat``, ``read_bytes``); ``str()`` is the value
    that named it."""

    def __init__(self, value: str, data: bytes | memoryview) -> None:
        super().__init__(data)
        self.value = value
        self.name, self.suffix = Path(value).name, Path(value).suffix

    def open(self, mode: str = "rb") -> io.BytesIO:
        if mode != "rb":
            raise ValueError(f"{self.value}: a stored file opens for reading only ('rb'), not {mode!r}")
        return io.BytesIO(self.getbuffer())

    def stat(self) -> SimpleNamespace:
        return SimpleNamespace(st_size=self.getbuffer().nbytes)

    def read_bytes(self) -> bytes:
        return self.getvalue()

    def __str__(self) -> str:
        return self.value


class StoredRoot(MediaRoot):
    """The media of one sample read from shards: ``files`` maps each value naming a file to its bytes; ``decoded``
    maps an encoder's key to the decoded form its processor stored (``Processor.decoded``), where the shards hold one
    made with the run's processor settings. Its path is the shards' folder (what the feature cache and messages know
    the data by)."""

    files: dict[str, bytes | memoryview] = {}
    decoded: dict[str, dict[str, Any]] = {}

    @classmethod
    def holding(
        cls, path: str | Path, files: dict[str, bytes | memoryview], decoded: dict[str, dict[str, Any]] | None = None
    ) -> StoredRoot:
        root = cls(str(path))
        root.files, root.decoded = files, decoded or {}
        return root

    def __reduce__(self) -> Any:
        return (StoredRoot.holding, (str(self), {k: bytes(v) for k, v in self.files.items()}, self.decoded))
