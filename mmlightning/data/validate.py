"""Checking every row before training, and the report that names each bad one."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mmlightning.data.manifest import BadRow, Manifest, Row
from mmlightning.errors import ConfigError, MMLightningError

log = logging.getLogger(__name__)
Check = Callable[[Row], list[str]]  # a row -> every reason it is bad


class BadRowsError(MMLightningError, ValueError):
    """A manifest has rows that cannot be used; the message lists each with file, line and reason."""


def check_rows(manifest: Manifest, check: Check, progress: bool = False) -> tuple[list[Row], list[BadRow]]:
    """Split rows into good and bad; ``check(row)`` gives a row's reasons (none: good)."""
    good, bad = [], list(manifest.bad)
    for row in _progress(manifest.rows, progress, f"checking {manifest.path.name}"):
        reasons = check(row)
        if reasons:
            bad.append(BadRow(str(manifest.path), row.line, "; ".join(reasons), row.values))
        else:
            good.append(row)
    return good, bad


def check_columns(manifest: Manifest, columns: list[str]) -> None:
    """A column the model reads that the whole manifest lacks is a configuration error, not a bad row."""
    present = manifest.columns()
    absent = [column for column in dict.fromkeys(columns) if column not in present]
    if absent and manifest.rows:
        raise BadRowsError(
            f"Manifest {manifest.path} has no column {', '.join(repr(c) for c in absent)}; its columns are "
            f'{", ".join(present)}. Map names with --data.columns (e.g. \'{{"{absent[0]}": "my_column"}}\').'
        )


def report(bad: list[BadRow], total: int, limit: int = 50) -> str:
    lines = [row.describe() for row in bad[:limit]]
    more = f"\n  ... and {len(bad) - limit} more" if len(bad) > limit else ""
    return f"{len(bad)} bad row(s) of {total}:\n" + "\n".join(lines) + more


def handle_bad_rows(bad: list[BadRow], total: int, policy: str, skipped_file: Path) -> None:
    """Stop with the report (policy 'stop'), or write the bad rows to ``skipped_file`` (policy 'skip')."""
    if not bad:
        return
    if policy == "stop":
        raise BadRowsError(
            f"{report(bad, total)}\nFix these rows, or pass --data.on_bad_rows=skip to leave them out (they are then written to a file)."
        )
    if len(bad) >= total:
        raise BadRowsError(f"{report(bad, total)}\nEvery row was bad, so nothing is left to use: fix the rows.")
    skipped_file.parent.mkdir(parents=True, exist_ok=True)
    with skipped_file.open("a", encoding="utf-8") as handle:
        for row in bad:
            handle.write(
                json.dumps({"file": row.file, "line": row.line, "reason": row.reason, "row": row.values}, default=str)
                + "\n"
            )
    log.warning("skipped %s; they are listed in %s", report(bad, total, limit=5), skipped_file)


def _progress(items: list, enabled: bool, desc: str):
    if not enabled or len(items) < 2000:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False)


def require_columns(split: str, manifests: Iterable[Manifest], bundle: Any) -> None:
    """With several datasets, a column no dataset has is a typo, not a missing modality."""
    columns = set().union(*(m.columns() for m in manifests))
    wanted = bundle.read_columns(targets=split != "predict", drawn=split != "predict")
    unknown = [c for c in wanted if c not in columns]
    if unknown:
        raise ConfigError(
            f"No {split} dataset has column {', '.join(map(repr, unknown))}; their columns are "
            f"{', '.join(sorted(columns))}. Map names with --data.columns."
        )
