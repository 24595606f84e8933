"""Reading manifests (JSONL, CSV, Parquet): one row per sample, each with the line it came from."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmlightning.errors import ConfigError, MissingFileError


@dataclass
class Row:
    line: int
    values: dict[str, Any]


@dataclass
class BadRow:
    file: str
    line: int
    reason: str
    values: Any = None

    def describe(self) -> str:
        return f"  {self.file}:{self.line}: {self.reason}"


@dataclass
class Manifest:
    path: Path
    rows: list[Row]
    bad: list[BadRow]

    @property
    def root(self) -> Path:
        return self.path.parent

    def columns(self) -> list[str]:
        """Every column some row has, in the order they first appear."""
        return list(dict.fromkeys(key for row in self.rows for key in row.values))


def read_manifest(path: str | Path, reader: Any = None) -> Manifest:
    """Read a manifest; a line that cannot be parsed becomes a :class:`BadRow`, never vanishes.

    ``reader``: a :class:`~mmlightning.contracts.Reader` for a format the suffix does not say (default: by
    suffix, the built-in formats first, then the readers plugins registered).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"Manifest not found: {path} (expected a .jsonl, .csv or .parquet file)")
    if reader is not None:
        rows, bad = reader.read(path)
        return Manifest(path, rows, bad)
    readers = {".jsonl": _read_jsonl, ".json": _read_jsonl, ".csv": _read_csv, ".parquet": _read_parquet}
    read = readers.get(path.suffix.lower()) or _registered_reader(path.suffix.lower())
    if read is None:
        raise ConfigError(
            f"Manifest {path} has suffix '{path.suffix}'; expected one of {', '.join(sorted(readers))}, "
            "or name a reader for its format with --data.reader=NAME (see `mmlightning components reader`)"
        )
    rows, bad = read(path)
    return Manifest(path, rows, bad)


def _registered_reader(suffix: str) -> Any:
    from mmlightning.plugins import get_registry

    for component in get_registry().components("reader"):
        if suffix in getattr(component.cls, "suffixes", ()):
            return component.cls().read
    return None


MAX_LINE_BYTES = 8 << 20  # a manifest line longer than this is a bad row, never parsed (a row holds paths, not data)


def _read_jsonl(path: Path) -> tuple[list[Row], list[BadRow]]:
    rows, bad = [], []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if len(raw) > MAX_LINE_BYTES:
                reason = f"a line of {len(raw) / 2**20:.0f} MB, over the {MAX_LINE_BYTES >> 20} MB a row may take"
                shown = raw[:200].decode("utf-8", "replace")
                bad.append(BadRow(str(path), number, f"{reason} (media go in files the row names)", shown))
                continue
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a byte-order mark is not data
            except UnicodeDecodeError as err:
                shown = raw.decode("utf-8", "replace").rstrip("\n")
                bad.append(
                    BadRow(
                        str(path),
                        number,
                        f"not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1})",
                        shown,
                    )
                )
                continue
            if not line.strip():
                continue
            try:
                values = json.loads(line)
            except json.JSONDecodeError as err:
                bad.append(
                    BadRow(str(path), number, f"malformed JSON ({err.msg} at column {err.colno})", line.rstrip("\n"))
                )
                continue
            except RecursionError:
                bad.append(BadRow(str(path), number, "JSON nested too deeply to read", line[:200]))
                continue
            if not isinstance(values, dict):
                kind = type(values).__name__
                bad.append(BadRow(str(path), number, f"expected a JSON object per line, got {kind}", line.rstrip("\n")))
                continue
            rows.append(Row(number, values))
    return rows, bad


def _read_csv(path: Path) -> tuple[list[Row], list[BadRow]]:
    rows, bad = [], []
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:  # BOM stripped
        reader = csv.DictReader(handle)
        number = 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                bad.append(BadRow(str(path), reader.line_num, f"unreadable CSV ({err})"))
                continue
            number = reader.line_num
            fields = reader.fieldnames or []
            if None in values or any(v is None for v in values.values()):
                bad.append(BadRow(str(path), number, f"expected {len(fields)} columns ({', '.join(fields)})", values))
            elif not _utf8(values):
                bad.append(BadRow(str(path), number, "not UTF-8 text", {k: _shown(v) for k, v in values.items()}))
            else:  # an empty cell is a missing value
                rows.append(Row(number, {k: (None if v == "" else v) for k, v in values.items()}))
    return rows, bad


def _utf8(values: dict[str, Any]) -> bool:
    try:
        "".join(f"{k}{v}" for k, v in values.items()).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(value: Any) -> Any:
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if isinstance(value, str) else value


def _read_parquet(path: Path) -> tuple[list[Row], list[BadRow]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError(
            f"Reading {path} needs pyarrow: pip install pyarrow (or convert the manifest to JSONL or CSV)"
        ) from err
    try:
        table = pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError) as err:  # a whole file: no row of it can be read
        return [], [BadRow(str(path), 0, f"the file cannot be read as Parquet ({err})")]
    return [Row(i + 1, values) for i, values in enumerate(table)], []
