"""How a trained model holds up when a modality is missing or noisy: re-score a split with each modality removed,
and with each modality corrupted at rising severity (corruptions come from each modality's processor, so a new
modality brings its own), and write a table, a plot and JSON."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from mmlightning.errors import ConfigError
from mmlightning.evaluate.scoring import Scores
from mmlightning.files import write_text
from mmlightning.trained import check_examples, example_rows, load_run, run_folder

if TYPE_CHECKING:
    from mmlightning.bundle import ProcessorBundle
    from mmlightning.model import MultimodalModel

log = logging.getLogger(__name__)
SEVERITIES = (0.25, 0.5, 0.75, 1.0)


def score(
    model: MultimodalModel, bundle: ProcessorBundle, items: list[dict[str, Any]], root: Path, batch_size: int
) -> dict[str, dict[str, float]]:
    """Each head's metrics over ``items`` (samples as ``bundle.item`` makes them)."""
    scores = Scores(dict(model.heads.items()))
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            batch = bundle.collate(items[start : start + batch_size], root)
            scores.update(model(batch), batch)
    return scores.values()


def robustness(
    ckpt_path: str | Path,
    out: str | Path | None = None,
    rows: str | None = None,
    severities: Sequence[float] = SEVERITIES,
    batch_size: int = 64,
    seed: int = 0,
    metric: str | None = None,
) -> dict[str, Any]:
    """Score the full rows, each modality removed, and each modality's corruptions at each severity.

    Returns (and writes as ``robustness.json`` in ``out``, default ``RUN/robustness``) the conditions with each
    head's metrics; ``robustness.md`` holds the table and ``robustness.png`` the plot of ``metric`` (default the
    first head's ``acc``, else its first metric) against severity per modality and corruption."""

    trained = load_run(ckpt_path)
    model, bundle = trained.model, trained.bundle
    found, root = example_rows(trained, rows, count=10**9)
    if any(not 0 < s <= 1 for s in severities):
        raise ConfigError(f"severities must be in (0, 1] (0 is the clean input, always scored), got {list(severities)}")
    check_examples(bundle, found, Path(root), rows or "the run's val manifest")
    clean = [bundle.item(row, Path(root), ident=str(i)) for i, row in enumerate(found)]
    conditions: list[dict[str, Any]] = []

    def add(name: str, modality: str | None, corruption: str | None, severity: float, items: list) -> None:
        conditions.append(
            {
                "condition": name,
                "modality": modality,
                "corruption": corruption,
                "severity": severity,
                "metrics": score(model, bundle, items, Path(root), batch_size),
            }
        )

    keys = sorted(bundle.processors)
    plan = [(k, c, s) for k in keys for c in bundle.processors[k].corruptions() for s in severities]
    with tqdm(total=1 + len(keys) + len(plan), desc="robustness", unit="condition") as bar:
        add("full input", None, None, 0.0, clean)
        bar.update()
        chosen = chosen_metric(conditions[0]["metrics"][next(iter(model.heads))], metric)
        for key in keys:  # the encoder's input alone: another encoder reading the same column keeps it
            add(
                f"without {key}",
                key,
                "removed",
                1.0,
                [{**item, "inputs": {**item["inputs"], key: None}, "raw": {}} for item in clean],
            )
            bar.update()
        for key, kind, severity in plan:
            generator = torch.Generator().manual_seed(seed)
            processor, items = bundle.processors[key], []
            for item, row in zip(clean, found):
                value = bundle.value(key, row)
                inputs = dict(item["inputs"])
                if value is not None:
                    inputs[key] = processor.corrupt(value, Path(root), kind, severity, generator)
                items.append({**item, "inputs": inputs, "raw": {}})  # no raw values: never a cached feature
            add(f"{key} {kind} {severity:g}", key, kind, severity, items)
            bar.update()
    report = {"checkpoint": str(Path(ckpt_path).resolve()), "rows": len(found), "conditions": conditions}
    report["metric"] = f"{next(iter(model.heads))}/{chosen}"
    folder = Path(out) if out else run_folder(ckpt_path) / "robustness"
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "robustness.json", json.dumps(report, indent=2))
    write_text(folder / "robustness.md", table(report))
    report["plot"] = str(plot(report, folder / "robustness.png"))
    report["folder"] = str(folder)
    return report


def chosen_metric(found: dict[str, Any], metric: str | None) -> str:
    """``metric`` if the first head reports it (default ``acc``, else its first metric); refused otherwise, with the
    names there are, after scoring the clean rows and before the corruptions."""
    if metric is None:
        return "acc" if "acc" in found else next(iter(found), "")
    if metric not in found:
        names = ", ".join(name for name in found if "/" not in name)
        raise ConfigError(f"--metric {metric}: the first head reports no such metric; it reports {names}")
    return metric


def value_of(condition: dict[str, Any], metric: str) -> float:
    head, name = metric.split("/", 1)
    return float(condition["metrics"].get(head, {}).get(name, float("nan")))


def table(report: dict[str, Any]) -> str:
    """The conditions as a Markdown table of the chosen metric."""
    metric = report["metric"]
    full = value_of(report["conditions"][0], metric)
    lines = [f"| condition | {metric} | change |", "|---|---|---|"]
    for condition in report["conditions"]:
        value = value_of(condition, metric)
        lines.append(f"| {condition['condition']} | {value:.4f} | {value - full:+.4f} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> Path:
    """The chosen metric against severity, a line per modality and corruption; removal as a dashed line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ConfigError("the robustness plot needs matplotlib: pip install 'mmlightning[deploy]'") from err
    metric, conditions = report["metric"], report["conditions"]
    full = value_of(conditions[0], metric)
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    lines: dict[str, list[tuple[float, float]]] = {}
    for condition in conditions[1:]:
        if condition["corruption"] != "removed":
            lines.setdefault(f"{condition['modality']} {condition['corruption']}", []).append(
                (condition["severity"], value_of(condition, metric))
            )
    for name, points in lines.items():
        xs, ys = zip(*[(0.0, full), *points])
        axes.plot(xs, ys, marker="o", label=name)
    for condition in conditions[1:]:
        if condition["corruption"] == "removed":
            axes.axhline(value_of(condition, metric), linestyle="--", linewidth=1, color="grey")
            axes.annotate(
                condition["condition"], (1.0, value_of(condition, metric)), ha="right", va="bottom", fontsize=8
            )
    axes.set_xlabel("severity (0: clean input)")
    axes.set_ylabel(metric)
    axes.set_title("robustness: each modality corrupted or removed")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def log_wandb(report: dict[str, Any]) -> str | None:
    """The table and the plot as a W&B run of their own (offline unless WANDB_MODE says otherwise), in the
    report's folder; returns the run's folder."""
    from mmlightning.wandb import log_report

    rows = [
        [c["condition"], c["modality"], c["corruption"], c["severity"], value_of(c, report["metric"])]
        for c in report["conditions"]
    ]
    columns = ["condition", "modality", "corruption", "severity", report["metric"]]
    return log_report(
        report["folder"],
        "robustness",
        f"robustness-{run_folder(report['checkpoint']).name}",
        {"checkpoint": report["checkpoint"], "rows": report["rows"]},
        {"robustness/table": (columns, rows), "robustness/plot": report["plot"]},
    )
