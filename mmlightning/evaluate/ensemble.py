"""Score several trained models as one: each head averages its members' outputs (``Head.combine``: class
probabilities for classification), on a manifest, beside each member's own scores."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mmlightning.errors import ConfigError
from mmlightning.evaluate.scoring import Scores, headline
from mmlightning.files import write_text
from mmlightning.trained import check_examples, example_rows, load_run

log = logging.getLogger(__name__)


def ensemble(
    ckpt_paths: Sequence[str | Path],
    rows: str | None = None,
    out: str | Path | None = None,
    batch_size: int = 64,
    precision: str | None = None,
    predictions_path: str | Path | None = None,
    root: str | Path | None = None,
) -> dict[str, Any]:
    """Each head's metrics for the ensemble of ``ckpt_paths`` and for each member, over ``rows`` (a manifest;
    default the first run's val manifest), in one pass. Every member reads the rows through its own processors,
    so members may differ in encoders, input sizes or fusion; the heads they share must have the same labels.

    ``precision``: ``bf16-mixed`` runs the members under bf16 autocast, ``32`` in float32, ``auto`` the one this CPU
    computes fastest; default: the first run's ``trainer.precision``. Writes ``ensemble.json`` to ``out`` when
    given, and one JSON line per row (the ensemble's decoded predictions) to ``predictions_path`` when given.
    ``root``: the folder the rows' media paths are relative to (default: the manifest's folder).
    Returns the report."""

    if len(ckpt_paths) < 2:
        raise ConfigError(
            f"an ensemble needs two or more checkpoints, got {len(ckpt_paths)}: --ckpt_path A.ckpt B.ckpt"
        )
    runs = [load_run(path) for path in ckpt_paths]
    members = [(run.model, run.bundle) for run in runs]
    heads = shared_heads([model for model, _ in members], ckpt_paths)
    found, manifest_root = example_rows(runs[0], rows, count=10**9)
    root = Path(root) if root is not None else manifest_root
    manifest = rows or "the first run's val manifest"
    for (_, bundle), path in zip(members, ckpt_paths):
        check_examples(bundle, found, root, manifest, f" (for the model of {path})")
    check_targets(members[0][1], heads, found, manifest)
    chosen = precision if precision is not None else run_precision(runs[0].config)
    if chosen == "auto":
        from mmlightning.machine import choose_precision

        chosen = choose_precision("cpu")[0]
    autocast = bf16(chosen)
    first = members[0][0]
    scores = [Scores({key: model.heads[key] for key in heads}) for model, _ in members]
    combined = Scores({key: first.heads[key] for key in heads})
    lines: list[str] = []
    with torch.no_grad(), tqdm(total=len(found), desc="ensemble", unit="row") as bar:
        for start in range(0, len(found), batch_size):
            chunk = found[start : start + batch_size]
            outputs, batches = [], []
            for (model, bundle), score in zip(members, scores):
                items = [bundle.item(row, root, ident=str(start + i)) for i, row in enumerate(chunk)]
                batches.append(bundle.collate(items, root))
                with autocast():
                    outputs.append(model(batches[-1]))
                score.update(outputs[-1], batches[-1])
            batch = batches[0]  # the first member's: its heads combine, its codecs decode
            merged = {key: first.heads[key].combine([output[key] for output in outputs]) for key in heads}
            combined.update(merged, batch)
            if predictions_path is not None:
                lines += [json.dumps(p, default=str) for p in members[0][1].decode(merged, batch.ids)]
            bar.update(len(chunk))
    report = {
        "checkpoints": [str(Path(p).resolve()) for p in ckpt_paths],
        "rows": len(found),
        "precision": chosen,
        "ensemble": combined.values(),
        "members": [score.values() for score in scores],
    }
    if predictions_path is not None:
        Path(predictions_path).parent.mkdir(parents=True, exist_ok=True)
        write_text(predictions_path, "".join(line + "\n" for line in lines))
        report["predictions"] = str(predictions_path)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        write_text(Path(out) / "ensemble.json", json.dumps(report, indent=2))
        report["folder"] = str(out)
    return report


def shared_heads(models: Sequence[Any], paths: Sequence[str | Path]) -> list[str]:
    """The heads every member has, each able to combine outputs and fitted alike (the same labels) everywhere."""
    keys = [key for key in models[0].heads if all(key in model.heads for model in models)]
    if not keys:
        named = "; ".join(f"{path}: {sorted(model.heads)}" for model, path in zip(models, paths))
        raise ConfigError(f"the checkpoints share no head to ensemble ({named}); members must predict the same task")
    for key in keys:
        head = models[0].heads[key]
        if not head.supports_combine:
            raise ConfigError(
                f"head '{key}' ({type(head).__name__}) does not say how to combine several models' outputs "
                "(Head.combine); ensembles work with ClassificationHead, MultiLabelHead and RegressionHead"
            )
        for model, path in zip(models[1:], paths[1:]):
            if model.heads[key].fitted != head.fitted:
                raise ConfigError(
                    f"head '{key}' of {path} was fitted to other labels or values than in {paths[0]} "
                    f"({_short(model.heads[key].fitted)} against {_short(head.fitted)}): train the members on the same data"
                )
    return keys


def check_targets(bundle: Any, heads: Sequence[str], rows: list[dict[str, Any]], manifest: str) -> None:
    """Every row has each head's target, or none does (predictions only): a batch is scored on the targets all
    its rows have, so a few rows without one would leave their batch unscored, unseen."""
    for key in heads:
        column = bundle.target_column(key)
        missing = [i + 1 for i, row in enumerate(rows) if row.get(column) is None]
        if 0 < len(missing) < len(rows):
            raise ConfigError(
                f"{manifest}: {len(missing)} of {len(rows)} rows have no '{column}' (the first: row {missing[0]}); "
                "an ensemble scores every row or, with no targets at all, only predicts: give a manifest with "
                f"'{column}' on every row, or on none"
            )


def run_precision(config: Mapping[str, Any]) -> str:
    """The precision a run trained at (its config's ``trainer.precision``; 32 when it does not say)."""
    return str((config.get("trainer") or {}).get("precision") or "32")


def bf16(precision: str) -> Any:
    """A context factory: bf16 autocast for ``bf16-mixed``/``bf16``/``bf16-true``, none for ``32``."""
    if precision.startswith("bf16"):
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    if precision not in ("32", "32-true"):
        raise ConfigError(f"ensemble --precision: '{precision}' is not supported here; choose 32, bf16-mixed or auto")
    return contextlib.nullcontext


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def rows_of(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows: a row per head and score, a column per member and one for the ensemble."""
    columns = ["head", "score", *(f"member {i + 1}" for i in range(len(report["members"]))), "ensemble"]
    rows = []
    for key, values in report["ensemble"].items():
        for name, value in headline(values).items():
            each = [member.get(key, {}).get(name, float("nan")) for member in report["members"]]
            rows.append([key, name, *each, value])
    return columns, rows


def table(report: dict[str, Any]) -> str:
    """The report as a Markdown table (:func:`rows_of`)."""
    columns, rows = rows_of(report)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join([*row[:2], *(f"{v:.4f}" for v in row[2:])]) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def log_wandb(report: dict[str, Any]) -> str:
    """The scores (``ensemble/HEAD/SCORE``, ``member1/HEAD/SCORE``, ...) and the table as a W&B run of their own in
    the report's folder (offline unless WANDB_MODE says otherwise); returns the run's folder."""
    from mmlightning.wandb import log_report

    columns, rows = rows_of(report)
    values: dict[str, Any] = {"ensemble/table": (columns, rows)}
    for row in rows:
        for column, value in zip(columns[2:], row[2:]):
            values[f"{column.replace(' ', '')}/{row[0]}/{row[1]}"] = value
    config = {k: report[k] for k in ("checkpoints", "rows", "precision")}
    return log_report(report["folder"], "ensemble", f"ensemble-{len(report['members'])}", config, values)
