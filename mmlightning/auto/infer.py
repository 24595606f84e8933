"""Each column's role, worked out from the training split's values: the label and its task, ids, columns derived
from the label, and every other role the installed plugins recognise (:class:`~mmlightning.roles.Role`)."""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmlightning.errors import ConfigError
from mmlightning.roles import Column, Found, Role

SAMPLE = 1000  # rows whose values are read (files sniffed) to decide a role
CORE_ROLES = ("id", "ignore")
PATH_LIKE = re.compile(r"^[^\s]+\.[A-Za-z][A-Za-z0-9]{1,4}$")  # a name with a suffix (png, mp4, wav)
LEAK_MAX_VALUES = 20  # a column is checked against the label when it has at most this many values
LEAK_ERROR_CUT = 0.5  # ... and flagged when it alone removes this share of the error of always guessing the commonest


class RoleError(ConfigError):
    """A table whose roles cannot be worked out: a label with one value, an empty column, missing media, ..."""


@dataclass
class Assigned:
    """One column's role: ``role`` (a plugin role's name, or ``id``, ``ignore``, ``label``, ``derived``) and why."""

    column: str
    role: str
    evidence: str
    encoder: str = ""  # filled in when a preset is built: "record: TabularEncoder (trained)"
    bad: list[Any] = field(default_factory=list)  # sampled values its encoder cannot read (missing files)


@dataclass
class Roles:
    """The role of every column of a training split, and the task the label sets."""

    label: str
    task: str
    columns: list[Assigned]
    rows: int
    label_role: str = ""  # the name of the role that recognised the label
    sample: dict[str, Column] = field(default_factory=dict, repr=False)
    found: dict[str, Found] = field(default_factory=dict, repr=False)

    @property
    def id_column(self) -> str | None:
        return next((a.column for a in self.columns if a.role == "id"), None)

    def inputs(self) -> dict[str, str]:
        """Input column -> its role's name, in table order."""
        return {a.column: a.role for a in self.columns if a.role not in (*CORE_ROLES, "label", "derived")}

    def table(self) -> str:
        """The role table: column, role, evidence and (once a preset is built) the encoder chosen."""
        head = ("column", "role", "encoder", "evidence")
        lines = [
            (a.column, a.role if a.role != "label" else f"label ({self.task})", a.encoder, a.evidence)
            for a in self.columns
        ]
        widths = [max(len(str(row[i])) for row in [head, *lines]) for i in range(3)]
        out = [f"{head[0]:<{widths[0]}}  {head[1]:<{widths[1]}}  {head[2]:<{widths[2]}}  {head[3]}"]
        out += [f"{c:<{widths[0]}}  {r:<{widths[1]}}  {e:<{widths[2]}}  {v}" for c, r, e, v in lines]
        return "\n".join(out)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "task": self.task,
            "rows": self.rows,
            "columns": [
                {"column": a.column, "role": a.role, "evidence": a.evidence, "encoder": a.encoder} for a in self.columns
            ],
        }


def infer_roles(
    rows: Sequence[Mapping[str, Any]],
    label: str,
    root: str | Path,
    column_types: Mapping[str, str] | None = None,
    where: str = "the training data",
    roles: Sequence[Role] | None = None,
    seed: int = 0,
) -> Roles:
    """Every column's role from the values of ``rows`` (media paths relative to ``root``). ``column_types``
    overrides any column's role (a role's name, ``id`` or ``ignore``). Raises :class:`RoleError` with the reason for
    a table it cannot use."""
    roles = list(roles) if roles is not None else installed_roles()
    by_name = {role.name: role for role in roles}
    given = dict(column_types or {})
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if not rows:
        raise RoleError(f"{where} has no rows")
    if label not in columns:
        raise RoleError(f"label '{label}' is not a column of {where}; its columns are {', '.join(columns)}")
    unknown = sorted(set(given) - set(columns))
    if unknown:
        raise RoleError(
            f"column_types names {unknown}, which {where} does not have; its columns are {', '.join(columns)}"
        )
    wrong = {c: r for c, r in given.items() if r not in by_name and r not in CORE_ROLES}
    if wrong:
        known = ", ".join([*sorted(r.name for r in roles if not r.target), *CORE_ROLES])
        raise RoleError(f"column_types gives {wrong}: no such role; the roles are {known}")
    picked = random.Random(seed).sample(range(len(rows)), min(SAMPLE, len(rows)))
    table = [dict(rows[i]) for i in sorted(picked)]
    root = Path(root)

    def column(name: str) -> Column:
        return Column(name, [r[name] for r in table if present(r.get(name))], len(table), root, table)

    labels = [row.get(label) for row in rows]
    labelled = [v for v in labels if present(v)]
    if len(labelled) < len(rows) / 2:
        raise RoleError(
            f"label '{label}' is missing in {len(rows) - len(labelled)} of {len(rows)} rows of {where}; a label must "
            "be given on most rows (leave the unlabelled rows out, or name another label)"
        )
    if len({str(v) for v in labelled}) < 2:
        raise RoleError(
            f"label '{label}' has one value in all {len(labelled)} labelled rows of {where} "
            f"({labelled[0]!r}): there is nothing to learn; check the label column"
        )
    label_column = column(label)
    task_role, task = detect(label_column, [r for r in roles if r.target])
    if task_role is None or task is None:
        raise RoleError(
            f"no installed plugin recognises label '{label}' (values like {label_column.values[:3]!r}) as a task"
        )
    found: dict[str, Found] = {label: task}
    assigned = [Assigned(label, "label", f"{task_role.name}: {task.evidence}")]
    sample = {label: label_column}
    for name in columns:
        if name == label:
            continue
        values = [row.get(name) for row in rows]
        if name in given:
            assigned.append(Assigned(name, given[name], "given in column_types"))
            sample[name] = column(name)
            continue
        if not any(present(v) for v in values):
            raise RoleError(
                f"column '{name}' is empty in all {len(rows)} rows of {where}: leave it out, "
                f"or give column_types={{'{name}': 'ignore'}}"
            )
        sample[name] = found_column = column(name)
        refuse_missing_files(found_column, where)
        why = id_evidence(name, values, found_column)
        if why:
            assigned.append(Assigned(name, "id", why))
            continue
        why = derived_evidence(values, labels, task.task)
        if why:
            assigned.append(Assigned(name, "derived", why + f"; to use it, give column_types={{'{name}': ROLE}}"))
            continue
        role, answer = detect(found_column, [r for r in roles if not r.target])
        if role is None or answer is None:
            raise RoleError(
                f"no installed plugin recognises column '{name}' of {where} (values like {found_column.values[:3]!r}); "
                f"give its role with column_types={{'{name}': ROLE}} or leave it out with 'ignore'; the roles are "
                + ", ".join(r.name for r in roles if not r.target)
            )
        found[name] = answer
        assigned.append(Assigned(name, role.name, answer.evidence, bad=role.bad_values(found_column)))
    if not any(a.role not in (*CORE_ROLES, "label", "derived") for a in assigned):
        raise RoleError(
            f"{where} has no input column besides the label '{label}' (roles: {[(a.column, a.role) for a in assigned]})"
        )
    return Roles(label, task.task, assigned, len(rows), task_role.name, sample, found)


