"""Running a config: LightningCLI turns a config (a YAML file, a dict, or command-line arguments) into a Trainer,
a ``MultimodalModule`` and a ``MultimodalDataModule``, and runs ``fit``, ``validate``, ``test`` or ``predict``.

The command line (``mmlightning fit ...``), the Python API (``mmlightning.fit(...)``) and ``sweep`` all run
configs through :func:`run`; :func:`fit` is the Python way, taking a config as a dict and callbacks as objects.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from mmlightning.callbacks import EpochSummary, LastCheckpoint, PredictionWriter, SamplePredictions, results_table
from mmlightning.data.datamodule import MultimodalDataModule
from mmlightning.errors import MissingFileError
from mmlightning.files import write_text
from mmlightning.logs import quiet_upstream
from mmlightning.memory import keep_freed_memory
from mmlightning.module import MultimodalModule
from mmlightning.parser import report
from mmlightning.plugins import plugin_versions
from mmlightning.preflight import NEEDS, check_before_work
from mmlightning.progress import count_epochs_from_one
from mmlightning.runs import job_id, run_dir
from mmlightning.trainer import Trainer as AutoTrainer
from mmlightning.trainer import resolve_precision
from mmlightning.wandb import default_logger_config, keep_media_in

log = logging.getLogger(__name__)


PER_COMMAND = ("results_path", "predictions_path")


class Parser(LightningArgumentParser):
    """LightningCLI's parser, with the one-line errors of :func:`mmlightning.parser.report`, and no abbreviated
    options (``--trainer.max_epoch`` is a typo, not ``max_epochs``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "allow_abbrev": False})

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        from jsonargparse._common import debug_mode_active

        if not self.exit_on_error or debug_mode_active():
            super().error(message, ex)
        report(self, message, ex)


class SaveConfig(SaveConfigCallback):
    """Saves the full config (class paths, plugin versions) beside the run's checkpoints, and in W&B."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.directory = run_dir(
            trainer
        )  # on every rank: without a W&B logger it asks `trainer.log_dir`, a collective call
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Rank zero only: no collective calls in here, or the other ranks wait forever."""
        self.config = self.config.clone()
        for key in PER_COMMAND:  # where this command writes is not part of the run's config
            if key in self.config:
                self.config[key] = None if key == "results_path" else "predictions.jsonl"
        portable_paths(self.config)
        if stage == "fit":  # the run's config, beside its checkpoints, to validate/test/predict with later
            self.directory.mkdir(parents=True, exist_ok=True)
            self.parser.save(
                self.config, self.directory / self.config_filename, skip_none=False, overwrite=True, multifile=False
            )
            log.info("config saved to %s", self.directory / self.config_filename)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
                logger.experiment.config.update({"cli": config, "plugins": plugin_versions()}, allow_val_change=True)


def portable_paths(config: Any) -> None:
    """A logger folder under the working folder is saved relative to it, so a run's config validated from another
    folder writes its logs there, not back into the first one."""
    loggers = config.get("trainer", {}).get("logger")
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        init: Any = getattr(logger, "init_args", None)
        save_dir = getattr(init, "save_dir", None)
        if isinstance(save_dir, str) and Path(save_dir).is_absolute() and Path(save_dir).is_relative_to(Path.cwd()):
            init.save_dir = os.path.relpath(save_dir)


