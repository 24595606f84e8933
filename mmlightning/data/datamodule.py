"""`MultimodalDataModule`: manifests on disk -> validated rows -> batches, knowing no modality."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import ConcatDataset, DataLoader

from mmlightning.data.dataset import Collate, Fields, ManifestDataset
from mmlightning.data.manifest import Manifest, read_manifest
from mmlightning.data.sampling import TaskBatchSampler, ratios_in_order
from mmlightning.data.validate import check_rows, handle_bad_rows

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test", "predict")
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


class MultimodalDataModule(LightningDataModule):
    """One manifest per split (JSONL, CSV or Parquet), or several at once; every row is checked before use.

    Args:
        train, val, test, predict: manifest paths; media paths inside are relative to the manifest's folder
            (or to ``data_root``). A mapping of names to paths trains on several datasets at once: each batch
            comes from one of them, mixed as ``sampling`` says; a dataset without a column some encoder reads
            lacks that modality, and one without a head's target column trains only the other heads.
        columns: map an encoder or head key to a differently named column (default: the key itself).
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
        columns: dict[str, str] | None = None,
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
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.on_bad_rows, self.skipped_rows_file = on_bad_rows, skipped_rows_file
        self.reader, self.sampling, self.ratios = reader, sampling, ratios
        self.manifests: dict[str, dict[str, Manifest]] = {}  # split -> dataset name ("" for a single path) -> manifest
        self.datasets: dict[str, ManifestDataset | ConcatDataset] = {}  # checked once per split and model
        self.model: Any = None

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

    def _load(self, split: str) -> None:
        self.manifests[split] = {name: self._read(path) for name, path in self.sources(split).items()}
        for name, manifest in self.manifests[split].items():
            log.info("%s%s: %d rows from %s", split, f" ({name})" if name else "", len(manifest.rows), manifest.path)

    def _read(self, path: str) -> Manifest:
        if self.reader is None:
            return read_manifest(path)
        from mmlightning.plugins import get_registry

        return read_manifest(path, get_registry().resolve("reader", self.reader).cls())

    def column(self, key: str, split: str = "train") -> list[Any]:
        """The non-missing raw values of the column an encoder or head key reads (for fitting), over all datasets."""
        if split not in self.manifests and self.paths[split]:
            self._load(split)
        if split not in self.manifests:
            raise ValueError(f"No {split} manifest: pass --data.{split}=PATH (needed to learn '{key}' from the data)")
        column = self.columns.get(key, key)
        return [row.values[column] for m in self.manifests[split].values() for row in m.rows if row.values.get(column) is not None]

    def attach(self, model: Any) -> None:
        """Use this model's encoders' processors and heads' targets (done for you under a Trainer)."""
        if model is not self.model:
            self.datasets = {}
        self.model = model

    def dataset(self, split: str) -> ManifestDataset | ConcatDataset:
        """The checked rows of one split; bad rows stop here with a report, or are skipped and written out."""
        if split in self.datasets:
            return self.datasets[split]
        model = self.model or (self.trainer.lightning_module if self.trainer else None)
        if model is None:
            raise RuntimeError("The datamodule has no model: call datamodule.attach(model) or run under a Trainer")
        if hasattr(model, "ensure_fitted"):
            model.ensure_fitted(self)
        if split not in self.manifests:
            self.setup({"train": "fit", "val": "validate"}.get(split, split))
        if split not in self.manifests:
            raise ValueError(f"No {split} manifest: pass --data.{split}=PATH")
        manifests = self.manifests[split]
        fields = self._fields(model, with_targets=split != "predict")
        if len(manifests) == 1:
            self.datasets[split] = self._checked(next(iter(manifests.values())), fields, split)
        else:
            self._require_columns(split, fields)
            self.datasets[split] = ConcatDataset([self._checked(m, self._present(fields, m), split, lenient=True) for m in manifests.values()])
        return self.datasets[split]

    def _checked(self, manifest: Manifest, fields: Fields, split: str, lenient: bool = False) -> ManifestDataset:
        """``lenient``: one of several datasets, which may lack an input column (that modality is missing)."""
        root = Path(self.data_root) if self.data_root else manifest.root
        columns = manifest.columns()
        checks_in = {col: (lambda v, p=proc: p.check(v, root)) for col, proc in fields.inputs.values() if not lenient or col in columns}
        checks_out = {col: encode for col, encode in fields.targets.values()}
        good, bad = check_rows(manifest, checks_in, checks_out, progress=True)
        handle_bad_rows(bad, len(manifest.rows) + len(manifest.bad), self.on_bad_rows, self._skipped_file())
        return ManifestDataset(good, root, str(manifest.path), fields, train=split == "train")

    @staticmethod
    def _present(fields: Fields, manifest: Manifest) -> Fields:
        """One of several datasets: it trains the heads whose target column it has (inputs it lacks are missing)."""
        columns = manifest.columns()
        return Fields(fields.inputs, {k: t for k, t in fields.targets.items() if t[0] in columns}, fields.id_column)

    def _require_columns(self, split: str, fields: Fields) -> None:
        """With several datasets, a column no dataset has is a typo, not a missing modality."""
        columns = set().union(*(m.columns() for m in self.manifests[split].values()))
        wanted = [spec[0] for spec in fields.inputs.values()] + [spec[0] for spec in fields.targets.values()]
        unknown = [c for c in wanted if c not in columns]
        if unknown:
            raise ValueError(f"No {split} dataset has column {', '.join(map(repr, unknown))}; their columns are "
                             f"{', '.join(sorted(columns))}. Map names with --data.columns.")

    def _fields(self, model: Any, with_targets: bool) -> Fields:
        inputs = {key: (self.columns.get(key, key), enc.processor()) for key, enc in model.encoders.items()}
        targets = {key: (self.columns.get(key, key), head.encode_target) for key, head in model.heads.items() if head.uses_target and with_targets}
        return Fields(inputs, targets, self.id_column)

    def _target_collators(self) -> dict[str, Any]:
        model = self.model or (self.trainer.lightning_module if self.trainer else None)
        return {key: head.collate_targets for key, head in getattr(model, "heads", {}).items()}

    def _skipped_file(self) -> Path:
        if self.skipped_rows_file:
            return Path(self.skipped_rows_file)
        log_dir = self.trainer.log_dir if self.trainer and self.trainer.log_dir else "."
        return Path(log_dir) / "skipped_rows.jsonl"

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.dataset(split)
        pin = torch.cuda.is_available() if self.pin_memory is None else self.pin_memory
        size = self.batch_size if split == "train" else self.eval_batch_size
        parts = data.datasets if isinstance(data, ConcatDataset) else [data]
        collate = Collate({key: proc for key, (_, proc) in parts[0].fields.inputs.items()}, parts[0].root, self._target_collators())
        common = {"num_workers": self.num_workers, "collate_fn": collate, "pin_memory": pin, "persistent_workers": self.num_workers > 0}
        if len(parts) == 1:
            return DataLoader(data, batch_size=size, shuffle=shuffle, **common)
        names = list(self.sources(split))
        ratios = ratios_in_order(names, self.ratios) if split == "train" and self.sampling == "ratios" else None
        sampler = TaskBatchSampler(batch_size=size, sizes=[len(p) for p in parts], sampling=self.sampling if split == "train" else "proportional", ratios=ratios, shuffle=shuffle)
        return DataLoader(data, batch_sampler=sampler, **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", shuffle=False) if self.paths["val"] else []  # no val manifest: no validation

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)
