"""`MultimodalModule`: the LightningModule that trains a :class:`~mmlightning.model.MultimodalModel`.

It holds the model as ``self.model`` and adds only training: the steps, the non-finite guard, metrics and logging
(:mod:`mmlightning.epoch_log`), optimizers, checkpoint hooks and the hand-off to the datamodule.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from mmlightning.binding import DataBinding, ready
from mmlightning.bundle import ProcessorBundle
from mmlightning.cache import FeatureCache
from mmlightning.contracts import Batch, Encoder, Head, HeadOutput
from mmlightning.data.resume import RandomStates
from mmlightning.epoch_log import EpochLog
from mmlightning.errors import NonFiniteLossError
from mmlightning.guards import check_finite_weights, nonfinite_message
from mmlightning.model import FusionFactory, HeadFactory, Modules, MultimodalModel, upgrade_state
from mmlightning.optim import WarmupCosine
from mmlightning.strategy import Tuning
from mmlightning.tuning import runner
from mmlightning.tuning.callback import Tunings
from mmlightning.tuning.shorthand import with_shorthands

__all__ = ["MultimodalModel", "MultimodalModule"]
log = logging.getLogger(__name__)


class MultimodalModule(EpochLog):
    """Trains a multimodal model: one encoder per input field, one fusion, one or more task heads.

    Args:
        encoders: encoder per key; the key is the manifest column it reads.
        fusion: a fusion class (or factory) built with the encoders' dims.
        heads: a head class (or factory) per key, built with the fused dim; several heads = multi-task.
        loss_weights: weight per head key (default 1.0 each); the total loss is the weighted sum.
        optimizer: built with the parameter groups (weight decay kept off norms and biases); AdamW by default.
        lr_scheduler: built with the optimizer, e.g. ``mmlightning.optim.WarmupCosine``.
        modality_dropout: while training, the chance that a sample loses each modality (never all of them),
            so the model learns to cope with missing inputs. Short for a ``ModalityDropout`` strategy, applied last.
        max_nonfinite_steps: training steps whose loss is NaN or infinite to skip (no update) before the run stops
            with an error; 0 (default) stops at the first. A checkpoint is never written from non-finite weights.
        freeze: encoder keys whose weights stay as loaded (no gradient, always in eval mode): a linear probe or
            fusion-only training on pretrained encoders. Short for a ``Freeze`` strategy on them, applied first.
        cache_frozen: compute a frozen encoder's features once per sample and reuse them in later epochs, when its
            processor has no random augmentation in training (``augment=False`` for images); see
            :mod:`mmlightning.cache`. Results are the same either way.
        cache_dir: keep that cache on disk in this folder (e.g. ``runs/feature_cache``) instead of in memory: for
            sets whose features do not fit in memory; a later run with the same encoder and settings reuses it.
        tuning: fine-tuning strategies (:class:`mmlightning.tuning.Tuning`: ``Freeze``, ``LayerwiseLRDecay``,
            ``GradualUnfreeze``, ``LoRA``, ``PromptTuning``, ``Distillation``, ``Adversarial``, ``InitFrom``,
            ``Continual``, or a plugin's), each on named parts of the model, applied in order; see
            ``docs/finetuning.md``.
    """

    def __init__(
        self,
        encoders: dict[str, Encoder],
        fusion: FusionFactory,
        heads: dict[str, HeadFactory],
        loss_weights: dict[str, float] | None = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        modality_dropout: float = 0.0,
        max_nonfinite_steps: int = 0,
        freeze: list[str] | None = None,
        cache_frozen: bool = True,
        cache_dir: str | None = None,
        tuning: list[Tuning] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=None if _from_cli() else ["encoders", "fusion", "heads"])
        strategies = with_shorthands(encoders, freeze, modality_dropout, tuning)
        self.model = MultimodalModel(encoders, fusion, heads, loss_weights, strategies)
        self.model.cache = FeatureCache(cache_dir) if cache_frozen else None
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self.metrics: Modules[Any] = Modules()
        self.max_nonfinite_steps, self._nonfinite_steps = max_nonfinite_steps, 0
        self._last_finite: tuple[int, Tensor] | None = None  # (step, loss) of the last finite training loss
        self._loss_sums: dict[str, tuple[Tensor, int]] = {}  # evaluation losses, summed over the epoch
        self._prepared_for: tuple[Any, Any] | None = None  # (weak trainer, stage) configure_model last readied

    # --- the model's parts, read through (the model is ``self.model``) -------------------------
    @property
    def encoders(self) -> Modules[Encoder]:
        return self.model.encoders

    @property
    def heads(self) -> Modules[Head]:
        return self.model.heads

    @property
    def fusion(self) -> Any:
        return self.model.fusion

    @property
    def tuning(self) -> Any:
        return self.model.tuning

    @property
    def cache(self) -> FeatureCache | None:
        return self.model.cache

    @property
    def is_fitted(self) -> bool:
        return self.model.is_fitted

    def fit_data(self, values: Mapping[str, Any], targets: Mapping[str, Any] | None = None) -> None:
        self.model.fit_data(values, targets)

    def bundle(self, columns: Mapping[str, Any] | None = None, id_column: str = "id") -> ProcessorBundle:
        return self.model.bundle(columns, id_column)

    def forward(self, batch: Batch) -> dict[str, HeadOutput]:
        return self.model(batch)  # type: ignore[no-any-return]

    # --- a Trainer run: readying, checkpoints ---------------------------------------------------
    def configure_callbacks(self) -> list[Any]:
        return [Tunings(), DataBinding(), RandomStates()]

    def configure_model(self) -> None:
        """Ready the model for its Trainer run, once per run (:func:`mmlightning.binding.ready`): before
        Lightning's EMAWeightAveraging copies it, too."""
        trainer = self._trainer
        if trainer is None or trainer.state.fn is None:
            return
        done, fn = self._prepared_for or (None, None)
        if done is not None and done() is trainer and fn == trainer.state.fn:
            return
        self._prepared_for = (weakref.ref(trainer), trainer.state.fn)
        ready(self.model, trainer)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from mmlightning.plugins import plugin_versions

        check_finite_weights(self)
        checkpoint.setdefault("mmlightning", {}).update(
            fitted=self.model.fitted_state(), plugins=plugin_versions(), epoch=self.epoch_state()
        )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for key in ("state_dict", "current_model_state"):  # the latter: EMA keeps the trained weights apart
            if isinstance(checkpoint.get(key), dict):
                checkpoint[key] = upgrade_state(checkpoint[key])
        self.model.load_fitted(checkpoint.get("mmlightning", {}).get("fitted", {}))
        self._resumed_epoch = checkpoint.get("mmlightning", {}).get("epoch")  # restored if the run goes on in it

    def _continue_epoch(self) -> None:
        """A run resumed in the epoch its checkpoint was saved in goes on with that epoch's loss sums and metric
        states."""
        state, self._resumed_epoch = getattr(self, "_resumed_epoch", None), None
        if state and state.get("epoch") == self.current_epoch:
            self.restore_epoch_state(state)

    # --- steps ----------------------------------------------------------------------------------
    def _step(self, batch: Batch, stage: str) -> tuple[Tensor | None, dict[str, HeadOutput]]:
        for head in self.heads.values():
            batch = head.prepare_batch(batch, stage)
        outputs = self.model(batch)
        size = len(batch)
        for key, out in outputs.items():
            if out.loss is not None:
                self._log_loss(f"{stage}/{key}/loss", out.loss, size)
                self._update_metrics(stage, key, out, batch)
        total = self.model.total_loss(outputs)
        if total is not None and stage == "train":
            for name, extra in self.model.losses(batch, outputs, total).items():
                self._log_loss(f"train/{name}", extra, size)
                total = total + extra
        if total is not None:
            self._log_loss(f"{stage}/loss", total, size, prog_bar=True)
        return total, outputs

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor | None:
        total, outputs = self._step(batch, "train")
        if total is None:
            raise ValueError("No head produced a loss on this training batch: does every head have its target column?")
        if bool(torch.isfinite(total)):  # one sync per step: a NaN must never train on silently
            self._last_finite = (self.global_step, total.detach())
            return total
        self._nonfinite_steps += 1
        if self._nonfinite_steps > self.max_nonfinite_steps:
            raise NonFiniteLossError(nonfinite_message(self, total, outputs, batch_idx))
        log.warning(
            "skipped step %d: non-finite loss (%d of %d allowed)",
            self.global_step,
            self._nonfinite_steps,
            self.max_nonfinite_steps,
        )
        return None  # Lightning skips the update

    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, HeadOutput]:
        return self._step(batch, "val")[1]

    def test_step(self, batch: Batch, batch_idx: int) -> dict[str, HeadOutput]:
        return self._step(batch, "test")[1]

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        """``{"ids": [...], "outputs": {head: HeadOutput}}``; ``bundle.decode(outputs, ids)`` makes plain values."""
        return {"ids": batch.ids, "outputs": self.model(batch)}

    def on_train_start(self) -> None:
        self._continue_epoch()  # Lightning calls no on_train_epoch_start for an epoch it resumes in

    def on_train_epoch_start(self) -> None:
        self.model.check_cache(str(self.trainer.precision))

    def on_validation_epoch_start(self) -> None:
        self.model.check_cache(str(self.trainer.precision))

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")
        if self.cache is not None:
            self.cache.flush()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")
        if self.cache is not None:
            self.cache.flush()

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    # --- optimisation -----------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        self.model.tune()
        optimizer = self.optimizer_factory(runner.param_groups(self.model))
        runner.scale_rates(optimizer)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        if isinstance(scheduler, WarmupCosine):
            if scheduler.total_steps is None:
                scheduler.total_steps = int(self.trainer.estimated_stepping_batches)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"}}


def _from_cli() -> bool:
    """Under LightningCLI the hyperparameters are the config (class paths), which ``load_from_checkpoint``
    can rebuild; built in Python they are module objects, which are not saved as hyperparameters."""
    try:
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
    except ImportError:  # a Lightning without it: keep the safe choice
        return False
    return _given_hyperparameters.get() is not None
