"""What the training module logs: per-step training losses, evaluation losses and metrics summed over an epoch
(over every process's share of it under DDP), and the heads' tables and charts."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from mmlightning.contracts import Batch, Chart, Head, HeadOutput
from mmlightning.model import Modules
from mmlightning.wandb import log_chart, log_table


class EpochLog(LightningModule):
    """The logging half of :class:`mmlightning.module.MultimodalModule` (a mixin: it needs ``self.heads``)."""

    heads: Any
    metrics: Modules[nn.ModuleDict]
    _loss_sums: dict[str, tuple[Tensor, int]]

    def _log_loss(self, name: str, loss: Tensor, size: int, prog_bar: bool = False) -> None:
        """Training losses are logged per step and per epoch; evaluation losses are summed on the device and
        logged once per epoch (their mean over samples), which spares a ``self.log`` call per loss and step."""
        if name.startswith("train/"):
            self.log(name, loss, batch_size=size, on_step=True, on_epoch=True, prog_bar=prog_bar)
            return
        total, count = self._loss_sums.get(name, (0.0, 0))
        self._loss_sums[name] = (total + loss.detach() * size, count + size)  # type: ignore[assignment]

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
