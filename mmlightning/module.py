"""`MultimodalModule`: encoders -> fusion -> heads, as a LightningModule."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from mmlightning.binding import DataBinding, ready
from mmlightning.bundle import ProcessorBundle
from mmlightning.cache import FeatureCache
from mmlightning.contracts import Batch, Chart, Encoder, Fusion, Head, HeadContext, HeadOutput
from mmlightning.data.resume import RandomStates
from mmlightning.errors import NonFiniteLossError
from mmlightning.features import Features, drop_modalities
from mmlightning.guards import check_finite_weights, nonfinite_message
from mmlightning.optim import WarmupCosine
from mmlightning.tuning import runner
from mmlightning.tuning.base import Tuning
from mmlightning.tuning.freeze import Freeze
from mmlightning.wandb import log_chart, log_table

log = logging.getLogger(__name__)
FusionFactory = Callable[[dict[str, int]], Fusion]
HeadFactory = Callable[[int], Head]
STAGES = ("train", "val", "test")
M = TypeVar("M", bound=nn.Module)


class MultimodalModule(LightningModule):
    """A multimodal model: one encoder per input field, one fusion, one or more task heads.

    Args:
        encoders: encoder per key; the key is the manifest column it reads.
        fusion: a fusion class (or factory) built with the encoders' dims.
        heads: a head class (or factory) per key, built with the fused dim; several heads = multi-task.
        loss_weights: weight per head key (default 1.0 each); the total loss is the weighted sum.
        optimizer: built with the parameter groups (weight decay kept off norms and biases); AdamW by default.
        lr_scheduler: built with the optimizer, e.g. ``mmlightning.optim.WarmupCosine``.
        modality_dropout: while training, the chance that a sample loses each modality (never all of them),
            so the model learns to cope with missing inputs.
        max_nonfinite_steps: training steps whose loss is NaN or infinite to skip (no update) before the run stops
            with an error; 0 (default) stops at the first. A checkpoint is never written from non-finite weights.
        freeze: encoder keys whose weights stay as loaded (no gradient, always in eval mode): a linear probe or
            fusion-only training on pretrained encoders. Short for a ``Freeze`` strategy on them, applied first.
        tuning: fine-tuning strategies (:class:`mmlightning.tuning.Tuning`: ``Freeze``, ``LayerwiseLRDecay``,
            ``GradualUnfreeze``, ``LoRA``, ``PromptTuning``, ``Distillation``, ``Adversarial``, ``InitFrom``,
            ``Continual``, or a plugin's), each on named parts of the model, applied in order; see
            ``docs/finetuning.md``.
        cache_frozen: compute a frozen encoder's features once per sample and reuse them in later epochs, when its
            processor has no random augmentation in training (``augment=False`` for images); see
            :mod:`mmlightning.cache`. Results are the same either way.
        cache_dir: keep that cache on disk in this folder (e.g. ``runs/feature_cache``) instead of in memory: for
            sets whose features do not fit in memory; a later run with the same encoder and settings reuses it.
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
        if not encoders or not heads:
            raise ValueError(
                "A model needs at least one encoder and one head (--model.encoders.KEY=..., --model.heads.KEY=...)"
            )
        self.encoders: Modules[Encoder] = Modules(dict(sorted(encoders.items())))
        self.fusion = fusion({key: enc.dim for key, enc in self.encoders.items()})
        self.heads: Modules[Head] = Modules({key: make(self.fusion.dim) for key, make in sorted(heads.items())})
        self.fusion_factory, self.head_factories = fusion, dict(heads)  # AuxiliaryHeads builds its paths with them
        dims = {k: enc.dim for k, enc in self.encoders.items()}
        for key, head in self.heads.items():  # the context holds references, not submodules: weights stay the model's
            head.bind(HeadContext(name=key, encoder_dims=dims, fuse=self.fusion, encoders=dict(self.encoders.items())))
        unknown = set(loss_weights or {}) - set(self.heads)
        if unknown:
            raise ValueError(
                f"loss_weights names {sorted(unknown)}, which are not heads; heads are {sorted(self.heads)}"
            )
        self.loss_weights = {key: float((loss_weights or {}).get(key, 1.0)) for key in self.heads}
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        self.optimizer_factory, self.scheduler_factory, self.modality_dropout = (
            optimizer,
            lr_scheduler,
            modality_dropout,
        )
        self.metrics: Modules[nn.ModuleDict] = Modules()
        self.max_nonfinite_steps, self._nonfinite_steps = max_nonfinite_steps, 0
        unknown_frozen = sorted(set(freeze or []) - set(self.encoders))
        if unknown_frozen:
            raise ValueError(
                f"freeze names {unknown_frozen}, which are not encoders; the encoders are {sorted(self.encoders)}"
            )
        shorthand = [Freeze([f"encoders.{key}" for key in sorted(freeze)])] if freeze else []
        self.tuning = nn.ModuleList([*shorthand, *runner.check_strategies(tuning)])
        self.frozen: list[str] = []
        self._tune()
        self.cache = FeatureCache(cache_dir) if cache_frozen else None
        self._random_inputs: dict[str, bool] = {}
        self._last_finite: tuple[int, Tensor] | None = None  # (step, loss) of the last finite training loss
        self._loss_sums: dict[str, tuple[Tensor, int]] = {}  # evaluation losses, summed over the epoch
        self._prepared_for: tuple[Any, Any] | None = None  # (weak trainer, stage) configure_model last readied

    # --- what the data knows ------------------------------------------------------------------
    def components(self) -> dict[str, Encoder | Head]:
        return {
            **{f"encoders.{k}": v for k, v in self.encoders.items()},
            **{f"heads.{k}": v for k, v in self.heads.items()},
        }

    @property
    def is_fitted(self) -> bool:
        return all(c.is_fitted for c in self.components().values())

    def fit_data(self, values: Mapping[str, Sequence[Any]]) -> None:
        """Learn vocabularies, label sets, ... from training values (``key -> values``, as
        ``MultimodalDataModule.training_values`` gives them): the encoders first, then the heads. A component
        given an earlier run's learnt state (``self.earlier``, set by ``InitFrom``/``Continual``) extends it."""
        earlier = getattr(self, "earlier", {})
        for name, component in self.components().items():
            if not component.is_fitted:
                key = name.split(".", 1)[1]
                uses_data = isinstance(component, Encoder) or component.uses_target
                data = list(values.get(key, [])) if uses_data else []
                if earlier.get(name) is not None:
                    component.extend(earlier[name], data)
                    log.info("%s starts from the earlier run's learnt state", name)
                else:
                    component.fit(data)
                    log.info("fitted %s from the training data", name)
        self._tune()

    def bundle(self, columns: Mapping[str, Any] | None = None, id_column: str = "id") -> ProcessorBundle:
        """The data side: each encoder's processor and each head's target codec (see :class:`ProcessorBundle`).
        Before fitting, it can only check rows."""
        processors = {key: enc.processor() for key, enc in self.encoders.items()}
        codecs = {key: head.target() for key, head in self.heads.items()}
        targets = [key for key, head in self.heads.items() if head.uses_target]
        return ProcessorBundle(processors, codecs, columns, targets, id_column, fitted=self.is_fitted)

    def configure_callbacks(self) -> list[Any]:
        return [runner.Tunings(), DataBinding(), RandomStates()]

    def configure_model(self) -> None:
        """Ready the model for its Trainer run, once per run (:func:`mmlightning.binding.ready`): before
        Lightning's EMAWeightAveraging copies it, too."""
        ready(self)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from mmlightning.plugins import plugin_versions

        check_finite_weights(self)
        saved = checkpoint.setdefault("mmlightning", {})
        saved.update(fitted={k: c.fitted for k, c in self.components().items()}, plugins=plugin_versions())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        fitted = checkpoint.get("mmlightning", {}).get("fitted", {})
        for name, component in self.components().items():
            if name in fitted and fitted[name] is not None:
                component.set_fitted(fitted[name])
        if not self.is_fitted:
            missing = ", ".join(k for k, c in self.components().items() if not c.is_fitted)
            raise RuntimeError(
                f"The checkpoint has no learnt state for {missing}: it was not saved by `mmlightning fit` with this "
                "model's config. Pass the config the run saved beside its checkpoints (--config RUN/config.yaml)."
            )
        self._tune()  # adapters and prompts exist before the checkpoint's weights load into them

    # --- the forward pass -------------------------------------------------------------------------
    def forward(self, batch: Batch) -> dict[str, HeadOutput]:
        given = encoded = self.encode(batch)
        if self.training and self.modality_dropout > 0:
            encoded = drop_modalities(encoded, self.modality_dropout)
        for strategy in runner.strategies(self):
            encoded = strategy.transform_features(self, encoded)
        fused = self.fusion(encoded)
        outputs = {key: head(fused, encoded, batch) for key, head in self.heads.items()}
        for strategy in runner.strategies(self):
            outputs = strategy.transform_outputs(self, batch, given, outputs)
        return outputs

    def encode(self, batch: Batch) -> dict[str, Features]:
        """Each encoder's features for a batch (from the cache where an encoder is frozen)."""
        return {key: self._encode(key, encoder, batch) for key, encoder in self.encoders.items()}

    def _encode(self, key: str, encoder: Encoder, batch: Batch) -> Any:
        if key in self.frozen and encoder.training:
            encoder.eval()  # Lightning restores each submodule's own mode, so the model's train() is not enough
        if self.cache is None or key not in self.frozen or not batch.raw or self._augments(key):
            return encoder(batch.inputs[key])
        columns = list(batch.raw)
        samples = [json.dumps([batch.raw[c][i] for c in columns], default=str) + batch.root for i in range(len(batch))]
        return self.cache.encode(key, samples, batch.inputs[key], encoder)

    def _augments(self, key: str) -> bool:
        """Whether the key's processor draws random augmentation in training (its features then change)."""
        if key not in self._random_inputs:
            self._random_inputs[key] = bool(getattr(self.encoders[key].processor(), "random_in_training", True))
        return self._random_inputs[key]

    def train(self, mode: bool = True) -> MultimodalModule:
        super().train(mode)
        if mode and "tuning" in self._modules:
            for module in runner.eval_modules(self):
                module.eval()  # frozen: no dropout, no batch-norm updates
        return self

    def _tune(self) -> None:
        """Apply the fine-tuning strategies once every component is fitted (layers built from the data exist);
        again after a checkpoint's learnt state is restored (each strategy's ``adapt`` is idempotent)."""
        if self.is_fitted:
            runner.apply_all(self)
            self.frozen = runner.frozen_encoders(self)
            self.train(self.training)

    def _check_cache(self) -> None:
        if self.cache is not None:
            for key in self.frozen:
                self.cache.check(key, self.encoders[key])

    def on_train_epoch_start(self) -> None:
        self._check_cache()

    def on_validation_epoch_start(self) -> None:
        self._check_cache()

    def _step(self, batch: Batch, stage: str) -> tuple[Tensor | None, dict[str, HeadOutput]]:
        for head in self.heads.values():
            batch = head.prepare_batch(batch, stage)
        outputs = self(batch)
        losses = {key: out.loss for key, out in outputs.items() if out.loss is not None}
        size = len(batch)
        for key, loss in losses.items():
            self._log_loss(f"{stage}/{key}/loss", loss, size)
            self._update_metrics(stage, key, outputs[key], batch)
        total = sum(self.loss_weights[key] * loss for key, loss in losses.items()) if losses else None
        if total is not None and stage == "train" and len(self.tuning):
            for name, extra in runner.extra_losses(self, batch, outputs, total).items():
                self._log_loss(f"train/{name}", extra, size)
                total = total + extra
        if total is not None:
            self._log_loss(f"{stage}/loss", total, size, prog_bar=True)
        return total, outputs

    def _log_loss(self, name: str, loss: Tensor, size: int, prog_bar: bool = False) -> None:
        """Training losses are logged per step and per epoch; evaluation losses are summed on the device and
        logged once per epoch (their mean over samples), which spares a ``self.log`` call per loss and step."""
        if name.startswith("train/"):
            self.log(name, loss, batch_size=size, on_step=True, on_epoch=True, prog_bar=prog_bar)
            return
        total, count = self._loss_sums.get(name, (0.0, 0))
        self._loss_sums[name] = (total + loss.detach() * size, count + size)

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
        return {"ids": batch.ids, "outputs": self(batch)}

    # --- metrics ----------------------------------------------------------------------------------
    def _metrics(self, stage: str, key: str) -> dict[str, Any]:
        name = f"{stage}_{key}"
        if name not in self.metrics:
            self.metrics[name] = nn.ModuleDict(self.heads[key].make_metrics()).to(self.device)
        return dict(self.metrics[name].items())

    def _update_metrics(self, stage: str, key: str, output: HeadOutput, batch: Batch) -> None:
        metrics = self._metrics(stage, key)
        inputs = self.heads[key].metric_inputs(output, batch) if len(metrics) else None
        if inputs is not None:  # None: nothing to score on this batch (a generation head while training)
            for metric in metrics.values():
                metric.update(*inputs)

    def _log_epoch_metrics(self, stage: str) -> None:
        """Log the epoch's losses and metrics over every process's share of it (DDP), the same keys everywhere."""
        keys, zero = list(self.heads), torch.zeros((), device=self.device)
        names = [f"{stage}/{key}/loss" for key in keys] + [f"{stage}/loss"]
        sums = [self._loss_sums.pop(name, (zero, 0)) for name in names]
        losses = self._sum_over_processes(
            torch.stack([torch.stack([total.float(), zero + count]) for total, count in sums])
        )
        for name, (total, count) in zip(names, losses):
            if count > 0:
                self.log(name, total / count, prog_bar=name == f"{stage}/loss", sync_dist=True)
        seen = [
            any(m.update_count for m in self.metrics[f"{stage}_{key}"].values())
            if f"{stage}_{key}" in self.metrics
            else False
            for key in keys
        ]
        updated = self._sum_over_processes(torch.tensor(seen, dtype=torch.float, device=self.device))
        for key, scored in zip(keys, updated.tolist()):
            if not scored:  # no process scored this head this epoch (its dataset has no such target)
                continue
            head = self.heads[key]
            for metric_name, metric in self._metrics(stage, key).items():
                computed = metric.compute()  # torchmetrics gathers every process's state
                for label, value in head.metric_values(metric_name, computed).items():
                    self.log(f"{stage}/{key}/{label}", value, sync_dist=True)  # equal everywhere already: no warning
                if self._trainer is not None and not self.trainer.sanity_checking:
                    for table, shown in head.metric_tables(metric_name, computed).items():
                        if isinstance(shown, Chart):
                            log_chart(self.trainer, f"{stage}/{key}/{table}", shown)
                        else:
                            log_table(self.trainer, f"{stage}/{key}/{table}", *shown)
                metric.reset()

    def _sum_over_processes(self, tensor: Tensor) -> Tensor:
        return self.trainer.strategy.reduce(tensor, reduce_op="sum") if self._trainer is not None else tensor

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
        self._tune()
        optimizer = self.optimizer_factory(runner.param_groups(self))
        runner.scale_rates(optimizer)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        if isinstance(scheduler, WarmupCosine):
            if scheduler.total_steps is None:
                scheduler.total_steps = int(self.trainer.estimated_stepping_batches)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"}}


class Modules(nn.ModuleDict, Generic[M]):
    """A ``ModuleDict`` whose values type checkers know (encoders, heads)."""

    if TYPE_CHECKING:

        def __getitem__(self, key: str) -> M: ...
        def items(self) -> Iterable[tuple[str, M]]: ...  # type: ignore[override]
        def values(self) -> Iterable[M]: ...  # type: ignore[override]


def _from_cli() -> bool:
    """Under LightningCLI the hyperparameters are the config (class paths), which ``load_from_checkpoint``
    can rebuild; built in Python they are module objects, which are not saved as hyperparameters."""
    try:
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
    except ImportError:  # a Lightning without it: keep the safe choice
        return False
    return _given_hyperparameters.get() is not None
