"""Presets: the inferred roles expanded to ordinary ``mmlightning fit`` configs, one per model to train.

- ``fast``: pretrained encoders frozen (their features computed once, kept in memory for every model), up to five
  small fusions (concatenation and late fusion, each with two or three seeds) as the time limit lets start,
  ensembled where that scores better;
- ``balanced``: one model with the text encoder fine-tuned, the image encoder frozen;
- ``best``: the ``balanced`` model, the ``fast`` ones, then five more fine-tuned ones (late fusion, other seeds) as the
  time limit lets start, all ensembled;
- ``fewshot``: for a few labelled rows per class (``fit(k=...)``): the ``fast`` encoders frozen, their features
  concatenated as they are, and one linear classifier on them (logistic regression, trained full-batch); then, where
  a role says how (``Choice.tuned``), the top levels of the pretrained encoders fine-tuned with random augmentation
  and a new head. The fine-tuned model predicts when it finishes.

Every choice lands in the config (written to the run folder), so it can be read, edited and re-run with
``mmlightning fit --config``. The figures each preset reaches are in ``docs/auto.md``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmlightning.auto.infer import Roles, installed_roles
from mmlightning.errors import ConfigError
from mmlightning.roles import PRESETS, Choice, Role

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """One model to train: its name in the leaderboard and its config."""

    name: str
    config: dict[str, Any]
    metric: str  # the validation metric that ranks it, e.g. val/label/acc
    mode: str
    kind: str = ""  # "fine-tuned" or "frozen": the time limit judges whether one can start by its kind's time
    starts_from: str = ""  # the name of an earlier plan whose checkpoint this one starts from (InitFrom)


def key_of(column: str) -> str:
    """A column's name as a component key (letters, digits and underscores)."""
    key = re.sub(r"\W", "_", column).strip("_") or "column"
    return key if not key[0].isdigit() else f"c_{key}"


def components(
    roles: Roles, preset: str, role_list: list[Role] | None = None
) -> tuple[dict[str, Choice], dict[str, Any], Choice]:
    """The encoders (by key, with the columns each reads) and the head the roles get under ``preset``."""
    if preset not in PRESETS:
        raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    by_name = {role.name: role for role in (role_list or installed_roles())}
    asked = "fast" if preset == "fewshot" else preset  # roles know fast, balanced and best
    inputs = roles.inputs()
    groups: dict[str, list[str]] = {}
    for column, role in inputs.items():
        shared = by_name[role].shared
        groups.setdefault(f"shared:{shared}" if shared else f"column:{column}", []).append(column)
    facts = {"roles": inputs, "columns": roles.sample, "target": key_of(roles.label)}
    encoders: dict[str, Choice] = {}
    columns: dict[str, Any] = {}
    for group, names in groups.items():
        choice = by_name[inputs[names[0]]].encoder(names, asked, facts)
        key = choice.key or key_of(names[0])
        while key in encoders or key == key_of(roles.label):
            key += "_"
        encoders[key] = choice
        columns[key] = names if group.startswith("shared:") else names[0]
        frozen = " (frozen, cached)" if choice.frozen else " (trained)"
        for name in names:
            assigned = next(a for a in roles.columns if a.column == name)
            assigned.encoder = f"{key}: {choice.component['class_path']}{frozen}"
    label_role = by_name[roles.label_role]
    head = label_role.head(roles.sample[roles.label], roles.found[roles.label], asked)
    label = next(a for a in roles.columns if a.role == "label")
    label.encoder = f"{key_of(roles.label)}: {head.component['class_path']}"
    return encoders, columns, head


