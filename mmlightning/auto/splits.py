"""The rows ``Predictor`` trains and predicts on: from a DataFrame, rows, a manifest or a folder; held out for
tuning; written as JSONL manifests in the predictor's folder."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmlightning.errors import ConfigError

MANIFESTS = (".jsonl", ".json", ".csv", ".parquet")
HOLDOUT = 0.1  # without tuning data, this share of the training rows (stratified by class) picks checkpoints


def load_split(data: Any, root: str | Path | None, checked: bool = True) -> tuple[list[dict[str, Any]], Path, str]:
    """Rows, their media root and a name for messages, from a DataFrame, rows (dicts), a manifest path or a folder
    holding one manifest. A manifest line that cannot be read stops it, named by file and line."""
    if hasattr(data, "to_dict"):
        rows = [
            {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in data.to_dict("records")
        ]
        return rows, Path(root or "."), "the DataFrame"
    if isinstance(data, Mapping):
        return [dict(data)], Path(root or "."), "the row"
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        return [dict(r) for r in data], Path(root or "."), "the rows"
    path = Path(data)
    if path.is_dir():
        found = [p for p in sorted(path.iterdir()) if p.suffix.lower() in MANIFESTS]
        named = [p for p in found if p.stem == "train"]
        if len(named) == 1 or len(found) == 1:
            path = (named or found)[0]
        else:
            raise ConfigError(
                f"{data} holds {len(found)} manifests ({', '.join(p.name for p in found) or 'none'}); name the file"
            )
    from mmlightning.data.manifest import read_manifest
    from mmlightning.data.validate import BadRowsError, report

    manifest = read_manifest(path)
    if manifest.bad and checked:
        raise BadRowsError(
            f"{report(manifest.bad, len(manifest.rows) + len(manifest.bad))}\nFix these lines and fit again."
        )
    return [dict(row.values) for row in manifest.rows], Path(root or manifest.root), str(path)


def holdout(
    rows: list[dict[str, Any]], label: str, task: str, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``rows`` split into training and tuning rows: ``HOLDOUT`` of each class (of all rows for a regression)."""
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        key = str(row.get(label)) if task in ("binary", "multiclass") else ""
        groups.setdefault(key, []).append(i)
    held: set[int] = set()
    for members in groups.values():
        count = round(len(members) * HOLDOUT) if len(members) > 1 else 0
        held.update(rng.sample(members, count))
    if not held:
        raise ConfigError(f"{len(rows)} rows are too few to hold some out for tuning: give tuning_data")
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def per_class(rows: list[dict[str, Any]], label: str, k: int, seed: int, where: str) -> list[dict[str, Any]]:
    """``k`` rows of each class of ``label``, drawn with ``seed``, in their original order (few-shot training)."""
    if k < 1:
        raise ConfigError(f"k must be at least 1 row a class, got {k}")
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(str(row.get(label)), []).append(i)
    short = {name: len(members) for name, members in groups.items() if len(members) < k}
    if short:
        shown = ", ".join(f"'{name}' has {count}" for name, count in sorted(short.items())[:5])
        raise ConfigError(
            f"k={k} rows a class, but in {where} {shown} row(s) of '{label}': give k at most "
            f"{min(short.values())}, or more rows of those classes"
        )
    rng = random.Random(seed)
    chosen = {i for members in groups.values() for i in rng.sample(members, k)}
    return [row for i, row in enumerate(rows) if i in chosen]


def absolute(row: dict[str, Any], media: Sequence[str], root: str | Path) -> dict[str, Any]:
    return {k: (str((Path(root) / v).resolve()) if k in media and isinstance(v, str) else v) for k, v in row.items()}


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(row, default=str) + "\n" for row in rows))
    tmp.replace(path)


def series(values: list[Any], data: Any, name: str) -> Any:
    if hasattr(data, "to_dict"):
        import pandas as pd

        return pd.Series(values, index=data.index, name=name)
    return values
