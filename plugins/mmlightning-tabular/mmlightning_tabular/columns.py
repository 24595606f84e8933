"""What a record encoder learns from the training split, column by column, as JSON.

Each column is a number or a category: inferred from its training values (numbers where every value that is
there reads as a finite number), or given. A number column keeps its mean and spread (values are standardised)
and the quantile edges of its standardised values (the piecewise-linear embedding's bins); a category column
keeps its vocabulary, most frequent first. Missing cells (null, empty, NaN) are left out of every statistic.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

Kind = Literal["number", "category"]
KINDS = ("number", "category")


def is_missing(value: Any) -> bool:
    """A missing cell: null, an empty or blank string, or NaN."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


def as_float(value: Any) -> float | None:
    """A cell as a finite number, or None when it does not read as one (text, a bool, infinity)."""
    if isinstance(value, bool):
        return None
    try:
        found = float(value)
    except (TypeError, ValueError):
        return None
    return found if math.isfinite(found) else None


def as_category(value: Any) -> str:
    """A cell as a category name: the same text whether it came as ``3`` or ``"3"`` or ``3.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def infer_kind(values: Sequence[Any]) -> Kind:
    """``number`` when every present value reads as a finite number (and there is one), else ``category``."""
    present = [v for v in values if not is_missing(v)]
    if present and all(as_float(v) is not None for v in present):
        return "number"
    return "category"


def quantile_bins(standardised: np.ndarray, bins: int) -> list[float]:
    """Edges for a piecewise-linear embedding: the distinct quantiles of the values, or each distinct value when
    there are no more than ``bins + 1`` (at least two edges, so a column with one distinct value still has a bin)."""
    if standardised.size == 0:
        return [-1.0, 1.0]
    edges = np.unique(standardised)  # few distinct values (a count, a year): an edge at each
    if edges.size > bins + 1:
        edges = np.unique(np.quantile(standardised, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size < 2:
        return [float(edges[0]) - 1.0, float(edges[0]) + 1.0]
    return [float(e) for e in edges]


def target_codes(targets: Sequence[Any]) -> tuple[np.ndarray, bool] | None:
    """Targets as a tree can learn them: ``(values, regression)``, with None read as missing (NaN or -1). A
    target that is a number with many distinct values is a regression target, anything else a class; a list
    (tags, several labels) cannot steer a tree: None."""
    present = [t for t in targets if t is not None]
    if not present or any(isinstance(t, (list, dict)) for t in present):
        return None
    numbers = [as_float(t) for t in present]
    if all(n is not None for n in numbers) and len(set(numbers)) > 20:
        return np.asarray([np.nan if t is None else as_float(t) for t in targets], dtype=np.float64), True
    names = sorted({as_category(t) for t in present})
    index = {name: i for i, name in enumerate(names)}
    return np.asarray([-1 if t is None else index[as_category(t)] for t in targets], dtype=np.int64), False


def tree_bins(standardised: np.ndarray, target: np.ndarray, regression: bool, bins: int) -> list[float]:
    """Edges where a decision tree on this one column splits it to predict the target, at most ``bins`` leaves
    (Gorishniy et al. 2022, section 3.2.2, with their tree settings; a leaf holds 64 rows, or a tenth of a small
    column), plus the column's ends."""
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    known = target >= 0 if not regression else ~np.isnan(target)
    x, y = standardised[known].reshape(-1, 1), target[known]
    if x.shape[0] < 2:
        return quantile_bins(standardised, bins)
    kind = DecisionTreeRegressor if regression else DecisionTreeClassifier
    leaf = max(1, min(64, x.shape[0] // 10))
    tree = kind(max_leaf_nodes=bins, min_samples_leaf=leaf, min_impurity_decrease=1e-4, random_state=0).fit(x, y)
    nodes = tree.tree_
    splits = [
        float(nodes.threshold[n]) for n in range(nodes.node_count) if nodes.children_left[n] != nodes.children_right[n]
    ]
    edges = np.unique([float(standardised.min()), float(standardised.max()), *splits])
    return [float(e) for e in edges] if edges.size >= 2 else quantile_bins(standardised, bins)


def fit_columns(
    rows: Sequence[Mapping[str, Any]],
    kinds: Mapping[str, str] | None = None,
    bins: int = 48,
    max_categories: int = 1000,
    target: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Learn each column of ``rows`` (``{column: value}`` each) -> the encoder's JSON fitted state.

    Args:
        kinds: column -> ``number`` or ``category``, overriding what the values suggest.
        bins: the most bins a number column gets.
        max_categories: a category column keeps its most frequent values up to this many; rarer ones are
            read as unknown.
        target: one target per row (None where a row has none). Given, a number column with more distinct values
            than bins gets its edges from a decision tree predicting the target instead of from its quantiles.
    """
    coded = target_codes(target) if target is not None else None
    kinds = dict(kinds or {})
    columns = list(dict.fromkeys(column for row in rows for column in row))
    wrong = sorted(set(kinds.values()) - set(KINDS))
    if wrong:
        raise ValueError(f"kinds: {wrong[0]!r} is not a column kind; use 'number' or 'category'")
    unknown = sorted(set(kinds) - set(columns))
    if unknown:
        raise ValueError(f"kinds names column(s) {unknown} that the encoder does not read; it reads {columns}")
    state: dict[str, Any] = {"columns": [], "kinds": {}, "mean": {}, "std": {}, "bins": {}, "vocab": {}}
    for column in columns:
        values = [row.get(column) for row in rows]
        kind = kinds.get(column) or infer_kind(values)
        state["columns"].append(column)
        state["kinds"][column] = kind
        present = [v for v in values if not is_missing(v)]
        if kind == "number":
            numbers = [as_float(v) for v in present]
            bad = next((v for v, n in zip(present, numbers) if n is None), None)
            if bad is not None:
                raise ValueError(f"kinds makes '{column}' a number column, but it holds {bad!r} in training")
            array = np.asarray(numbers, dtype=np.float64)
            mean = float(array.mean()) if array.size else 0.0
            std = float(array.std()) if array.size else 1.0
            std = std if std > 1e-12 else 1.0
            state["mean"][column], state["std"][column] = mean, std
            standardised = (array - mean) / std
            if coded is not None and np.unique(standardised).size > bins + 1:
                kept = np.asarray([not is_missing(v) for v in values])
                state["bins"][column] = tree_bins(standardised, coded[0][kept], coded[1], bins)
            else:
                state["bins"][column] = quantile_bins(standardised, bins)
        else:
            counts = Counter(as_category(v) for v in present)
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:max_categories]
            state["vocab"][column] = [name for name, _ in ranked]
    return state


def describe(state: Mapping[str, Any]) -> str:
    """One line per kind: which columns are numbers and which categories (printed when fitting)."""
    numbers = [c for c in state["columns"] if state["kinds"][c] == "number"]
    categories = [f"{c} ({len(state['vocab'][c])})" for c in state["columns"] if state["kinds"][c] == "category"]
    return (
        f"{len(numbers)} number column(s): {', '.join(numbers) or '-'}; "
        f"{len(categories)} category column(s) (values): {', '.join(categories) or '-'}"
    )
