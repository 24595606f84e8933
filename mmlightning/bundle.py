"""`ProcessorBundle`: the fitted data side of a model, saved and used apart from its weights.

A model produces it once fitted (``MultimodalModule.bundle``); the datamodule, W&B previews, ``predict`` and
anything that serves a model turn raw rows into batches and outputs into predictions with it, and never need
the training module. It pickles (DataLoader workers get a copy) and saves as JSON (``bundle.json`` in a run's
folder, and inside every checkpoint).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mmlightning.contracts import Batch
from mmlightning.errors import MissingFileError, OverLimit, TooLargeError
from mmlightning.files import write_text
from mmlightning.processing import CACHED, MediaRoot, Processor, Stateful, TargetCodec

FORMAT = "mmlightning.bundle/1"
FILENAME = "bundle.json"
Columns = str | list[str]


class ProcessorBundle:
    """Each encoder's processor and each head's target codec, the columns they read, and the id column.

    Args:
        processors: encoder key -> its processor.
        codecs: head key -> its target codec (every head: those without a target column only decode).
        columns: key -> the manifest column it reads (default: the key); an encoder may read a list of columns
            and then gets ``{column: value}`` per row.
        targets: the head keys that read a target column (default: every head).
        id_column: the column that names a sample (``file:line`` when a row has none).
        fitted: False for a bundle made before the model learnt from data: it can only check rows.
        drawn: encoder keys whose input a head generates (a picture for a text): a row to predict from may lack them.
    """

    def __init__(
        self,
        processors: Mapping[str, Processor],
        codecs: Mapping[str, TargetCodec],
        columns: Mapping[str, Columns] | None = None,
        targets: Iterable[str] | None = None,
        id_column: str = "id",
        fitted: bool = True,
        drawn: Iterable[str] = (),
    ) -> None:
        self.processors, self.codecs = dict(sorted(processors.items())), dict(sorted(codecs.items()))
        given = dict(columns or {})
        self.columns: dict[str, Columns] = {key: given.get(key, key) for key in [*self.processors, *self.codecs]}
        self.targets = sorted(self.codecs if targets is None else targets)
        self.id_column, self.fitted = id_column, fitted
        self.drawn = sorted(drawn)

    # --- which columns ----------------------------------------------------------------------------
    def input_columns(self, key: str) -> list[str]:
        spec = self.columns[key]
        return [spec] if isinstance(spec, str) else list(spec)

    def target_column(self, key: str) -> str:
        spec = self.columns[key]
        if not isinstance(spec, str):
            raise ValueError(f"head '{key}' reads one target column, but --data.columns gives it {spec}")
        return spec

    def read_columns(self, targets: bool = True, drawn: bool = True) -> list[str]:
        """Every column the model reads (inputs first), once each; without ``drawn``, none of the inputs heads draw."""
        keys = [key for key in self.processors if drawn or key not in self.drawn]
        out = [c for key in keys for c in self.input_columns(key)]
        out += [self.target_column(key) for key in self.targets] if targets else []
        return list(dict.fromkeys(out))

    def value(self, key: str, row: Mapping[str, Any]) -> Any:
        """An encoder's raw value in a row: one column's value, or ``{column: value}`` (None when all are missing)."""
        spec = self.columns[key]
        if isinstance(spec, str):
            return row.get(spec)
        picked = {column: row.get(column) for column in spec}
        return picked if any(v is not None for v in picked.values()) else None

    # --- checking and encoding rows -----------------------------------------------------------------
    def check(
        self,
        row: Mapping[str, Any],
        root: Path,
        inputs: Iterable[str] | None = None,
        targets: Iterable[str] | None = None,
    ) -> list[str]:
        """Every reason a row is bad (empty: good). A missing input is allowed (a missing modality); a
        missing target is not. ``inputs``/``targets``: only these keys (default: all)."""
        reasons = []
        for key in self.processors if inputs is None else inputs:
            value = self.value(key, row)
            if value is not None:
                reasons.append(_reason(self._field(key), lambda v=value, k=key: self.processors[k].check(v, root)))
        for key in self.targets if targets is None else targets:
            column, codec = self.target_column(key), self.codecs[key]
            value = row.get(column)
            if value is None:
                reasons.append(f"field '{column}': missing target")
            else:
                reasons.append(_reason(f"field '{column}'", lambda v=value, c=codec: self._check_target(c, v)))
        return [r for r in reasons if r]

    def _check_target(self, codec: TargetCodec, value: Any) -> None:
        codec.check(value)
        if self.fitted:
            codec.encode(value)

    def _field(self, key: str) -> str:
        columns = self.input_columns(key)
        return f"field '{columns[0]}'" if isinstance(self.columns[key], str) else f"columns of '{key}'"

    def item(
        self,
        row: Mapping[str, Any],
        root: Path,
        train: bool = False,
        ident: str | None = None,
        targets: Iterable[str] | None = None,
        skip: Collection[str] = (),
    ) -> dict[str, Any]:
        """One row -> the tensors of one sample (what a dataset gives): inputs (None where missing), targets.
        ``skip``: encoders whose features all come from the feature cache; their values are not processed."""
        inputs: dict[str, Any] = {}
        for key, processor in self.processors.items():
            value = self.value(key, row)
            stored = getattr(root, "decoded", {}).get(key)  # from shards written with --decoded
            if value is None:
                inputs[key] = None
            elif key in skip:
                inputs[key] = CACHED
            else:
                inputs[key] = processor(value, root, train) if stored is None else processor.from_decoded(stored, train)
        wanted = self.targets if targets is None else targets
        encoded = {
            key: self.codecs[key].encode(row[self.target_column(key)])
            for key in wanted
            if row.get(self.target_column(key)) is not None
        }
        raw = {column: row.get(column) for column in self.read_columns()}
        found = row.get(self.id_column)
        return {"id": ident if found is None else str(found), "inputs": inputs, "targets": encoded, "raw": raw}

    def collate(self, items: Sequence[dict[str, Any]], root: Path | str = ".") -> Batch:
        """Items -> a :class:`Batch` (each processor's own collate; targets every item has)."""
        inputs = {key: _inputs(proc, [item["inputs"][key] for item in items]) for key, proc in self.processors.items()}
        keys = set.intersection(*(set(item["targets"]) for item in items)) if items else set()
        targets = {key: self.codecs[key].collate([item["targets"][key] for item in items]) for key in sorted(keys)}
        raw = {column: [item["raw"][column] for item in items] for column in (items[0]["raw"] if items else {})}
        return Batch(inputs=inputs, targets=targets, ids=[item["id"] for item in items], raw=raw, root=str(root))

    def __call__(self, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]], root: Path | str = ".") -> Batch:
        """Raw rows (or one row) -> a batch the model takes. Bad values raise ``ValueError`` naming the field."""
        rows = [rows] if isinstance(rows, Mapping) else list(rows)
        root = root if isinstance(root, MediaRoot) else MediaRoot.make(root)
        items = []
        for i, row in enumerate(rows):
            reasons = self.check(
                row, Path(root), targets=[k for k in self.targets if row.get(self.target_column(k)) is not None]
            )
            if reasons:
                raise ValueError(f"row {i}: {'; '.join(reasons)}")
            items.append(self.item(row, Path(root), ident=str(i)))
        return self.collate(items, root)

    def decode(self, outputs: Mapping[str, Any], ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Head outputs (``{head: HeadOutput}``) -> one dict of plain predictions per sample, ``id`` first, in input
        order; a head whose codec gives scores adds ``HEAD_scores`` (a classification head: each label's probability)."""
        decoded: dict[str, list[Any]] = {}
        for key, output in sorted(outputs.items()):
            decoded[key] = self.codecs[key].decode(output)
            scores = self.codecs[key].scores(output)
            if scores is not None:  # e.g. a probability per class: written as HEAD_scores
                decoded[f"{key}_scores"] = scores
        count = len(next(iter(decoded.values()))) if decoded else 0
        ids = list(ids) if ids is not None else [str(i) for i in range(count)]
        return [{"id": ident, **{key: values[i] for key, values in decoded.items()}} for i, ident in enumerate(ids)]

    # --- saving -------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The whole bundle as plain JSON data (tuples become lists): class paths and each part's state."""
        state: dict[str, Any] = json.loads(
            json.dumps(
                {
                    "format": FORMAT,
                    "id_column": self.id_column,
                    "drawn": self.drawn,
                    "inputs": {
                        key: {"columns": self.columns[key], "processor": _path(p), "state": p.state()}
                        for key, p in self.processors.items()
                    },
                    "heads": {
                        key: {
                            "column": self.columns[key],
                            "target": key in self.targets,
                            "codec": _path(c),
                            "state": c.state(),
                        }
                        for key, c in self.codecs.items()
                    },
                }
            )
        )
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ProcessorBundle:
        if state.get("format") != FORMAT:
            raise ValueError(
                f"not a processor bundle of format {FORMAT} (found {state.get('format')!r}); re-save it with this version"
            )
        processors = {
            key: _load(spec["processor"], Processor).from_state(spec["state"]) for key, spec in state["inputs"].items()
        }
        codecs = {
            key: _load(spec["codec"], TargetCodec).from_state(spec["state"]) for key, spec in state["heads"].items()
        }
        columns = {
            **{k: s["columns"] for k, s in state["inputs"].items()},
            **{k: s["column"] for k, s in state["heads"].items()},
        }
        targets = [key for key, spec in state["heads"].items() if spec["target"]]
        return cls(processors, codecs, columns, targets, state["id_column"], drawn=state.get("drawn", ()))

    def save(self, path: str | Path) -> Path:
        return write_text(path, json.dumps(self.state()))

    @classmethod
    def load(cls, path: str | Path) -> ProcessorBundle:
        """A bundle saved with :meth:`save` (or a run folder holding ``bundle.json``)."""
        path = Path(path)
        path = path / FILENAME if path.is_dir() else path
        if not path.is_file():
            raise MissingFileError(
                f"No processor bundle at {path}: `mmlightning fit` writes {FILENAME} in the run's folder"
            )
        return cls.from_state(json.loads(path.read_text(encoding="utf-8")))

    def __repr__(self) -> str:
        inputs = ", ".join(f"{k}: {type(p).__name__}({self.columns[k]})" for k, p in self.processors.items())
        heads = ", ".join(f"{k}: {type(c).__name__}" for k, c in self.codecs.items())
        return f"ProcessorBundle(inputs=[{inputs}], heads=[{heads}])"


def _inputs(processor: Processor, items: list[Any]) -> dict[str, Tensor]:
    """A batch's inputs for one encoder; where the loader skipped them (all cached), only which rows have a value."""
    if any(isinstance(item, str) and item == CACHED for item in items):  # a string: it crossed a worker process
        present = torch.tensor([item is not None for item in items], dtype=torch.bool)
        return {"present": present, CACHED: torch.ones((), dtype=torch.bool)}
    return processor.batch(items)


def _reason(field: str, check: Any) -> str | None:
    try:
        check()
    except (ValueError, OSError, TypeError) as err:
        return OverLimit(f"{field}: {err}") if isinstance(err, TooLargeError) else f"{field}: {err}"
    return None


def _path(obj: Stateful) -> str:
    return f"{type(obj).__module__}:{type(obj).__qualname__}"


def _load(path: str, base: type, again: bool = True) -> Any:
    module, _, name = path.partition(":")
    try:
        found: Any = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as err:
        if again:  # a class renamed since the bundle was saved: the plugins' aliases (mmlightning.renames)
            from mmlightning.plugins import get_registry

            get_registry().import_all()
            return _load(path, base, again=False)
        raise ValueError(
            f"the bundle names {path}, which cannot be imported ({err}); install the plugin that provides it"
        ) from err
    if not (isinstance(found, type) and issubclass(found, base)):
        raise ValueError(f"the bundle names {path}, which is not a {base.__name__}")
    return found


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    """A batch's tensors moved to ``device`` (for using a bundle's batches outside a Trainer)."""
    return batch.to(device)
