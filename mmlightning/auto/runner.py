"""Training a preset's models one by one within a deadline, and scoring their ensemble on the tuning rows."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mmlightning.auto import board
from mmlightning.auto.presets import Plan, key_of

log = logging.getLogger(__name__)


def train_one(
    plan: Plan, number: int, folder: Path, done: Sequence[dict[str, Any]], deadline: float, start: float, cache: Any
) -> dict[str, Any]:
    """Write ``plan``'s config to ``folder/configs`` and train it, unless less than half of the quickest model in
    ``done`` of the plan's kind (of any kind, when none has run) is left before ``deadline``, or the model it
    starts from (``plan.starts_from``, loaded with ``InitFrom``) has no checkpoint. Returns its
    leaderboard entry: score, best epoch, seconds, checkpoint (relative to ``folder``), or a note saying why it has
    none."""
    from mmlightning.auto.deadline import Deadline, SharedFeatures
    from mmlightning.training import fit as fit_config
    from mmlightning.wandb import default_logger_config

    config = dict(plan.config)
    config["trainer"] = {**config["trainer"], "logger": default_logger_config(str(folder.resolve() / "models"))}
    source = next((m for m in done if m.get("name") == plan.starts_from), {}) if plan.starts_from else {}
    if source.get("checkpoint"):  # the encoders as the earlier model left them (one trained there goes on); new heads
        start_from = {"checkpoint": str(folder.resolve() / source["checkpoint"]), "parts": ["encoders", "fusion"]}
        tuning = [*config["model"].get("tuning", []), {"class_path": "InitFrom", "init_args": start_from}]
        config["model"] = {**config["model"], "tuning": tuning}
    configs = folder / "configs"
    configs.mkdir(exist_ok=True)
    name = f"{number + 1}-{key_of(plan.name)}"
    (configs / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    entry: dict[str, Any] = {
        "name": plan.name,
        "metric": plan.metric,
        "mode": plan.mode,
        "config": f"configs/{name}.yaml",
        "kind": plan.kind,
    }
    if plan.starts_from and not source.get("checkpoint"):
        entry["note"] = f"not started: '{plan.starts_from}', which it starts from, has no checkpoint"
        log.info("%s: %s", plan.name, entry["note"])
        return entry
    left = deadline - time.monotonic()
    timed = [m["seconds"] for m in done if m.get("seconds")]
    timed = [m["seconds"] for m in done if m.get("seconds") and m.get("kind") == plan.kind] or timed
    if timed and left < 0.5 * min(timed):
        entry["note"] = f"not started: {max(0, left):.0f} s left of the time limit"
        log.info("%s: %s", plan.name, entry["note"])
        return entry
    shown = f"{left:.0f} s left" if left != math.inf else "no time limit"
    log.info("training %s (%s), %s", plan.name, f"{number + 1} of the preset's models", shown)
    # stop early enough to validate, save the checkpoint and close the run (W&B) before the deadline itself
    reserve = min(60.0, max(1.5, 0.08 * (deadline - start))) if deadline != math.inf else 0.0
    watch = Deadline(deadline - reserve, plan.metric, plan.mode)
    began = time.monotonic()
    found = fit_config(config, callbacks=[watch, SharedFeatures(cache)])
    checkpoint = str(Path(found["checkpoint"]).resolve().relative_to(folder.resolve())) if found["checkpoint"] else ""
    entry.update(
        seconds=round(time.monotonic() - began, 1),
        score=watch.best,
        epoch=watch.best_epoch,
        stopped_by_time_limit=watch.stopped,
        checkpoint=checkpoint,
    )
    if watch.best is None:
        entry["checkpoint"], entry["note"] = "", "stopped by the time limit before its first validation"
    return entry


def ranked(finished: list[dict[str, Any]], preset: str) -> list[dict[str, Any]]:
    """The finished models, best first on the tuning rows; for ``fewshot``, the last one trained first (the
    fine-tuned model, where it finished): its tuning rows are its training rows, which rank nothing."""
    if preset == "fewshot":
        return finished[::-1]
    return sorted(finished, key=lambda m: m["score"], reverse=finished[0]["mode"] == "max")


def combines(folder: Path, model: dict[str, Any], head: str) -> bool:
    """Whether the head can average several models' outputs (a tagger's cannot)."""
    from mmlightning.trained import load_run

    return bool(load_run(folder / model["checkpoint"]).model.heads[head].supports_combine)


def score_ensemble(
    folder: Path, finished: list[dict[str, Any]], tuning: Path, root: str | Path, head: str
) -> tuple[dict[str, Any], bool]:
    """The ensemble of every finished model (best first), scored on the tuning rows, and whether it predicts: it
    does unless it scores worse than the best model alone by more than the tuning rows can tell apart (one standard
    error of an accuracy on them; 1% of an error). On a few hundred rows the single winner is mostly luck, and an
    average of models holds up better on new rows."""
    from mmlightning.evaluate.ensemble import ensemble

    report = ensemble([folder / m["checkpoint"] for m in finished], str(tuning), root=root)
    first = finished[0]
    score = report["ensemble"][head].get(first["metric"].rsplit("/", 1)[-1])
    better = score is not None and board.within(score, first["score"], first["mode"], report["rows"])
    entry = {
        "name": f"ensemble of {len(finished)}",
        "metric": first["metric"],
        "mode": first["mode"],
        "score": score,
        "members": [m["name"] for m in finished],
    }
    return entry, better
