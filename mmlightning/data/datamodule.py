"""`MultimodalDataModule`: manifests on disk -> validated rows -> batches, knowing no modality."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from mmlightning.data.dataset import Collate, Fields, ManifestDataset
from mmlightning.data.manifest import Manifest, read_manifest
from mmlightning.data.validate import check_rows, handle_bad_rows

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test", "predict")
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


class MultimodalDataModule(LightningDataModule):
    """One manifest per split (JSONL, CSV or Parquet); every row is checked before it is used.

    Args:
        train, val, test, predict: manifest paths; media paths inside are relative to the manifest's folder
            (or to ``data_root``).
        columns: map an encoder or head key to a differently named column (default: the key itself).
        id_column: the column that names a sample in predictions (``file:line`` when absent).
        on_bad_rows: ``stop`` (default) raises with a report naming every bad row; ``skip`` leaves them out
            and writes them to ``skipped_rows_file`` (default ``<log dir>/skipped_rows.jsonl``).
        reader: a registered reader's name for another manifest format (``ConllReader`` for CoNLL column
            files); by default the suffix decides, and plugins' readers claim their own suffixes.
    """

    def __init__(
        self,
        train: str | None = None,
        val: str | None = None,
        test: str | None = None,
        predict: str | None = None,
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
    ) -> None:
        super().__init__()
        self.paths = {"train": train, "val": val, "test": test, "predict": predict}
        self.data_root, self.columns, self.id_column = data_root, dict(columns or {}), id_column
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.on_bad_rows, self.skipped_rows_file = on_bad_rows, skipped_rows_file
        self.reader = reader
        self.manifests: dict[str, Manifest] = {}
        self.datasets: dict[str, ManifestDataset] = {}  # checked once per split and model
        self.model: Any = None

    def setup(self, stage: str | None = None) -> None:
        """Read the manifests this stage uses (and the training one, which fitting may need)."""
        splits = STAGE_SPLITS.get(stage or "fit", SPLITS)
        for split in splits:
            if self.paths[split] and split not in self.manifests:
                self.manifests[split] = self._read(self.paths[split])
                log.info("%s: %d rows from %s", split, len(self.manifests[split].rows), self.paths[split])

    def _read(self, path: str) -> Manifest:
        if self.reader is None:
            return read_manifest(path)
        from mmlightning.plugins import get_registry

        return read_manifest(path, get_registry().resolve("reader", self.reader).cls())

    def column(self, key: str, split: str = "train") -> list[Any]:
        """The non-missing raw values of the column an encoder or head key reads (for fitting)."""
        if split not in self.manifests and self.paths[split]:
            self.manifests[split] = self._read(self.paths[split])
        if split not in self.manifests:
            raise ValueError(f"No {split} manifest: pass --data.{split}=PATH (needed to learn '{key}' from the data)")
        column = self.columns.get(key, key)
        return [row.values[column] for row in self.manifests[split].rows if row.values.get(column) is not None]

    def attach(self, model: Any) -> None:
        """Use this model's encoders' processors and heads' targets (done for you under a Trainer)."""
        if model is not self.model:
            self.datasets = {}
        self.model = model

    def dataset(self, split: str) -> ManifestDataset:
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
        manifest = self.manifests[split]
        fields = self._fields(model, with_targets=split != "predict")
        root = Path(self.data_root) if self.data_root else manifest.root
        checks_in = {col: (lambda v, p=proc: p.check(v, root)) for col, proc in fields.inputs.values()}
        checks_out = {col: encode for col, encode in fields.targets.values()}
        good, bad = check_rows(manifest, checks_in, checks_out, progress=True)
        handle_bad_rows(bad, len(manifest.rows) + len(manifest.bad), self.on_bad_rows, self._skipped_file())
        self.datasets[split] = ManifestDataset(good, root, str(manifest.path), fields, train=split == "train")
        return self.datasets[split]

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
        collate = Collate({key: proc for key, (_, proc) in data.fields.inputs.items()}, data.root, self._target_collators())
        return DataLoader(data, batch_size=size, shuffle=shuffle, num_workers=self.num_workers, collate_fn=collate,
                          pin_memory=pin, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", shuffle=False) if self.paths["val"] else []  # no val manifest: no validation

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)
