"""The contract of a manifest reader plugin (re-exported by :mod:`mmlightning.contracts`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar


class Reader:
    """Reads a manifest format the core does not know (JSONL, CSV and Parquet are built in) into rows.

    Implement ``read(path) -> (rows, bad_rows)``: ``mmlightning.data.manifest.Row(line, values)`` per sample,
    with the line it starts on, and ``BadRow(file, line, reason, raw)`` for anything that cannot be read, so
    nothing is dropped silently. ``suffixes`` are the file endings it claims (``--data.reader=NAME`` picks it
    for any file).
    """

    suffixes: ClassVar[tuple[str, ...]] = ()

    def read(self, path: Path) -> tuple[list[Any], list[Any]]:
        raise NotImplementedError
