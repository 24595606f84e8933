"""The role contract: how a plugin recognises a kind of column from its values (`mmlightning auto`, the
:class:`~mmlightning.auto.Predictor`), and what it builds for it: an encoder for an input, a head for a label.

The core knows no modality. It works out ids, empty columns and columns derived from the label; every other role
(text, image, numbers, a class label, ...) is a :class:`Role` a plugin registers::

    @hookimpl
    def register_roles(register):
        register("my_plugin.roles:PointCloudRole")

Roles are tried in ``order`` (lowest first); the first whose ``detect`` answers takes the column.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

PRESETS = ("fast", "balanced", "best", "fewshot")  # fewshot asks each role for its fast choice


def number(value: Any) -> float | None:
    """A finite number from a number or a string of one (CSV cells arrive as strings); None for anything else,
    true/false included."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        found = float(value)
    except ValueError:
        return None
    return found if math.isfinite(found) else None


@dataclass
class Column:
    """What is known of one column of the training split: a sample of its rows.

    ``values``: the column's non-empty values in the sampled rows, in order; ``rows``: how many rows were sampled;
    ``root``: the folder media paths are relative to; ``table``: the sampled rows themselves (for a role that reads
    one column against another, such as tags against their tokens)."""

    name: str
    values: list[Any]
    rows: int
    root: Path
    table: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _heads: list[tuple[Any, bytes | None]] | None = field(default=None, repr=False)

    def file_heads(self, size: int = 64) -> list[tuple[Any, bytes | None]]:
        """For each value that could be a path under ``root``: (value, the file's first ``size`` bytes), with
        None where no such file exists. Values that are not strings, or are too long for a path, are skipped.
        Files are never followed outside ``root``."""
        if self._heads is None:
            found: list[tuple[Any, bytes | None]] = []
            root = self.root.resolve()
            for value in self.values:
                if not isinstance(value, str) or not value or len(value) > 1024 or "\n" in value:
                    continue
                try:
                    path = (root / value).resolve()
                    if root not in path.parents or not path.is_file():
                        found.append((value, None))
                        continue
                    with open(path, "rb") as file:
                        found.append((value, file.read(size)))
                except OSError:  # a name too long for the file system, a file that cannot be read: not a file here
                    found.append((value, None))
            self._heads = found
        return self._heads

    def media(self, kind: str, sniff: Callable[[bytes], str | None]) -> Found | None:
        """A media role's answer: the column names files (under ``root``) and most of the files there are of the
        role's kind. ``sniff`` names the format from a file's first bytes (``"PNG"``), or None. Missing files do not
        decide it: they are bad rows at fit (the core refuses a column whose files mostly do not exist)."""
        heads = self.file_heads()
        there = [head for _, head in heads if head is not None]
        formats = Counter(name for name in map(sniff, there) if name)
        matched = sum(formats.values())
        if not there or matched <= len(there) / 2:
            return None
        missing = len(heads) - len(there)
        shown = ", ".join(f"{name} {count}" for name, count in formats.most_common(3))
        return Found(
            f"{kind} files by content ({shown} of {len(heads)} sampled"
            + (f"; {missing} missing, reported as bad rows" if missing else "")
            + ")"
        )


@dataclass
class Found:
    """A role's answer for a column: why it fits (``evidence``, shown in the role table), and for a label, the
    ``task`` (``binary``, ``multiclass``, ``multilabel``, ``regression``, ``ner``, ...)."""

    evidence: str
    task: str = ""
    reads: str = ""  # a label read against another column: the column (tags: their tokens)


@dataclass
class Choice:
    """What a role builds for its columns under a preset: a component (``{"class_path": ..., "init_args": ...}``),
    whether it stays frozen (an encoder), the metric that ranks models (a head: ``val/KEY/NAME`` with ``mode``),
    the ``key`` to build it under (an encoder: default the column's name), and for a head that needs one, the
    ``fusion`` every model of the preset then uses.

    A frozen pretrained encoder may also say how to fine-tune it from a few rows (the ``fewshot`` preset's second
    model, which starts from the linear probe): ``tuned``, the component to train (its random training
    augmentation on, say), and ``tuned_levels``, how many of its top blocks train (the rest stays frozen)."""

    component: dict[str, Any]
    frozen: bool = False
    metric: str = ""
    mode: str = "max"
    key: str = ""
    fusion: dict[str, Any] | None = None  # a head that needs a fusion of its own (a tagger: the tokens themselves)
    tuned: dict[str, Any] | None = None
    tuned_levels: int = 0


class Role:
    """A kind of column recognised from its values. Subclasses set ``name`` and implement :meth:`detect`, and
    :meth:`encoder` (an input role) or :meth:`head` (a label role, ``target = True``)."""

    name: ClassVar[str] = ""
    target: ClassVar[bool] = False
    order: ClassVar[int] = 100
    shared: ClassVar[str] = ""  # input roles with the same ``shared`` key read their columns with one encoder

    def detect(self, column: Column) -> Found | None:
        """Why ``column`` is of this role, or None. Sample values only: it runs before anything is trained."""
        raise NotImplementedError

    def encoder(self, columns: Sequence[str], preset: str, facts: dict[str, Any]) -> Choice:
        """The encoder for ``columns`` (one, or all the columns of this ``shared`` group) under ``preset``
        (``fast``, ``balanced``, ``best``). ``facts``: other choices made, e.g. ``{"roles": {column: role}}``."""
        raise NotImplementedError(f"{type(self).__name__} is a label role: it builds a head, not an encoder")

    def head(self, column: Column, found: Found, preset: str) -> Choice:
        """The head for label ``column`` (its task in ``found.task``) under ``preset``."""
        raise NotImplementedError(f"{type(self).__name__} is an input role: it builds an encoder, not a head")

    def bad_values(self, column: Column) -> list[Any]:
        """Values of a detected column its encoder cannot read (an input role; media: files that do not exist),
        for the role table. They become bad rows at fit, reported with their line."""
        return []


class MediaRole(Role):
    """A column of file paths whose files are of one kind, told by their first bytes (:meth:`sniff`), never by
    their names. Files that are not there are its bad values (bad rows at fit)."""

    def sniff(self, head: bytes) -> str | None:
        """The format a file's first 64 bytes show (``"PNG"``), or None when not of this role's kind."""
        raise NotImplementedError

    def detect(self, column: Column) -> Found | None:
        return column.media(self.name, self.sniff)

    def bad_values(self, column: Column) -> list[Any]:
        return [value for value, head in column.file_heads() if head is None]
