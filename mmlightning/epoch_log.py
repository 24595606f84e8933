"""What the training module logs: per-step training losses, every stage's losses and metrics summed over an epoch
(over every process's share of it under DDP), and the heads' tables and charts.

The training epoch's sums and metric states go into each checkpoint (:meth:`EpochLog.epoch_state`), so that a run
resumed mid-epoch logs the same ``train/`` values for that epoch as a run never stopped."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import Metric

from mmlightning.contracts import Batch, Chart, Head, HeadOutput
from mmlightning.model import Modules
from mmlightning.wandb import log_chart, log_table


class EpochLog(LightningModule):
    """The logging half of :class:`mmlightning.module.MultimodalModule` (a mixin: it needs ``self.heads``)."""

    heads: Any
    metrics: Modules[nn.ModuleDict]
    _loss_sums: dict[str, tuple[Tensor, int]]

    def _log_loss(self, name: str, loss: Tensor, size: int, prog_bar: bool = False) -> None:
        """Losses are summed on the device and logged once per epoch (their mean over samples, ``NAME_epoch`` in
        training); training losses are also logged per step (``NAME_step``)."""
        if name.startswith("train/") and (prog_bar or self._logging_step()):
            self.log(f"{name}_step", loss, batch_size=size, prog_bar=prog_bar)
        total, count = self._loss_sums.get(name, (0.0, 0))
        self._loss_sums[name] = (total + loss.detach() * size, count + size)  # type: ignore[assignment]

    def _logging_step(self) -> bool:
        """Whether Lightning sends this step's values to the loggers (every ``log_every_n_steps``). A per-step value
        logged on another step is dropped, after costing Lightning about 0.7 ms to record on a CPU: so the heads'
        step losses are logged on logging steps only (the total, shown in the progress bar, on every step)."""
        connector = getattr(self._trainer, "_logger_connector", None)
        return bool(getattr(connector, "should_update_logs", True))

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
        names += sorted(n for n in self._loss_sums if n.startswith(f"{stage}/") and n not in names)  # extra losses
        sums = [self._loss_sums.pop(name, (zero, 0)) for name in names]
        losses = self._sum_over_processes(
            torch.stack([torch.stack([total.float(), zero + count]) for total, count in sums])
        )
        for name, (total, count) in zip(names, losses):
            if count > 0:
                self.log(
                    name,
                    total / count,
                    prog_bar=name == f"{stage}/loss",
                    sync_dist=True,
                    logger=False if stage == "train" else None,
                )
                if stage == "train":  # logged as NAME_epoch beside the steps' NAME_step; NAME for monitors
                    self.log(f"{name}_epoch", total / count, sync_dist=True)
        seen = [
            any(m.update_count for m in self.metrics[f"{stage}_{key}"].values())
            if f"{stage}_{key}" in self.metrics
            else False
            for key in keys
        ]
        updated = self._sum_over_processes(torch.tensor(seen, dtype=torch.float, device=self.device))
        for key, scored in zip(keys, updated.tolist()):
            if scored:  # else no process scored this head this epoch (its dataset has no such target)
                self._log_head(stage, key, self.heads[key])

    def _log_head(self, stage: str, key: str, head: Head) -> None:
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

    def epoch_state(self) -> dict[str, Any]:
        """The training epoch so far: its loss sums and its metrics' states (plain tensors: loads with
        ``weights_only``)."""
        metrics = {
            name: {
                metric_name: {"count": metric._update_count, "state": {k: getattr(metric, k) for k in metric._defaults}}
                for metric_name, metric in self._metrics(*name.split("_", 1)).items()
                if isinstance(metric, Metric)  # another kind keeps its state to itself: it restarts the epoch
            }
            for name in self.metrics
            if name.startswith("train_")
        }
        losses = {name: [total, count] for name, (total, count) in self._loss_sums.items() if name.startswith("train/")}
        return {"epoch": self.current_epoch, "losses": losses, "metrics": metrics}

    def restore_epoch_state(self, state: dict[str, Any]) -> None:
        """Continue the epoch :meth:`epoch_state` saved (only in that same epoch)."""
        for name, (total, count) in state.get("losses", {}).items():
            self._loss_sums[name] = (torch.as_tensor(total, device=self.device), int(count))
        for name, found in state.get("metrics", {}).items():
            stage, _, key = name.partition("_")
            if key not in self.heads:
                continue
            metrics = self._metrics(stage, key)
            for metric_name, saved in found.items():
                metric = metrics[metric_name]
                for k, value in saved["state"].items():
                    moved = [v.to(self.device) for v in value] if isinstance(value, list) else value.to(self.device)
                    setattr(metric, k, moved)
                metric._update_count, metric._computed = int(saved["count"]), None