def plans(
    roles: Roles,
    preset: str,
    train: str,
    val: str,
    data_root: str,
    folder: Path,
    seed: int = 0,
    allow_roots: list[str] | None = None,
) -> list[Plan]:
    """The models ``preset`` trains, in order, as many as the time limit lets start: ``fast`` five small fusions
    over the frozen encoders' cached features (concatenation, late fusion, concatenation with another seed, late
    fusion with another seed, concatenation with a third); ``balanced`` one model with the text encoder fine-tuned;
    ``best`` that one, the five of ``fast``, then five more fine-tuned (late fusion and concatenation, other seeds).
    A model starts only while the time limit leaves half of what the quickest model of its kind took.
    Where there are several, their ensemble predicts when it scores better on the tuning rows."""
    encoders, columns, head = components(roles, preset)
    target = key_of(roles.label)
    columns[target] = roles.label
    trains_pretrained = any(
        not c.frozen and "model_path" in c.component.get("init_args", {}) for c in encoders.values()
    )
    frozen = [key for key, choice in encoders.items() if choice.frozen]
    metric = f"val/{target}/{head.metric}"
    media = any(head is not None for c in roles.sample.values() for _, head in c.file_heads())

    def config(name: str, fusion: dict[str, Any], run_seed: int, fine_tune: bool) -> Plan:
        lr = 5e-5 if fine_tune else 1e-3
        tabular_only = all(c.component["class_path"] == "TabularEncoder" for c in encoders.values())
        epochs = 4 if fine_tune else (30 if tabular_only else 10)
        model: dict[str, Any] = {
            "encoders": {k: dict(c.component) for k, c in encoders.items()},
            "fusion": fusion,
            "heads": {target: dict(head.component)},
            "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": lr, "weight_decay": 0.01}},
            "lr_scheduler": {
                "class_path": "mmlightning.optim.WarmupCosine",
                "init_args": {"warmup": 0.1 if fine_tune else 0.05},
            },
        }
        if frozen:
            model["freeze"] = list(frozen)
        data: dict[str, Any] = {
            "train": train,
            "val": val,
            "data_root": data_root,
            "columns": dict(columns),
            "batch_size": 32 if fine_tune else (256 if tabular_only else 64),
            "num_workers": 2 if media else 0,  # decoding media files in 2 processes
            # a row that cannot be read (a missing file) is left out, listed in this file and counted in the log
            "on_bad_rows": "skip",
            "skipped_rows_file": str(folder / "skipped_rows.jsonl"),
        }
        if allow_roots:
            data["allow_roots"] = list(allow_roots)
        if roles.id_column:
            data["id_column"] = roles.id_column
        trainer = {
            "max_epochs": epochs,
            "precision": "auto",
            "log_every_n_steps": 20,
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"monitor": metric, "mode": head.mode, "save_top_k": 1, "filename": "best"},
                }
            ],
        }
        config = {"seed_everything": run_seed, "trainer": trainer, "model": model, "data": data}
        return Plan(name, config, metric, head.mode, "fine-tuned" if fine_tune else "frozen")

    concat = {"class_path": "ConcatFusion", "init_args": {"dim": 256, "dropout": 0.3}}
    late = {"class_path": "LateFusion", "init_args": {"dim": 256, "dropout": 0.3}}
    tagger = head.fusion is not None  # the head brings its own fusion (a tagger reads the tokens themselves)
    if preset == "fewshot":
        probe = fewshot(config("linear probe", concat, seed, fine_tune=False), roles, frozen)
        tunable = {k: c for k, c in encoders.items() if c.frozen and c.tuned}
        return [probe, fewshot_tuned(probe, tunable)] if tunable else [probe]
    if tagger:
        concat = late = head.fusion  # type: ignore[assignment]
    name = "tagger" if tagger else "concat"
    order = [  # fusion, seed offset
        (name, concat, 0),
        ("late", late, 0),
        (name, concat, 1),
        ("late", late, 1),
        (name, concat, 2),
        ("late", late, 2),
    ]

    def series(fine_tune: bool) -> list[Plan]:
        """The fusions of ``order`` in turn, each with its seed (the encoders as they are when called)."""
        tag = ", text fine-tuned" if fine_tune else ""
        return [
            config(f"{kind}{tag}{f', seed {n}' if n else ''}", fusion, seed + n, fine_tune) for kind, fusion, n in order
        ]

    tuned = series(fine_tune=True) if trains_pretrained else []
    if preset == "balanced" and tuned:
        return tuned[:1]
    if trains_pretrained:  # the frozen models: each pretrained encoder kept as it is, its features computed once
        encoders = {
            k: Choice(c.component, frozen=True, key=c.key) if "model_path" in c.component.get("init_args", {}) else c
            for k, c in encoders.items()
        }
        frozen = [k for k, c in encoders.items() if c.frozen]
    quick = series(fine_tune=False)[:5]
    if preset == "balanced" or tagger:  # a tagger's outputs are not averaged: no ensemble to build
        return tuned[:1] + quick[:1] if preset == "best" else quick[:1]
    if preset == "fast":
        return quick
    # best: the first fine-tuned model, the quick frozen ones, then the other fine-tuned ones while time lets them start
    return tuned[:1] + quick + tuned[1:]


