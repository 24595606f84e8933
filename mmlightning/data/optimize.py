"""Writing shards (``mmlightning optimize``): a split's rows, checked as ``fit`` checks them, with the bytes of every
file the model's processors read, packed by ``litdata.optimize`` into chunks. The folder is written beside its
destination under a temporary name and renamed into place only once whole, so an interrupted run leaves nothing
that looks finished."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmlightning import __version__
from mmlightning.data.manifest import Row
from mmlightning.data.shards import FORMAT, META, ROWS, pack, streaming, unpack
from mmlightning.errors import ConfigError
from mmlightning.files import disk_error, write_text
from mmlightning.processing import Processor


class Packer:
    """What ``litdata.optimize`` runs per sample (in its worker process): position -> the packed sample, with the
    decoded forms of ``processors`` (``mmlightning optimize --decoded``)."""

    def __init__(
        self,
        files: list[list[tuple[str, str]]],
        values: Sequence[dict[str, Any]] = (),
        processors: dict[str, Processor] | None = None,
        root: Path = Path("."),
    ) -> None:
        self.files = files  # per position: (value naming the file, its path on disk)
        self.values, self.processors, self.root = values, processors or {}, root  # per position: {key: raw value}

    def __call__(self, position: int) -> bytes:
        decoded = {}
        for key, value in (self.values[position] if self.processors else {}).items():
            found = self.processors[key].decoded(value, self.root)
            if found is not None:
                decoded[key] = found
        return pack(position, {name: Path(path).read_bytes() for name, path in self.files[position]}, decoded)


def decoders(bundle: Any, rows: Sequence[Row], root: Path) -> dict[str, Processor]:
    """The processors that give a decoded form (tried on the first row with a value): a processor that stores none,
    or is not ready to (a tokenizer the encoder learns in ``fit``), is left out."""
    found = {}
    for key, processor in bundle.processors.items():
        value = next((v for v in (bundle.value(key, row.values) for row in rows) if v is not None), None)
        if value is not None and processor.decoded(value, root) is not None:
            found[key] = processor
    return found


def refuse_destination(out: Path, overwrite: bool) -> None:
    """Before any work: a folder that holds something (without ``overwrite``) or that cannot be written."""
    if out.exists() and not overwrite and any(out.iterdir()):
        raise ConfigError(f"--out {out} already exists and is not empty; pass --overwrite to replace it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.parent / f".{out.name}.probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
    except OSError as err:
        found = disk_error(err, out / "index.json")
        if found is err:
            raise ConfigError(f"--out {out}: cannot write a folder there ({err.strerror}: {err.filename})") from None
        raise found from None


def write_shards(
    rows: Sequence[Row],
    root: Path,
    columns: Sequence[str],
    out: Path,
    source: str,
    chunk_bytes: str = "64MB",
    bundle: Any = None,
) -> dict[str, Any]:
    """Write ``rows`` (checked already) and the files their ``columns`` name to a shard folder ``out``, replacing
    what was there (:func:`refuse_destination` asks first). With ``bundle``, also the decoded forms its processors
    give (:func:`decoders`), keyed by each processor's fingerprint."""
    import litdata

    processors = decoders(bundle, rows, root) if bundle is not None else {}
    values = [{key: v for key in processors if (v := bundle.value(key, row.values)) is not None} for row in rows]

    files: list[list[tuple[str, str]]] = []
    for row in rows:
        named = {}
        for column in columns:
            value = row.values.get(column)
            if isinstance(value, str):
                named[value] = str(Processor.resolve(value, root))
        files.append(sorted(named.items()))
    stage = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # LitData's own chatter; its progress bar is on stderr
            litdata.optimize(
                fn=Packer(files, values, processors, root),
                inputs=list(range(len(rows))),
                output_dir=str(stage),
                chunk_bytes=chunk_bytes,
                num_workers=1,
                reorder_files=False,
                keep_data_ordered=True,
                start_method="fork",
            )
        _check_order(stage, len(rows))
        lines = (json.dumps({"line": row.line, "values": row.values}, default=str) for row in rows)
        write_text(stage / ROWS, "".join(f"{line}\n" for line in lines))
        meta = {"format": FORMAT, "rows": len(rows), "source": source, "files": list(columns), "version": __version__}
        meta["decoded"] = {key: processor.fingerprint() for key, processor in processors.items()}
        write_text(stage / META, json.dumps(meta, indent=1))  # last: the folder is whole
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            out.rename(old)
        stage.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        raise disk_error(err, stage / "index.json") from err
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    found = {"folder": str(out), "rows": len(rows), "bytes": size, "files": sum(len(f) for f in files)}
    return {**found, "decoded": list(processors)}


def _check_order(folder: Path, count: int) -> None:
    """Every sample is where ``rows.jsonl`` will say it is (LitData writes in order with one worker)."""
    stream = streaming(folder)
    if len(stream) != count:
        raise ConfigError(f"LitData wrote {len(stream)} samples to {folder}, not {count}")
    for position in range(count):
        found = unpack(stream[position])[0]
        if found != position:
            raise ConfigError(f"LitData wrote sample {found} at position {position} of {folder}")