class MultimodalCLI(LightningCLI):
    def _prepare_subcommand_parser(self, klass: Any, subcommand: str, **kwargs: Any) -> Any:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand in ("validate", "test"):
            parser.set_defaults(verbose=False)  # mmlightning prints its own table (--verbose=true: Lightning's too)
        return parser

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument(
            "--predictions_path",
            type=str,
            default="predictions.jsonl",
            help="predict: where to write one JSON line per input row",
        )
        parser.add_argument(
            "--results_path",
            type=str | None,
            default=None,
            help="fit/validate/test: write the final metrics to this JSON file",
        )
        parser.add_argument(
            "--checkpoint_every_n_steps",
            type=int,
            default=200,
            help="fit: also keep checkpoints/last.ckpt, rewritten every N training steps (0: off), to resume a killed run",
        )
        ckpt_help = "with --ckpt_path: use the checkpoint's model settings even where the config gives others"
        parser.add_argument("--checkpoint_model", type=bool, default=False, help=ckpt_help)
        parser.add_argument(
            "--machine",
            type=dict[str, Any] | None,
            default=None,
            help="filled in automatically: the machine the run was made on, and what precision auto chose there",
        )
        parser.add_argument(
            "--plugin_versions",
            type=dict[str, str] | None,
            default=None,
            help="filled in automatically: the plugins this config was made with",
        )

    def _parse_ckpt_path(self) -> None:
        """Before Lightning reads the checkpoint's settings from it: a missing file, a file that is no checkpoint,
        one cut short or one that carries code is refused in one sentence."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in ("best", "last", "hpc", "registry"):
            if not Path(ckpt_path).is_file():
                raise MissingFileError(f"--ckpt_path {ckpt_path}: no such checkpoint (give RUN/checkpoints/NAME.ckpt)")
            from mmlightning.preflight import refuse_another_model
            from mmlightning.trained import read_checkpoint

            refuse_another_model(self.parser, self.config, subcommand, read_checkpoint(ckpt_path))
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        current = plugin_versions()
        saved = config.get("plugin_versions") or {}
        changed = {k: (v, current.get(k, "not installed")) for k, v in saved.items() if current.get(k) != v}
        for name, (was, now) in changed.items():
            log.warning("this config was made with plugin %s %s; installed now: %s", name, was, now)
        config["plugin_versions"] = current
        check_before_work(self.subcommand, config)
        trainer = config["trainer"]
        resolve_precision(trainer, config)
        if not trainer.get("logger") and not Path(trainer.get("default_root_dir") or "runs").name.startswith("run-"):
            # no logger to name the run: a folder of its own, so two runs never share checkpoints or configs
            job = job_id()  # every process of a multi-node job names the same folder
            stamp = f"run-{job}" if job else f"run-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
            trainer["default_root_dir"] = str(Path(trainer.get("default_root_dir") or "runs") / stamp)

    def _run_subcommand(self, subcommand: str) -> None:
        if subcommand in NEEDS:  # the model's columns against the data, before the Trainer starts a run
            self.datamodule.set_bundle(self.model.bundle())
            self.datamodule.check_columns(subcommand)
        super()._run_subcommand(subcommand)

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        trainer: Any = super().instantiate_trainer(**kwargs)
        every = self.config[self.subcommand].get("checkpoint_every_n_steps") if self.subcommand else None
        if self.subcommand == "fit" and every and trainer.checkpoint_callback is not None:
            # besides the end-of-epoch checkpoint: last.ckpt, rewritten every N steps, to resume a killed run from
            trainer.callbacks.append(LastCheckpoint(save_top_k=0, save_last=True, every_n_train_steps=every))
        if self.subcommand == "fit" and trainer.loggers:  # each parameter group's rate, step by step
            trainer.callbacks.append(LearningRateMonitor(logging_interval="step"))
        if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
            trainer.callbacks.append(SamplePredictions())
            keep_media_in(next(lg for lg in trainer.loggers if isinstance(lg, WandbLogger)).save_dir or ".")
        for logger in trainer.loggers:  # Lightning passes anonymous=None, which wandb now warns is unused
            init = getattr(logger, "_wandb_init", None)
            if isinstance(init, dict) and init.get("anonymous") is None:
                init.pop("anonymous", None)
        if self.subcommand == "fit":
            trainer.callbacks.append(EpochSummary())
            count_epochs_from_one(trainer)
        if self.subcommand == "predict":
            trainer.callbacks.append(PredictionWriter(self.config["predict"]["predictions_path"]))
        return trainer

    def after_fit(self) -> None:
        checkpoints: Any = self.trainer.checkpoint_callback
        best = checkpoints.best_model_path if checkpoints else ""
        trainer: Any = self.trainer
        summary = next((c for c in trainer.callbacks if isinstance(c, EpochSummary)), None)
        run = f"{run_dir(self.trainer)}" + (f" (checkpoint {best})" if best else "")
        if self.trainer.is_global_zero:
            log.info("%s", summary.table(run) if summary else f"run saved in {run}")
        self.write_results(
            {"checkpoint": best, "run_dir": str(run_dir(self.trainer)), "epochs": self.trainer.current_epoch}
        )

    def after_validate(self) -> None:
        self.print_results("val")
        self.write_results({})

    def after_test(self) -> None:
        self.print_results("test")
        self.write_results({})

    def print_results(self, stage: str) -> None:
        """Instead of Lightning's list of every number (its ``verbose`` table is off by default here)."""
        if self.trainer.is_global_zero and not self.config[self.subcommand].get("verbose"):
            print(results_table(dict(self.trainer.callback_metrics), stage), flush=True)  # the command's result: stdout

    def write_results(self, extra: dict[str, Any]) -> None:
        path = self.config[self.subcommand].get("results_path")
        if path and self.trainer.is_global_zero:  # under DDP every process gets here; one writes
            metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if v.numel() == 1}
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps({**metrics, **extra}, indent=2, sort_keys=True))
            log.info("metrics written to %s", path)