def installed_roles() -> list[Role]:
    """One of each role the installed plugins register, in ``order``."""
    from mmlightning.plugins import get_registry

    return sorted((c.cls() for c in get_registry().components("role")), key=lambda r: (r.order, r.name))


def detect(column: Column, roles: Sequence[Role]) -> tuple[Role | None, Found | None]:
    for role in roles:
        answer = role.detect(column)
        if answer is not None:
            return role, answer
    return None, None


def present(value: Any) -> bool:
    """A value that is there: not None, not NaN, not an empty string or list."""
    if value is None or value == "" or value == []:
        return False
    return not (isinstance(value, float) and value != value)


def id_evidence(name: str, values: Sequence[Any], column: Column) -> str | None:
    """Why a column is a row id, or None: a different value on every row, each a whole number or one word that
    names no file."""
    there = [v for v in values if present(v)]
    if len(there) < len(values) or len(set(map(str, there))) < len(there) or len(there) < 2:
        return None
    if all(isinstance(v, int) and not isinstance(v, bool) for v in there):
        return f"a different whole number on each of the {len(there)} rows"
    if all(isinstance(v, str) and v.strip() and " " not in v and len(v) <= 64 for v in there):
        if any(head is not None for _, head in column.file_heads()):
            return None  # names files: a media column whose every file differs
        if all(_is_number(v) and not float(v).is_integer() for v in there[:100]):
            return None
        return f"a different word on each of the {len(there)} rows ({there[0]!r}, ...)"
    return None


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def derived_evidence(values: Sequence[Any], labels: Sequence[Any], task: str) -> str | None:
    """Why a column looks derived from a class label (a second target, or the label in other words), or None.
    Checked on columns with few values: either it follows from the label on every row, or alone it removes at
    least half the error of always guessing the commonest class."""
    if task not in ("binary", "multiclass"):
        return None
    pairs = [(str(v), str(y)) for v, y in zip(values, labels) if present(v) and present(y)]
    kinds = {v for v, _ in pairs}
    if len(pairs) < 20 or not 2 <= len(kinds) <= LEAK_MAX_VALUES:
        return None

    def consistency(items: Sequence[tuple[str, str]]) -> float:
        groups: dict[str, Counter[str]] = defaultdict(Counter)
        for a, b in items:
            groups[a][b] += 1
        return sum(c.most_common(1)[0][1] for c in groups.values()) / len(items)

    if consistency([(y, v) for v, y in pairs]) >= 0.999:
        return f"follows from the label on every row ({len(kinds)} values): a second target, not an input"
    base = Counter(y for _, y in pairs).most_common(1)[0][1] / len(pairs)
    given = consistency(pairs)
    if base < 1 and (given - base) / (1 - base) >= LEAK_ERROR_CUT:
        return (
            f"alone it gives the label on {given:.0%} of rows (always guessing the commonest class: {base:.0%}): "
            "likely a second target or the label in other words, left out"
        )
    return None


def refuse_missing_files(column: Column, where: str) -> None:
    """A column of file paths whose files mostly are not there: refused, with the folder they were looked for in."""
    strings = [v for v in column.values if isinstance(v, str)]
    if not strings or sum(bool(PATH_LIKE.match(v)) for v in strings) < 0.8 * len(column.values):
        return
    heads = column.file_heads()
    missing = [v for v, head in heads if head is None]
    if heads and len(missing) > len(heads) / 2:
        raise RoleError(
            f"column '{column.name}' of {where} holds file paths, but {len(missing)} of {len(heads)} sampled files "
            f"are not under {column.root} (e.g. {missing[0]!r}); give the folder the paths are relative to "
            f"(root=..., --root), or column_types={{'{column.name}': 'ignore'}}"
        )
