"""`DataBinding`: the one place where a model and its datamodule meet under a Trainer.

The model never reads the datamodule and the datamodule never holds the model: this callback (which
``MultimodalModule.configure_callbacks`` adds) checks the training rows with the model's processors, fits the
model on the rows that passed, and hands the fitted :class:`~mmlightning.bundle.ProcessorBundle` to the
datamodule; after a checkpoint loads it hands over the checkpoint's. The bundle goes into every checkpoint and,
as ``bundle.json``, into the run's folder.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lightning.pytorch import Callback, LightningModule, Trainer

from mmlightning.bundle import FILENAME
from mmlightning.runs import run_dir

if TYPE_CHECKING:
    from mmlightning.bundle import ProcessorBundle
    from mmlightning.data.datamodule import MultimodalDataModule
    from mmlightning.model import MultimodalModel
    from mmlightning.module import MultimodalModule

log = logging.getLogger(__name__)


def bind(model: MultimodalModel | MultimodalModule, datamodule: MultimodalDataModule) -> ProcessorBundle | None:
    """Outside a Trainer: fit ``model`` on ``datamodule``'s checked training rows if it has not learnt from data
    yet, and hand its bundle to ``datamodule``. Returns the bundle."""
    if not model.is_fitted:
        datamodule.set_bundle(model.bundle())  # not fitted yet: it checks the training rows
        model.fit_data(datamodule.training_values(), datamodule.training_targets())
    datamodule.set_bundle(model.bundle())
    return datamodule.bundle


def _datamodule(trainer: Trainer) -> Any:
    datamodule = getattr(trainer, "datamodule", None)
    return datamodule if hasattr(datamodule, "set_bundle") else None


def ready(model: MultimodalModel, trainer: Trainer) -> None:
    """Ready ``model`` (the :class:`~mmlightning.model.MultimodalModel`) for a Trainer run: in ``fit``, each
    fine-tuning strategy's ``setup`` (adapters, freezing, an earlier run's state), then the data side fitted from
    the training rows (heads sized, vocabularies learnt) and the processors handed to the datamodule. The training
    module calls it once per run from ``configure_model``, which the callbacks Tunings and DataBinding call in their
    ``setup``; a callback that copies the model in its own ``setup`` (Lightning's EMAWeightAveraging) calls
    ``configure_model`` first, so it copies the finished model."""
    from mmlightning.parts import strategies

    stage = trainer.state.fn.value if trainer.state.fn is not None else ""
    datamodule = _datamodule(trainer)
    if stage == "fit":
        for strategy in strategies(model):
            strategy.setup(model, trainer)
            if datamodule is not None:
                strategy.training_data(datamodule)
    if datamodule is not None and (stage == "fit" or model.is_fitted):  # else the checkpoint brings it
        bind(model, datamodule)


class DataBinding(Callback):
    """Fits the model's data side from the training split and hands the bundle to the datamodule."""

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        pl_module.configure_model()  # once per run: the data side, after the strategies' setup (ready)

    def on_load_checkpoint(self, trainer: Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        datamodule = _datamodule(trainer)
        if datamodule is not None and pl_module.is_fitted:
            datamodule.set_bundle(pl_module.bundle())

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        datamodule = _datamodule(trainer)
        folder = run_dir(trainer)  # on every rank: it may ask every process
        if datamodule is not None and datamodule.bundle is not None and trainer.is_global_zero:
            path = datamodule.bundle.save(folder / FILENAME)
            log.info("processors saved to %s", path)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: Any) -> None:
        _skip_cached(trainer, pl_module.model, "train", trainer.current_epoch + 1)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: Any) -> None:
        if not trainer.sanity_checking and trainer.state.fn is not None and trainer.state.fn.value == "fit":
            _skip_cached(trainer, pl_module.model, "val", 0)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        datamodule = _datamodule(trainer)
        if datamodule is not None and datamodule.bundle is not None:
            checkpoint.setdefault("mmlightning", {})["bundle"] = datamodule.bundle.state()


def _skip_cached(trainer: Trainer, model: MultimodalModel, split: str, epoch: int) -> None:
    """Once every sample of a split has a cached encoder's features, the split's loader stops processing that
    encoder's inputs (from ``epoch`` on: decoding a video or a picture only to look its features up costs most of a
    cached epoch). An encoder no longer cached (its weights changed) gets its inputs again."""
    datamodule = _datamodule(trainer)
    dataset = getattr(datamodule, "datasets", {}).get(split) if datamodule is not None else None
    cache = model.cache
    if dataset is None or not hasattr(dataset, "cached"):
        return
    stems = {key: f"{key}.stem" for key in model.frozen_stems}
    names = {**{key: key for key in model.frozen}, **stems}
    samples: list[str] | None = None
    for key in dataset.cached.keys:
        store = cache.entries.get(names.get(key, "")) if cache is not None else None
        if store is None or key not in names or model._augments(key):
            dataset.cached.reset(key)
            continue
        if dataset.cached.checked.get(key) == id(store):
            continue  # found complete before, and the same store since: not every row looked up again each epoch
        samples = dataset.sample_keys() if samples is None else samples
        if all(sample in store for sample in samples):
            if key not in dataset.cached.skipped(epoch):
                log.info("%s: every sample's %s features are cached; the loader stops reading its inputs", split, key)
            dataset.cached.skip(key, epoch, store)