def run(
    args: list[str] | dict[str, Any], callbacks: Sequence[Callback] = (), raise_errors: bool = False
) -> MultimodalCLI:
    """Run a command: ``args`` as on the command line (``["fit", "--config", "c.yaml"]``) or as a config dict
    (``{"fit": {"model": ..., "data": ..., "trainer": ...}}``). ``callbacks`` join the Trainer's (objects, not
    config: a sweep's trial pruner). ``raise_errors``: a bad config raises instead of printing and exiting."""
    import sys

    quiet_upstream()
    keep_freed_memory()
    defaults: dict[str, Any] = {
        "logger": default_logger_config("runs"),
        "default_root_dir": "runs",
        "enable_model_summary": False,  # mmlightning logs its own table of parameters per part
    }
    if callbacks:
        defaults["callbacks"] = list(callbacks)
    cli = MultimodalCLI(
        MultimodalModule,
        MultimodalDataModule,
        args=None if args == sys.argv[1:] else args,
        parser_class=Parser,
        parser_kwargs={"exit_on_error": not raise_errors},
        save_config_callback=SaveConfig,
        save_config_kwargs={"overwrite": True, "save_to_log_dir": False},
        trainer_class=AutoTrainer,
        trainer_defaults=defaults,
        auto_configure_optimizers=False,
    )
    finish_wandb(cli.trainer)
    return cli


def fit(config: Mapping[str, Any], callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Train from a config dict (the content of a ``fit`` YAML config); returns the final metrics with the run's
    ``run_dir``, best ``checkpoint`` and ``epochs``. Component names are checked first ("did you mean"), and errors
    raise as they are."""
    from mmlightning.logs import setup_logging
    from mmlightning.names import check_config_names
    from mmlightning.plugins import get_registry

    setup_logging()
    registry = get_registry()
    check_config_names(config, registry)
    registry.import_all()  # jsonargparse finds components among imported classes
    cli = run({"fit": dict(config)}, callbacks, raise_errors=True)
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if v.numel() == 1}
    checkpoints: Any = cli.trainer.checkpoint_callback
    return {
        **metrics,
        "checkpoint": checkpoints.best_model_path if checkpoints else "",
        "run_dir": str(run_dir(cli.trainer)),
        "epochs": cli.trainer.current_epoch,
    }


def finish_wandb(trainer: Trainer) -> None:
    """Close the W&B run so its files are complete when the command returns, and say where it is."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            run = logger.experiment
            folder, offline = Path(run.dir).parent, run.settings.mode == "offline"
            run.finish()
            log.info("W&B run saved in %s%s", folder, f"; upload it with `wandb sync {folder}`" if offline else "")
