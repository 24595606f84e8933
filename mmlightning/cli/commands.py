"""The built-in commands beside training, registered through the plugin hook ``register_commands`` like any
plugin's (always loaded: ``MMLIGHTNING_PLUGINS`` does not turn them off)."""

from __future__ import annotations

from mmlightning.hookspecs import RegisterCommand, hookimpl

COMMANDS = {
    "export": "a checkpoint as ONNX, TorchScript or torch.export, checked against PyTorch  [--quantize dynamic-int8]",
    "prune": "magnitude pruning to a sparsity, then a short re-fine-tune on the run's data",
    "serve": "an HTTP service (LitServe) answering raw rows with decoded predictions",
    "sweep": "a hyperparameter search (Optuna): each trial a normal run, the best config written out",
    "robustness": "re-score a split with each modality removed or corrupted at rising severity: table, plot, W&B",
    "ensemble": "score several checkpoints as one (their probabilities averaged), beside each one alone",
}
OWN = {
    "auto": (
        "mmlightning.cli.auto:auto_main",
        "point it at a table and a label: roles inferred, a preset trained in a time limit, a leaderboard",
    ),
    "fewshot": (
        "mmlightning.cli.auto:fewshot_main",
        "a classifier from k labelled rows a class: frozen pretrained features, logistic regression",
    ),
    "generate": (
        "mmlightning.cli.generate:generate_main",
        "draw from prompts with a generation run (text to image): PNGs, a grid, generated.jsonl; CLIP reranking",
    ),
    "optimize": (
        "mmlightning.cli.optimize:optimize_main",
        "a config's splits as LitData shards (rows checked, files packed) to stream with --data.train=shards://DIR",
    ),
    "zeroshot": (
        "mmlightning.cli.zeroshot:zeroshot_main",
        "classify rows into labels never trained on, with a contrastive run's other tower (CLIP's prompts)",
    ),
}


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    for name, summary in COMMANDS.items():
        register(name, f"mmlightning.cli.deploy:{name}_main", summary)
    for name, (target, summary) in OWN.items():
        register(name, target, summary)
