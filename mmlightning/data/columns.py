"""Column specs: which manifest columns an encoder reads, from a name, a list, or globs with ``!name`` exclusions."""

from __future__ import annotations

import fnmatch

from mmlightning.bundle import Columns
from mmlightning.errors import ConfigError


def names(spec: Columns) -> list[str]:
    return [spec] if isinstance(spec, str) else list(spec)


def is_glob(pattern: str) -> bool:
    return pattern.startswith("!") or any(ch in pattern for ch in "*?[")


def globbed(spec: Columns) -> bool:
    return any(is_glob(p) for p in names(spec))


def expand(key: str, spec: Columns, known: list[str], taken: set[str]) -> list[str]:
    """A glob (``feat_*``, ``*``), with ``!name`` patterns left out -> the ``known`` columns it names, in their
    order. A glob never takes a column in ``taken`` (the id, targets, other encoders' columns); a plain name in the
    list is taken as given."""
    patterns = names(spec)
    wanted = [p for p in patterns if not p.startswith("!")] or ["*"]
    unwanted = [p[1:] for p in patterns if p.startswith("!")]
    found = [
        column
        for pattern in wanted
        for column in known
        if fnmatch.fnmatchcase(column, pattern)
        and not any(fnmatch.fnmatchcase(column, p) for p in unwanted)
        and (column not in taken or not is_glob(pattern))
    ]
    if not found:
        raise ConfigError(
            f"--data.columns gives '{key}' the pattern(s) {patterns}, which match no column that the id, a target "
            f"or another encoder does not already take; the columns are {', '.join(known) or 'unknown (no manifest)'}"
        )
    return list(dict.fromkeys(found))
