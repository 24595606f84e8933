"""Numbers and categories, recognised from their values for `mmlightning auto`: every such column of a table is
read by one :class:`~mmlightning_tabular.encoder.TabularEncoder`, the record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmlightning.roles import Choice, Column, Found, Role, number

MAX_CATEGORIES = 50  # string values with more distinct values than this are categories only when they repeat a lot


def code_evidence(column: Column) -> str | None:
    """Why a column of whole numbers is a code (zip codes, product codes) and not a quantity, or None: a leading
    zero written out, or numbers of one width (3 digits or more), sparse over their range, that repeat."""
    values = column.values
    if any(isinstance(v, str) and len(v) > 1 and v.startswith("0") and v.isdigit() for v in values):
        return "digit strings with leading zeros (codes, not quantities)"
    numbers = [number(v) for v in values]
    if not numbers or any(x is None or not float(x).is_integer() or x < 0 for x in numbers):
        return None
    whole = [int(x) for x in numbers if x is not None]
    distinct = set(whole)
    widths = {len(str(x)) for x in whole}
    spread = max(whole) - min(whole) + 1
    if len(widths) == 1 and min(widths) >= 3 and len(whole) >= 2 * len(distinct) and len(distinct) < 0.5 * spread:
        return (
            f"codes: whole numbers of {widths.pop()} digits, {len(distinct)} distinct in {len(whole)} rows, "
            f"each seen {len(whole) / len(distinct):.0f} times on average, scattered over {min(whole)}-{max(whole)}"
        )
    return None


class CategoricalRole(Role):
    """A category: true/false, short strings that repeat, or whole-number codes (zip codes)."""

    name = "categorical"
    order = 60
    shared = "record"

    def detect(self, column: Column) -> Found | None:
        values = column.values
        if not values or any(isinstance(v, (list, dict)) for v in values):
            return None
        distinct = len({str(v) for v in values})
        if all(isinstance(v, bool) for v in values):
            return Found("true/false")
        if all(number(v) is not None for v in values):
            code = code_evidence(column)
            if code:
                return Found(code)
            if distinct <= 2:
                return Found(f"numbers with {distinct} values")
            return None
        if not all(isinstance(v, (str, int, float)) for v in values):
            return None
        words = sum(len(str(v).split()) for v in values) / len(values)
        repeats = len(values) / distinct
        if (distinct <= MAX_CATEGORIES and repeats >= 2) or (repeats >= 4 and words <= 4):
            shown = ", ".join(sorted({str(v) for v in values})[:3])
            return Found(f"{distinct} distinct values in {len(values)} rows ({shown}, ...), {words:.1f} words each")
        return None

    def encoder(self, columns: Sequence[str], preset: str, facts: dict[str, Any]) -> Choice:
        return record(columns, facts)


class NumericRole(Role):
    """A quantity: numbers (or strings of numbers) that are not codes."""

    name = "numeric"
    order = 70
    shared = "record"

    def detect(self, column: Column) -> Found | None:
        numbers = [number(v) for v in column.values]
        if not numbers or any(x is None for x in numbers):
            return None
        found = [x for x in numbers if x is not None]
        low, high = min(found), max(found)
        return Found(f"numbers from {low:g} to {high:g}, {len(set(found))} distinct")

    def encoder(self, columns: Sequence[str], preset: str, facts: dict[str, Any]) -> Choice:
        return record(columns, facts)


def record(columns: Sequence[str], facts: dict[str, Any]) -> Choice:
    """One Transformer over every numeric and categorical column (FT-Transformer style), each column's kind as
    inferred, trained in every preset (it has no pretrained weights); number bins split by the label."""
    roles = facts.get("roles", {})
    kinds = {c: ("category" if roles.get(c) == "categorical" else "number") for c in columns}
    args: dict[str, Any] = {"dim": 64, "layers": 2, "heads": 8, "dropout": 0.1, "kinds": kinds}
    if facts.get("target"):  # number bins where a tree on each number column splits it by the label
        args.update(binning="tree", target=facts["target"])
    return Choice({"class_path": "TabularEncoder", "init_args": args}, key="record")
