"""Entry point: light commands answer without importing Lightning; the rest go to LightningCLI."""

from __future__ import annotations

import difflib
import logging
import os
import sys
from typing import TYPE_CHECKING

from mmlightning import __version__
from mmlightning.errors import MMLightningError
from mmlightning.logs import quiet_upstream, setup_logging

if TYPE_CHECKING:
    from mmlightning.registry import Command

TRAINING = ("fit", "validate", "test", "predict")
USAGE = f"""usage: mmlightning COMMAND [ARGS]    (also: mml)

Multimodal models on PyTorch Lightning, built from plugins. (version {__version__})

training (LightningCLI: YAML configs, --print_config, every Trainer flag; `mmlightning fit --help`):
  fit          train a model:  mmlightning fit --config config.yaml
  validate     evaluate on the val manifest
  test         evaluate on the test manifest
  predict      write one prediction per input row (--predictions_path, default predictions.jsonl)
  auto         no config: point it at a table and a label; roles inferred, a preset trained in a time limit
  fewshot      a classifier from k labelled rows a class: a linear probe, then the image encoder's top fine-tuned
  zeroshot     classify into labels never trained on, with a contrastive run (CLIP's prompts): --labels a,b,c
  generate     draw from prompts with a generation run (text to image): PNGs, a grid; --rerank_with a CLIP run

deployment:
  export       a checkpoint as ONNX, TorchScript or torch.export, checked against PyTorch  [--quantize dynamic-int8]
  prune        magnitude pruning to a sparsity, then a short re-fine-tune on the run's data
  serve        an HTTP service (LitServe) answering raw rows with decoded predictions
  sweep        a hyperparameter search (Optuna): each trial a normal run, the best config written out
  robustness   re-score a split with each modality removed or corrupted at rising severity: table, plot, W&B
  ensemble     score several checkpoints as one (their probabilities averaged), beside each one alone

plugins:
  plugins      list installed plugins, their versions, what they register, and skipped ones  [--json]
  components   list components with their modality and summary  [encoder|fusion|head|datamodule|reader|tuning|role]
  env          this machine's capability (CPU instructions, bf16, threads, GPU) and what precision auto picks

Components are chosen by class name with their own arguments, e.g.
  --model.encoders.image=TimmEncoder --model.encoders.image.model_name=resnet18 --model.fusion=CrossAttentionFusion
Environment: MMLIGHTNING_PLUGINS=a,b loads only those plugins; MMLIGHTNING_STRICT_PLUGINS=1 fails on a broken one.
Errors in your input or config print their message alone and exit with 2; --debug (or MMLIGHTNING_DEBUG=1) adds
the traceback. --verbose (or MMLIGHTNING_VERBOSE=1) shows Lightning's and W&B's own messages, hidden by default.
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("MMLIGHTNING_DEBUG", "").lower() in {"1", "true", "yes"}
    argv = [arg for arg in argv if arg != "--debug"]
    if "--verbose" in argv:  # upstream messages back on (validate/test: Lightning's own table too)
        os.environ["MMLIGHTNING_VERBOSE"] = "1"
        lightning_verbose = ["--verbose=true"] if argv[:1] in (["validate"], ["test"]) else []
        argv = [arg for arg in argv if arg != "--verbose"] + lightning_verbose
    setup_logging()
    quiet_upstream()
    try:
        return _command(argv)
    except MMLightningError as err:  # the framework's own errors say everything: no traceback unless asked
        if debug:
            raise
        print(f"mmlightning: error: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # a full or read-only disk met outside the framework's own writes (a logger, a library)
        from mmlightning.files import disk_error

        said = disk_error(err, err.filename or "a file")
        if debug or said is err:
            raise
        print(f"mmlightning: error: {said}", file=sys.stderr)
        return 1


def _command(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        from mmlightning.plugins import get_registry

        added = get_registry().commands  # the plugins' own commands (register_commands)
        lines = [f"  {name:<12} {c.summary} (plugin {c.plugin})" for name, c in sorted(added.items())]
        print(USAGE + ("\ncommands from plugins:\n" + "\n".join(lines) + "\n" if lines else ""))
        return 0
    if argv[0] in {"-V", "--version"}:
        print(f"mmlightning {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command in {"plugins", "components"}:
        from mmlightning.cli import listing

        try:
            return listing.plugins(rest) if command == "plugins" else listing.components(rest)
        except BrokenPipeError:  # e.g. `mmlightning components | head`
            sys.stderr.close()
            return 0
    if command == "env":
        from mmlightning.cli.env import env

        return env(rest)
    if command in TRAINING:
        return _train(argv)
    found = commands()
    if command in found:
        from mmlightning.plugins import get_registry

        get_registry().import_all()  # the components a checkpoint names
        return found[command](rest)
    close = difflib.get_close_matches(command, [*TRAINING, *found, "plugins", "components", "env"], n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    print(f"mmlightning: unknown command '{command}'.{hint} See `mmlightning --help`.", file=sys.stderr)
    return 2


def commands() -> dict[str, Command]:
    """Every command beside training: the built-in ones (:mod:`mmlightning.cli.commands`), then the plugins'."""
    from mmlightning.cli import commands as builtin
    from mmlightning.plugins import collect_commands, get_registry

    found = {c.name: c for c in collect_commands([builtin.register_commands], "mmlightning", set())}
    return {**found, **get_registry().commands}


def _train(argv: list[str]) -> int:
    from mmlightning.names import check_names
    from mmlightning.plugins import get_registry
    from mmlightning.registry import UnknownComponentError

    registry = get_registry()
    try:
        check_names(argv, registry)
    except (UnknownComponentError, FileNotFoundError, ValueError, TypeError) as err:
        print(f"mmlightning: {err}", file=sys.stderr)
        return 2
    for component, problem in registry.import_all():  # jsonargparse finds components among imported classes
        logging.getLogger("mmlightning").warning(
            "%s %s from plugin %s is unusable: %s", component.kind, component.name, component.plugin, problem
        )
    from mmlightning.training import run

    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
