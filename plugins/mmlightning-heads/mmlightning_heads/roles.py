"""Labels, recognised from their values for `mmlightning auto`: which task they set, and the head for it."""

from __future__ import annotations

from collections import Counter

from mmlightning.roles import Choice, Column, Found, Role, number

MAX_CLASSES_AS_NUMBERS = 20  # whole numbers with more distinct values than this are a quantity to regress


class ClassLabelRole(Role):
    """One class per row: strings, true/false, or whole numbers with few values (digits 0-9)."""

    name = "class label"
    target = True
    order = 20

    def detect(self, column: Column) -> Found | None:
        values = column.values
        if not values or any(isinstance(v, (list, dict)) for v in values):
            return None
        numbers = [number(v) for v in values]
        counts = Counter(str(v) for v in values)
        if all(x is not None for x in numbers) and not all(isinstance(v, bool) for v in values):
            if any(not float(x).is_integer() for x in numbers if x is not None) or len(counts) > MAX_CLASSES_AS_NUMBERS:
                return None
        task = "binary" if len(counts) == 2 else "multiclass"
        common, share = counts.most_common(1)[0][0], counts.most_common(1)[0][1] / len(values)
        return Found(f"{len(counts)} classes; the most common, '{common}', is {share:.0%} of rows", task)

    def head(self, column: Column, found: Found, preset: str) -> Choice:
        return Choice({"class_path": "ClassificationHead", "init_args": {"dropout": 0.3}}, metric="acc", mode="max")


class ValueLabelRole(Role):
    """A quantity per row: numbers with fractions, or whole numbers with many values."""

    name = "value label"
    target = True
    order = 30

    def detect(self, column: Column) -> Found | None:
        numbers = [number(v) for v in column.values]
        if not numbers or any(x is None for x in numbers):
            return None
        found = [x for x in numbers if x is not None]
        return Found(f"numbers from {min(found):g} to {max(found):g}, {len(set(found))} distinct", "regression")

    def head(self, column: Column, found: Found, preset: str) -> Choice:
        return Choice({"class_path": "RegressionHead", "init_args": {"dropout": 0.0}}, metric="rmse", mode="min")


class TagsRole(Role):
    """A tag per token (named entities): lists of strings as long, row by row, as another column's lists of words."""

    name = "tags"
    target = True
    order = 10

    def detect(self, column: Column) -> Found | None:
        rows = [r for r in column.table if isinstance(r.get(column.name), list) and r[column.name]]
        if not rows or not all(isinstance(t, str) for r in rows for t in r[column.name]):
            return None
        for other in dict.fromkeys(k for r in rows for k in r if k != column.name):
            same = sum(isinstance(r.get(other), list) and len(r[other]) == len(r[column.name]) for r in rows)
            if same >= 0.95 * len(rows):
                kinds = sorted({t.partition("-")[2] for r in rows for t in r[column.name] if t != "O"})
                return Found(
                    f"a tag per word of '{other}' ({same} of {len(rows)} rows as long); entity kinds {', '.join(kinds[:6])}",
                    "ner",
                    reads=other,
                )
        return None

    def head(self, column: Column, found: Found, preset: str) -> Choice:
        reads = "".join(c if c.isalnum() or c == "_" else "_" for c in found.reads)
        return Choice(
            {"class_path": "TokenClassificationHead", "init_args": {"modality": reads, "crf": True}},
            metric="f1",
            mode="max",
            # the tagger reads the encoder's own tokens: a fusion with no layers of its own passes them through
            fusion={"class_path": "SingleStreamFusion", "init_args": {"dim": 384, "layers": 0}},
        )


class LabelSetRole(Role):
    """Several labels per row: lists of strings (or of whole numbers), not aligned with a list of tokens."""

    name = "label set"
    target = True
    order = 40

    def detect(self, column: Column) -> Found | None:
        values = column.values
        if not values or not all(isinstance(v, list) for v in values):
            return None
        if not all(isinstance(x, (str, int)) and not isinstance(x, bool) for v in values for x in v):
            return None
        labels = Counter(str(x) for v in values for x in v)
        if len(labels) < 2:
            return None
        mean = sum(len(v) for v in values) / len(values)
        return Found(f"lists of {len(labels)} labels, {mean:.1f} a row", "multilabel")

    def head(self, column: Column, found: Found, preset: str) -> Choice:
        return Choice({"class_path": "MultiLabelHead", "init_args": {}}, metric="f1_macro", mode="max")
