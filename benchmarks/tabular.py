"""Records on real data, beside gradient-boosted trees: California Housing, Adult, HAM10000 (image + patient record)
and clothing reviews (text + customer record). Each model is fitted from the CLI with its shipped config
(`docs/configs/DATASET.yaml`), each modality alone too, and the fused models are re-scored with each modality
removed (`mmlightning robustness`). Beside every figure, in the same run and on the same split, scikit-learn's
HistGradientBoosting on the same record columns (text and image left out; for the reviews also with a bag of words
of the text). Fit times are wall seconds and CPU seconds (user + system, all cores) on this machine.

    python benchmarks/tabular.py [--only california] [--epochs N] [--no-docs]

Needs ../shared/data beside the repository (skips with a message when absent) and the offline weights
`bash scripts/setup.sh` installs. Writes benchmarks/results/tabular.json, prints the table and writes it into
docs/results.md (between its `tabular` markers).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

from mmlightning.machine import machine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import boosted_trees  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results"
# dataset -> (config, {variant: the encoders it keeps}, the metrics to report: (head/metric, shown as))
PLAN = {
    "california": ("california.yaml", {"record": ["record"]}, [("label/rmse", "RMSE")]),
    "adult": ("adult.yaml", {"record": ["record"]}, [("label/acc", "accuracy")]),
    "ham10000": (
        "ham10000.yaml",
        {"image + record": ["image", "record"], "image": ["image"], "record": ["record"]},
        [
            ("label/f1_macro", "macro F1"),
            ("label/balanced_acc", "balanced acc"),
            ("malignant/auroc", "malignant AUROC"),
        ],
    ),
    "clothing_reviews": (
        "clothing_reviews.yaml",
        {"text + record": ["text", "record"], "text": ["text"], "record": ["record"]},
        [("label/acc", "accuracy"), ("label/f1_macro", "macro F1")],
    ),
}
VAL = {"california": "val", "adult": "val", "ham10000": "dev", "clothing_reviews": "dev"}


def variant_config(dataset: str, keep: list[str], epochs: int | None) -> Path:
    """The shipped config with only the ``keep`` encoders (and their freezing), written under results/."""
    config = yaml.safe_load((ROOT / "docs" / "configs" / PLAN[dataset][0]).read_text())
    model = config["model"]
    model["encoders"] = {k: v for k, v in model["encoders"].items() if k in keep}
    if "freeze" in model:
        model["freeze"] = [k for k in model["freeze"] if k in keep] or None
    if "record" not in keep:
        config["data"].pop("columns", None)
    if model.get("freeze"):  # the variants share the frozen encoders' features: computed once, on disk
        model["cache_dir"] = str(OUT / "feature_cache")
    for split in ("train", "val", "test"):
        if split in config["data"]:
            config["data"][split] = str((ROOT / config["data"][split]).resolve())
    if epochs:
        config["trainer"]["max_epochs"] = epochs
    path = OUT / "tabular_configs" / f"{dataset}_{'_'.join(keep)}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def fit(config: Path, name: str) -> dict:
    results = OUT / f"tabular_{name}.json"
    command = [
        "mmlightning",
        "fit",
        "--config",
        str(config),
        f"--results_path={results}",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={OUT / 'runs' / name}",
    ]
    start, cpu = time.perf_counter(), _child_cpu()
    subprocess.run(command, check=True, cwd=ROOT)
    found = {**json.loads(results.read_text()), "fit_seconds": round(time.perf_counter() - start, 1)}
    found["fit_cpu_seconds"] = round(_child_cpu() - cpu, 1)  # user + system, all cores
    return found


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def removed(checkpoint: str, name: str) -> dict:
    """The fused model re-scored with each modality removed: {modality: {head/metric: value}}."""
    out = OUT / "runs" / name / "robustness"
    command = ["mmlightning", "robustness", "--ckpt_path", checkpoint, "--out", str(out), "--no_wandb"]
    subprocess.run([*command, "--severities", "0.5"], check=True, cwd=ROOT)
    report = json.loads((out / "robustness.json").read_text())
    found = {}
    for condition in report["conditions"]:
        flat = {f"{h}/{m}": v for h, ms in condition["metrics"].items() for m, v in ms.items()}
        found[condition["condition"]] = flat
    return found


def run(dataset: str, epochs: int | None) -> dict:
    config, variants, metrics = PLAN[dataset]
    rows: dict = {"config": f"docs/configs/{config}", "ours": {}, "removed": {}}
    for variant, keep in variants.items():
        name = f"{dataset}_{'_'.join(keep)}"
        found = fit(variant_config(dataset, keep, epochs), name)
        rows["ours"][variant] = {
            "fit_seconds": found["fit_seconds"],
            "fit_cpu_seconds": found["fit_cpu_seconds"],
            "epochs": found.get("epochs"),
            **{key: found.get(f"val/{key}") for key, _ in metrics},
        }
        if len(keep) > 1:
            rows["removed"] = removed(found["checkpoint"], name)
    rows["baseline"] = boosted_trees(dataset, DATA / dataset, VAL[dataset])
    return rows


def column_scaling(rows: int = 2000, widths: tuple[int, ...] = (25, 50, 100, 200)) -> list[dict]:
    """Fit-time work per column as the table widens: learning the columns (kinds, statistics, bins, vocabularies)
    and checking every row with the fitted processor, on generated rows (half numbers, half categories, 5% missing).
    Linear scaling keeps the seconds per column flat."""
    import random

    from mmlightning_tabular import RecordProcessor, fit_columns

    found = []
    for width in widths:
        rng = random.Random(0)
        table = [
            {
                f"c{j}": None if rng.random() < 0.05 else (rng.gauss(0, 1) if j % 2 else rng.choice("abcdefgh"))
                for j in range(width)
            }
            for _ in range(rows)
        ]
        start = time.perf_counter()
        state = fit_columns(table)
        learnt = time.perf_counter() - start
        processor = RecordProcessor(**{k: v for k, v in state.items() if k != "bins"})
        start = time.perf_counter()
        for row in table:
            processor.check(row, Path("."))
        checked = time.perf_counter() - start
        found.append(
            {
                "columns": width,
                "rows": rows,
                "fit_seconds": round(learnt, 3),
                "check_seconds": round(checked, 3),
                "ms_per_column": round(1000 * (learnt + checked) / width, 2),
            }
        )
    return found


def table(report: dict) -> str:
    """The side-by-side Markdown table: each dataset's variants, then the boosted trees on the same split."""
    lines = [
        "| dataset | model | inputs | metric | value | fit s (CPU s) |",
        "|---|---|---|---|---|---|",
    ]
    for dataset, found in report["datasets"].items():
        metrics = PLAN[dataset][2]
        for variant, row in found["ours"].items():
            for key, shown in metrics:
                value = row.get(key)
                text = "-" if value is None else f"{value:.4f}"
                cpu = row.get("fit_cpu_seconds")
                seconds = f"{row['fit_seconds']:.0f}" + (f" ({cpu:.0f})" if cpu else "")
                lines.append(f"| {dataset} | mmlightning | {variant} | {shown} | {text} | {seconds} |")
        for condition, values in found["removed"].items():
            if condition.startswith("without"):
                for key, shown in metrics:
                    value = values.get(key)
                    text = "-" if value is None else f"{value:.4f}"
                    lines.append(f"| {dataset} | mmlightning, all inputs | {condition} at test | {shown} | {text} | |")
        for inputs, row in found["baseline"].items():
            for key, shown in metrics:
                if key in row:
                    lines.append(
                        f"| {dataset} | HistGradientBoosting | {inputs} | {shown} | {row[key]:.4f} | {row['fit_seconds']:.0f} |"
                    )
    return "\n".join(lines)


