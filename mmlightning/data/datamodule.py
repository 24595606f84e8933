"""`MultimodalDataModule`: manifests on disk -> validated rows -> batches, knowing no modality."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from mmlightning.bundle import Columns, ProcessorBundle
from mmlightning.data.columns import expand, globbed, names
from mmlightning.data.dataset import ManifestDataset, Rows
from mmlightning.data.loaders import make_loader
from mmlightning.data.manifest import Manifest, Row, read_manifest
from mmlightning.data.shards import (
    ShardDataset,
    ShardManifest,
    check_files,
    is_shards,
    read_shards,
    usable_decoded,
)
from mmlightning.data.validate import check_columns, check_rows, handle_bad_rows, require_columns
from mmlightning.errors import ConfigError
from mmlightning.processing import MediaRoot
from mmlightning.runs import run_dir

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test", "predict")
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


class MultimodalDataModule(LightningDataModule):
    """One manifest per split (JSONL, CSV or Parquet), or several at once; every row is checked before use.

    Args:
        train, val, test, predict: manifest paths; media paths inside are relative to the manifest's folder
            (or to ``data_root``); ``shards://DIR`` reads shards written by ``mmlightning optimize``. A mapping
            of names to paths trains on several datasets at once: each batch comes from one of them, mixed as
            ``sampling`` says; a dataset without a column some encoder reads lacks that modality, and one without
            a head's target column trains only the other heads.
        data_root: the folder media paths are relative to, instead of each manifest's own folder.
        allow_roots: other folders media may come from. A path leading outside the data folder (``../x.png``, an
            absolute path, a link) is otherwise a bad row: a manifest never reads a file you did not point at.
        columns: map an encoder or head key to a differently named column (default: the key itself). An
            encoder may read several columns: a list of names, or a glob (``"feat_*"``), and then gets
            ``{column: value}`` per row (a wide CSV, one column per feature, feeding one tabular encoder).
            A glob never takes the id column, a target column or another encoder's column; ``"!name"`` leaves a
            column out (``["*", "!rating"]``: every other column but ``rating``). The columns a glob picked are
            printed when the run starts.
        id_column: the column that names a sample in predictions (``file:line`` when absent).
        on_bad_rows: ``stop`` (default) raises with a report naming every bad row; ``skip`` leaves them out
            and writes them to ``skipped_rows_file`` (default ``<log dir>/skipped_rows.jsonl``).
        reader: a registered reader's name for another manifest format (``ConllReader`` for CoNLL column
            files); by default the suffix decides, and plugins' readers claim their own suffixes.
        sampling: with several training datasets, ``proportional`` (to their sizes; every row once an epoch),
            ``round_robin`` (in turn) or ``ratios`` (drawn with ``ratios``, a weight per dataset name).
    """

    def __init__(
        self,
        train: str | dict[str, str] | None = None,
        val: str | dict[str, str] | None = None,
        test: str | dict[str, str] | None = None,
        predict: str | dict[str, str] | None = None,
        data_root: str | None = None,
        allow_roots: list[str] | None = None,
        columns: dict[str, Columns] | None = None,
        id_column: str = "id",
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        on_bad_rows: Literal["stop", "skip"] = "stop",
        skipped_rows_file: str | None = None,
        reader: str | None = None,
        sampling: Literal["proportional", "round_robin", "ratios"] = "proportional",
        ratios: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.paths = {"train": train, "val": val, "test": test, "predict": predict}
        self.data_root, self.columns, self.id_column = data_root, dict(columns or {}), id_column
        self.allow_roots = list(allow_roots or [])
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.on_bad_rows, self.skipped_rows_file = on_bad_rows, skipped_rows_file
        self.reader, self.sampling, self.ratios = reader, sampling, ratios
        self.manifests: dict[str, dict[str, Manifest]] = {}  # split -> dataset name ("" for a single path) -> manifest
        self.datasets: dict[str, ManifestDataset | Rows] = {}  # checked once per split and bundle
        self.bundle: ProcessorBundle | None = None
        self._train_rows: dict[str, list[Row]] | None = None  # checked before fitting
        self._told: dict[str, list[str]] = {}  # the columns each glob picked, said once

    def sources(self, split: str) -> dict[str, str]:
        """The split's manifest paths by dataset name (one unnamed path, or the mapping given)."""
        paths = self.paths[split]
        if not paths:
            return {}
        return {"": paths} if isinstance(paths, str) else dict(paths)

    def setup(self, stage: str | None = None) -> None:
        """Read the manifests this stage uses (and the training one, which fitting may need)."""
        splits = STAGE_SPLITS.get(stage or "fit", SPLITS)
        for split in splits:
            if self.paths[split] and split not in self.manifests:
                self._load(split)

    def mix_training(self, paths: dict[str, str], ratios: dict[str, float]) -> None:
        """Train on several manifests drawn with ``ratios`` (rehearsal of an earlier run's data), read again now."""
        self.paths["train"], self.sampling, self.ratios = dict(paths), "ratios", dict(ratios)
        self.datasets.pop("train", None)
        self._train_rows = None
        self._load("train")

    def _load(self, split: str) -> None:
        self.manifests[split] = {name: self._read(path) for name, path in self.sources(split).items()}
        for name, manifest in self.manifests[split].items():
            log.info("%s%s: %d rows from %s", split, f" ({name})" if name else "", len(manifest.rows), manifest.path)

    def _read(self, path: str) -> Manifest:
        if is_shards(path):
            return read_shards(path)
        reader = None
        if self.reader is not None:
            from mmlightning.plugins import get_registry

            reader = get_registry().resolve("reader", self.reader).cls()
        manifest = read_manifest(path, reader)
        if not manifest.rows and not manifest.bad:
            raise ConfigError(f"Manifest {path} is empty: it has no rows. Give a manifest with one row per sample.")
        return manifest

    def set_bundle(self, bundle: ProcessorBundle) -> None:
        """The model's data side: its processors, target codecs and the columns they read (under a Trainer,
        the model's :class:`~mmlightning.binding.DataBinding` hands it over). Column globs are expanded here."""
        specs = {key: spec for key, spec in {**bundle.columns, **self.columns}.items() if key in bundle.columns}
        named = {key: spec for key, spec in specs.items() if not globbed(spec)}
        taken = {self.id_column, *(c for key, spec in named.items() for c in names(spec))}
        bundle.columns = {key: named.get(key) or self._expand(key, spec, taken) for key, spec in specs.items()}
        bundle.id_column = self.id_column
        if self.bundle is not None and self.bundle.fitted and bundle.fitted and self.bundle.state() == bundle.state():
            return
        self.bundle, self.datasets = bundle, {}

    def _expand(self, key: str, spec: Columns, taken: set[str]) -> Columns:
        found = expand(key, spec, self._known_columns(), taken)
        if self._told.get(key) != found:
            self._told[key] = found
            patterns = " ".join(names(spec))
            log.info("'%s' reads %d column(s) (%s): %s", key, len(found), patterns, ", ".join(found))
        return found

    def _known_columns(self) -> list[str]:
        for split in SPLITS:
            if self.paths[split]:
                if split not in self.manifests:
                    self._load(split)
                return list(dict.fromkeys(c for m in self.manifests[split].values() for c in m.columns()))
        return []

    def _bundle(self) -> ProcessorBundle:
        if self.bundle is None:
            raise ConfigError(
                "The model has not learnt from data yet, so there are no processors to read rows with: pass --ckpt_path "
                "with a checkpoint from `mmlightning fit` (in Python: trainer.predict(model, dm, ckpt_path=...)), or train "
                "first; outside a Trainer, mmlightning.binding.bind(model, datamodule) fits and connects them"
            )
        return self.bundle

    def training_values(self) -> dict[str, list[Any]]:
        """What components learn from: per key, the training split's non-missing values, from the rows that
        passed the checks (bad rows stop here with a report, or are skipped and written out)."""
        bundle = self._bundle()
        self._train_rows = {
            name: self._checked_rows(m, "train", lenient=len(self.manifests["train"]) > 1)
            for name, m in self._manifests("train").items()
        }
        rows = [row.values for part in self._train_rows.values() for row in part]
        values = {key: [v for v in (bundle.value(key, r) for r in rows) if v is not None] for key in bundle.processors}
        for key in bundle.targets:
            column = bundle.target_column(key)
            values[key] = [r[column] for r in rows if r.get(column) is not None]
        return values

    def training_targets(self) -> dict[str, dict[str, list[Any]]]:
        """Per encoder key, each target on the rows behind ``training_values``' values for that key (None: none)."""
        if self._train_rows is None:
            self.training_values()
        bundle, checked = self._bundle(), self._train_rows or {}
        rows = [row.values for part in checked.values() for row in part]
        columns = {key: bundle.target_column(key) for key in bundle.targets}
        paired: dict[str, dict[str, list[Any]]] = {}
        for key in bundle.processors:
            kept = [r for r in rows if bundle.value(key, r) is not None]
            paired[key] = {target: [r.get(column) for r in kept] for target, column in columns.items()}
        return paired

    def _manifests(self, split: str) -> dict[str, Manifest]:
        if split not in self.manifests:
            self.setup({"train": "fit", "val": "validate"}.get(split, split))
        if split not in self.manifests:
            raise ConfigError(f"No {split} manifest: pass --data.{split}=PATH")
        return self.manifests[split]

    def dataset(self, split: str) -> ManifestDataset | Rows:
        """The checked rows of one split; bad rows stop here with a report, or are skipped and written out."""
        if split in self.datasets:
            return self.datasets[split]
        manifests = self._manifests(split)
        lenient = len(manifests) > 1
        if lenient:
            self._require_columns(split)
        parts = []
        for name, manifest in manifests.items():
            pre = self._train_rows.get(name) if split == "train" and self._train_rows else None
            rows = pre if pre is not None else self._checked_rows(manifest, split, lenient)
            targets = [] if split == "predict" else self._targets(manifest, lenient)
            kind = ShardDataset if isinstance(manifest, ShardManifest) else ManifestDataset
            part = kind(rows, self._root(manifest), str(manifest.path), self._bundle(), split == "train", targets)
            if isinstance(part, ShardDataset) and isinstance(manifest, ShardManifest):
                part.decoded = usable_decoded(manifest, part.bundle)  # made with this run's processor settings
            parts.append(part)
        self.datasets[split] = parts[0] if len(parts) == 1 else Rows(parts)
        return self.datasets[split]

    def _root(self, manifest: Manifest) -> MediaRoot:
        stored = isinstance(manifest, ShardManifest)  # media in the shards, known by their folder
        return MediaRoot.make(manifest.root if stored else self.data_root or manifest.root, self.allow_roots)

    def check_columns(self, stage: str) -> None:
        """Every column the model reads is in this stage's manifests: refused before a Trainer runs (exit 2)."""
        self.setup(stage)
        for split in STAGE_SPLITS.get(stage, ()):
            manifests = self.manifests.get(split) or {}
            if len(manifests) > 1:
                self._require_columns(split)
            for manifest in manifests.values() if len(manifests) == 1 else ():
                self._check_columns(manifest, split)

    def _check_columns(self, manifest: Manifest, split: str) -> None:
        """The one manifest of a split has every column the model reads (its targets' too, but in ``predict``)."""
        bundle = self._bundle()
        targets = [] if split == "predict" else self._targets(manifest, False)
        check_columns(manifest, [*bundle.read_columns(False, split != "predict"), *map(bundle.target_column, targets)])

    def _targets(self, manifest: Manifest, lenient: bool) -> list[str]:
        """The heads a manifest trains: all of them, or (one of several datasets) those whose column it has."""
        bundle, columns = self._bundle(), manifest.columns()
        return [k for k in bundle.targets if not lenient or bundle.target_column(k) in columns]

    def _checked_rows(self, manifest: Manifest, split: str, lenient: bool) -> list[Row]:
        """``lenient``: one of several datasets, which may lack an input column (that modality is missing)."""
        bundle, root = self._bundle(), self._root(manifest)
        targets = [] if split == "predict" else self._targets(manifest, lenient)
        if not lenient:
            self._check_columns(manifest, split)
        stored = isinstance(manifest, ShardManifest)  # its media were checked when written: targets only
        if isinstance(manifest, ShardManifest):
            check_files(manifest, bundle)
        seen: dict[str, int] = {}

        def check(row: Row) -> list[str]:
            reasons = bundle.check(row.values, root, inputs=[] if stored else None, targets=targets)
            ident = row.values.get(self.id_column)
            if ident is not None and isinstance(ident, (str, int)):
                first = seen.setdefault(str(ident), row.line)
                if first != row.line:
                    reasons.append(f"field '{self.id_column}': duplicate id {ident!r} (also on line {first})")
            return reasons

        good, bad = check_rows(manifest, check, progress=True)
        handle_bad_rows(bad, len(manifest.rows) + len(manifest.bad), self.on_bad_rows, self._skipped_file())
        return good

    def _require_columns(self, split: str) -> None:
        require_columns(split, self.manifests[split].values(), self._bundle())

    def _skipped_file(self) -> Path:
        """Where skipped rows go: ``skipped_rows_file``, or the run's folder (one file per run)."""
        if self.skipped_rows_file:
            return Path(self.skipped_rows_file)
        return (run_dir(self.trainer) if self.trainer else Path(".")) / "skipped_rows.jsonl"

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return make_loader(self, split, shuffle)  # resumable exactly (mmlightning.data.resume)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", shuffle=False) if self.paths["val"] else []  # no val manifest: no validation

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)
