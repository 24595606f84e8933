"""Reading a W&B offline run file (``run-*.wandb``) back: a LevelDB-style log of protobuf records."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:HEADER])
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a W&B run file")
    out, pos, parts = [], HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:
            break
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        parts = chunk if kind in (FULL, FIRST) else parts + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(parts)
            out.append(record)
    return out


def read_run(run_dir: Path) -> dict[str, Any]:
    """The run's config, metric history and logged table keys."""
    config, history, tables = {}, [], []
    for record in records(next(Path(run_dir).glob("run-*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            for item in record.config.update:
                key = item.key or "/".join(item.nested_key)
                config[key] = json.loads(item.value_json)
        elif kind == "history":
            row = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
            history.append(row)
            tables += [k[: -len("/_type")] for k, v in row.items() if k.endswith("/_type") and v == "table-file"]
    return {"config": config, "history": history, "tables": tables}