def write_docs(text: str) -> None:
    path = ROOT / "docs" / "results.md"
    doc = path.read_text()
    start, end = "<!-- tabular:start -->", "<!-- tabular:end -->"
    block = f"{start}\n{text}\n{end}"
    if start in doc:
        doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end) :]
    else:
        doc = doc.rstrip() + f"\n\n## Records, beside gradient-boosted trees\n\n{block}\n"
    path.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(PLAN), action="append")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--no-docs", action="store_true", help="do not write the table into docs/results.md")
    args = parser.parse_args()
    if not (DATA / "california" / "train.jsonl").is_file():
        print(f"skipped: {DATA} not found (the shared datasets sit beside the repository)")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "tabular.json"
    report = json.loads(path.read_text()) if path.is_file() else {"datasets": {}}
    report["machine"] = machine().line()
    report["column_scaling"] = column_scaling()
    for dataset in args.only or list(PLAN):
        report["datasets"][dataset] = run(dataset, args.epochs)
        path.write_text(json.dumps(report, indent=2))  # each dataset as soon as it is done
    text = table(report)
    print(text)
    print("\ncolumns   fit s   check s   ms per column (2,000 rows)")
    for row in report["column_scaling"]:
        print(
            f"{row['columns']:>7} {row['fit_seconds']:>7.2f} {row['check_seconds']:>9.2f} {row['ms_per_column']:>15.2f}"
        )
    if not args.no_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