def fewshot(plan: Plan, roles: Roles, frozen: list[str]) -> Plan:
    """``plan`` as a few-shot classifier: the encoders' pooled features concatenated without a projection
    (``ConcatFusion(dim=None)``) and one linear layer on them, trained full-batch for 100 epochs (logistic
    regression; with k rows a class the batch is every row). The last epoch is kept: the tuning rows may be the
    k-shot rows themselves, on which an early epoch already scores 100%."""
    if roles.task not in ("binary", "multiclass"):
        raise ConfigError(f"the fewshot preset classifies; the label '{roles.label}' makes the task {roles.task}")
    trained = [k for k in plan.config["model"]["encoders"] if k not in frozen]
    if trained:
        log.warning(
            "fewshot: encoder(s) %s have no pretrained weights to freeze and learn from the k-shot rows alone",
            ", ".join(trained),
        )
    config = plan.config
    model, data, trainer = dict(config["model"]), dict(config["data"]), dict(config["trainer"])
    model["fusion"] = {"class_path": "ConcatFusion", "init_args": {"dim": None, "dropout": 0.0}}
    target = next(iter(model["heads"]))
    head = dict(model["heads"][target])
    head["init_args"] = {**head.get("init_args", {}), "dropout": 0.0, "hidden": None}
    model["heads"] = {target: head}
    model["optimizer"] = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01, "weight_decay": 0.001}}
    model.pop("lr_scheduler", None)
    data["batch_size"] = 1024
    trainer.update(max_epochs=100, check_val_every_n_epoch=25, log_every_n_steps=1, num_sanity_val_steps=0)
    trainer["callbacks"] = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"filename": "final"}}
    ]
    return Plan(
        plan.name, {**config, "model": model, "data": data, "trainer": trainer}, plan.metric, plan.mode, plan.kind
    )


def fewshot_tuned(probe: Plan, tunable: dict[str, Choice], epochs: int = 20) -> Plan:
    """The pretrained encoders fine-tuned on the k-shot rows, after the linear probe: it starts from ``probe``'s
    encoders (one trained from scratch there goes on from where it got) with a new head, and each encoder in
    ``tunable`` trains its top ``tuned_levels`` levels (``GradualUnfreeze``: the top one from the first epoch, one
    more each epoch) as its role's ``tuned`` component, with that component's augmentation; the other encoders stay
    as they were. Batch-norm statistics are kept and the head starts fresh: on CIFAR-10 with k = 20, letting the
    statistics move with 50 rows a batch cost 12 points, and starting from the probe's head (trained to a loss near
    zero, so its logits are large) 5. AdamW at 6e-4 with warm-up and cosine decay, label smoothing 0.1, batches of
    50, ``epochs`` epochs, validated once at the end (the tuning rows are the k-shot rows themselves).
    docs/results.md has the figures."""
    config = probe.config
    model, data, trainer = dict(config["model"]), dict(config["data"]), dict(config["trainer"])
    model["encoders"] = {k: dict(tunable[k].tuned or {}) if k in tunable else c for k, c in model["encoders"].items()}
    still = [k for k in model.get("freeze", []) if k not in tunable]
    model.pop("freeze", None)
    if still:
        model["freeze"] = still
    target = next(iter(model["heads"]))
    head = dict(model["heads"][target])
    model["heads"] = {target: {**head, "init_args": {**head.get("init_args", {}), "label_smoothing": 0.1}}}
    model["tuning"] = [
        {
            "class_path": "GradualUnfreeze",
            "init_args": {"parts": [key], "start": 0, "every": 1, "most": choice.tuned_levels, "keep_norm_stats": True},
        }
        for key, choice in tunable.items()
    ]
    model["optimizer"] = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 6e-4, "weight_decay": 0.01}}
    model["lr_scheduler"] = {"class_path": "mmlightning.optim.WarmupCosine", "init_args": {"warmup": 0.1}}
    data["batch_size"] = 50
    trainer.update(max_epochs=epochs, check_val_every_n_epoch=epochs, log_every_n_steps=1, num_sanity_val_steps=0)
    return Plan(
        "fine-tuned",
        {**config, "model": model, "data": data, "trainer": trainer},
        probe.metric,
        probe.mode,
        "fine-tuned",
        starts_from=probe.name,
    )
