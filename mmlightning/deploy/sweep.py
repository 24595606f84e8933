"""Hyperparameter search with Optuna: each trial is a normal ``mmlightning fit`` (its own folder, checkpoints and
W&B run) of a config with some keys drawn from a search space; bad trials are stopped early (median pruning on the
metric after each validation), and the best config is written out.

    mmlightning sweep --config config.yaml --space space.yaml --trials 20 --metric val/label/acc --direction maximize

``space.yaml`` maps config keys (dotted, as on the command line) to what to draw:

    model.optimizer.init_args.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
    model.fusion.init_args.dim: {choices: [64, 128, 256]}
    trainer.max_epochs: {low: 2, high: 6, type: int}

The sweep folder (``--out``, default ``runs/sweep-DATE-TIME``) gets ``trial-N/`` per trial, ``trials.json`` and
``best.yaml`` (the config with the best trial's values: train it with ``mmlightning fit --config best.yaml``).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import Callback, LightningModule

from mmlightning.errors import ConfigError
from mmlightning.files import write_text

log = logging.getLogger(__name__)


class TrialPruning(Callback):
    """Reports the sweep's metric to the Optuna trial after each validation, and stops a trial that is doing
    worse than the median of earlier trials at the same epoch."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial, self.metric = trial, metric

    def on_validation_end(self, trainer: Any, pl_module: LightningModule) -> None:
        trial, metric = self.trial, self.metric
        if trainer.sanity_checking or metric not in trainer.callback_metrics:
            return
        trial.report(float(trainer.callback_metrics[metric]), step=trainer.current_epoch)
        if trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"epoch {trainer.current_epoch + 1}: below the median of earlier trials")


def read_space(path_or_text: str) -> dict[str, dict[str, Any]]:
    """A search space from a YAML/JSON file or inline text; each entry checked."""
    text = Path(path_or_text).read_text() if Path(path_or_text).is_file() else path_or_text
    space = yaml.safe_load(text)
    if not isinstance(space, Mapping) or not space:
        raise ConfigError(
            f"--space must map config keys to ranges, e.g. 'model.optimizer.init_args.lr: {{low: 1e-4, high: 1e-2, log: true}}'; got {space!r}"
        )
    for key, spec in space.items():
        ok = isinstance(spec, Mapping) and (
            isinstance(spec.get("choices"), list) or ("low" in spec and "high" in spec and spec["low"] < spec["high"])
        )
        if not ok:
            raise ConfigError(
                f"--space: '{key}' needs {{choices: [...]}} or {{low: A, high: B}} with A < B; got {spec!r}"
            )
    return dict(space)


def suggest(trial: Any, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    values = {}
    for key, spec in space.items():
        if "choices" in spec:
            values[key] = trial.suggest_categorical(key, spec["choices"])
        elif spec.get("type") == "int" or (
            isinstance(spec["low"], int) and isinstance(spec["high"], int) and not spec.get("log")
        ):
            values[key] = trial.suggest_int(key, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            values[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return values


def with_values(config: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The config with dotted keys set (``model.fusion.init_args.dim``), creating the nested mappings needed."""
    out = copy.deepcopy(dict(config))
    for dotted, value in values.items():
        node = out
        *parents, last = dotted.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {"class_path": node[part]} if isinstance(node.get(part), str) else {}
            node = node[part]
        node[last] = value
    return out


def sweep(
    config: str | Path,
    space: Mapping[str, Mapping[str, Any]],
    trials: int,
    metric: str = "val/loss",
    direction: str = "minimize",
    out: str | Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    import optuna

    from mmlightning.training import fit

    base = yaml.safe_load(Path(config).read_text())
    folder = Path(out or f"runs/sweep-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize" if direction == "maximize" else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
    )
    records: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        values = suggest(trial, space)
        run = folder / f"trial-{trial.number}"
        trial_config = with_values(base, values)
        trainer = trial_config.setdefault("trainer", {})
        trainer["default_root_dir"] = str(run)
        if trainer.get("logger", True) is not False and not isinstance(trainer.get("logger"), (dict, list)):
            from mmlightning.wandb import default_logger_config

            logger = default_logger_config(str(run))
            logger["init_args"]["name"] = f"{folder.name}-trial-{trial.number}"
            trainer["logger"] = logger
        run.mkdir(parents=True, exist_ok=True)
        (run / "trial.yaml").write_text(yaml.safe_dump(trial_config))  # what the trial ran, for the record
        record: dict[str, Any] = {"trial": trial.number, "values": values, "folder": str(run)}
        records.append(record)
        log.info("trial %d/%d: %s", trial.number + 1, trials, ", ".join(f"{k}={v}" for k, v in values.items()))
        try:
            found = fit(trial_config, callbacks=[TrialPruning(trial, metric)])
        except optuna.TrialPruned:
            record["state"] = "pruned"
            _finish_wandb()
            raise
        if metric not in found:
            raise ConfigError(f"--metric {metric} is not among the run's final metrics: {sorted(found)}")
        record.update(state="complete", value=found[metric], checkpoint=found.get("checkpoint"))
        return float(found[metric])

    try:
        study.optimize(objective, n_trials=trials, catch=())
    finally:
        write_text(folder / "trials.json", json.dumps(records, indent=2, default=str))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ConfigError(f"no trial of the sweep in {folder} finished; see its trial folders")
    best = study.best_trial
    best_config = with_values(base, suggest(optuna.trial.FixedTrial(best.params), space))
    write_text(folder / "best.yaml", yaml.safe_dump(best_config))
    return {"folder": str(folder), "best": best.number, "value": best.value, "params": best.params, "trials": records}


def _finish_wandb() -> None:
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=0)
    except ImportError:
        pass
