"""A fused model with a modality missing, beside each modality's own model: AV digits and MVSA-Single.

For ConcatFusion, CrossAttentionFusion and SingleStreamFusion, without and with the robustness options
(`AuxiliaryHeads` with their fallback, and with the fused model's answers distilled into them too), it fits the model from the CLI and scores the dev split with
`mmlightning robustness`: the full input, each modality removed and, on AV digits, each modality corrupted at rising
severity. Each modality alone is the same config with the other encoder removed.

    python benchmarks/robustness.py [--only av_digits] [--av_epochs 6] [--mvsa_epochs 4] [--match "aux heads"]

Needs ../shared/data beside the repository (skips with a message without it). Writes
benchmarks/results/robustness.json, docs/robustness.md and docs/robustness.png.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results" / "robustness"
FUSIONS = ("ConcatFusion", "CrossAttentionFusion", "SingleStreamFusion")
ROBUST = {  # the robustness options compared, by the suffix of the run's name
    "": [],
    " + aux heads": [{"class_path": "AuxiliaryHeads", "init_args": {"weight": 1.0, "path": "head"}}],
    " + aux heads, distilled": [
        {"class_path": "AuxiliaryHeads", "init_args": {"weight": 1.0, "distill": 1.0, "path": "head"}}
    ],
    " + aux heads, own fusion": [{"class_path": "AuxiliaryHeads", "init_args": {"weight": 1.0, "path": "fusion"}}],
}
ONE_MODALITY = {"ConcatFusion", "SingleStreamFusion"}  # the fusions that can also be built for one modality
SETS = {  # name -> (config, the two encoder keys, fusion settings, severities for the corruption curves)
    "av_digits": ("av_digits.yaml", ("image", "audio"), {"dim": 64}, "0.25,0.5,0.75,1"),
    "mvsa_single": ("mvsa_pretrained_frozen.yaml", ("image", "text"), {"dim": 256}, ""),
}
FUSION_ARGS = {"CrossAttentionFusion": {"heads": 4}, "SingleStreamFusion": {"heads": 4, "layers": 1}}


def configs(name: str, epochs: int) -> dict[str, dict]:
    file, keys, fusion_args, _ = SETS[name]
    base = yaml.safe_load((ROOT / "docs" / "configs" / file).read_text())
    base["trainer"]["max_epochs"] = epochs
    base["data"] = {k: str((ROOT / v).resolve()) if k in ("train", "val") else v for k, v in base["data"].items()}
    if "freeze" in base["model"]:  # frozen encoders' features, shared with benchmarks/finetuning.py's runs
        base["model"]["cache_dir"] = str(ROOT / "benchmarks" / "results" / "feature_cache")
    out = {}
    for keep in keys:
        alone = copy.deepcopy(base)
        alone["model"]["encoders"] = {keep: base["model"]["encoders"][keep]}
        alone["model"]["freeze"] = [k for k in base["model"].get("freeze", []) if k == keep]
        out[f"{keep} only"] = alone
    for fusion in FUSIONS:
        for suffix, tuning in ROBUST.items():
            if "own fusion" in suffix and fusion not in ONE_MODALITY:
                continue
            config = copy.deepcopy(base)
            config["model"]["fusion"] = {
                "class_path": fusion,
                "init_args": {**fusion_args, **FUSION_ARGS.get(fusion, {})},
            }
            if tuning:
                config["model"]["tuning"] = copy.deepcopy(tuning)
            out[f"{fusion}{suffix}"] = config
    return out


def run(dataset: str, name: str, config: dict, severities: str) -> dict:
    folder = OUT / dataset / name.replace(" ", "_").replace("+", "plus").replace(",", "")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    fit = [
        "mmlightning",
        "fit",
        "--config",
        str(folder / "config.yaml"),
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={folder / 'runs'}",
        f"--results_path={folder / 'fit.json'}",
    ]
    subprocess.run(fit, check=True, cwd=ROOT, capture_output=True)
    seconds = round(time.perf_counter() - start)
    found = json.loads((folder / "fit.json").read_text())
    score = [
        "mmlightning",
        "robustness",
        "--ckpt_path",
        found["checkpoint"],
        "--out",
        str(folder / "robustness"),
        "--no_wandb",
    ]
    subprocess.run([*score, f"--severities={severities}"], check=True, cwd=ROOT, capture_output=True)
    report = json.loads((folder / "robustness" / "robustness.json").read_text())
    acc = {c["condition"]: c["metrics"]["label"]["acc"] for c in report["conditions"]}
    return {"fit_seconds": seconds, "accuracy": acc, "report": str(folder / "robustness")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SETS), action="append")
    parser.add_argument("--av_epochs", type=int, default=6)
    parser.add_argument("--mvsa_epochs", type=int, default=4)
    parser.add_argument("--match", help="run only the models whose name contains this; keep the others' saved results")
    args = parser.parse_args()
    if not (DATA / "av_digits" / "train.jsonl").is_file():
        print(f"skipped: {DATA} not found (the shared datasets sit beside the repository)")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    saved = ROOT / "benchmarks" / "results" / "robustness.json"
    results = json.loads(saved.read_text()) if saved.is_file() else {}
    for dataset in args.only or list(SETS):
        epochs = args.av_epochs if dataset == "av_digits" else args.mvsa_epochs
        kept = results.get(dataset, {}).get("runs", {}) if args.match else {}
        results[dataset] = {"epochs": epochs, "runs": kept}
        for name, config in configs(dataset, epochs).items():
            if args.match and args.match not in name:
                continue
            found = run(dataset, name, config, SETS[dataset][3])
            results[dataset]["runs"][name] = found
            print(
                f"{dataset} {name:<36} {json.dumps({k: round(v, 4) for k, v in found['accuracy'].items() if not k[-1].isdigit()})} ({found['fit_seconds']} s)",
                flush=True,
            )
            saved.write_text(json.dumps(results, indent=2))
    write_page(results)


def tables(results: dict) -> str:
    parts = []
    for dataset, found in results.items():
        keys = SETS[dataset][1]
        runs = found["runs"]
        alone = {k: runs[f"{k} only"]["accuracy"]["full input"] for k in keys}
        head = " | ".join(f"without {k} (vs {o} alone)" for k, o in zip(keys[::-1], keys))
        lines = [
            f"### {dataset} ({found['epochs']} epochs)",
            "",
            f"Each modality's own model: {', '.join(f'{k} alone {v:.3f}' for k, v in alone.items())}.",
            "",
            f"| model | full input | {head} |",
            "|---|---|---|---|",
        ]
        for name, run in sorted(runs.items(), key=lambda item: order(item[0])):
            if name.endswith(" only"):
                continue
            acc = run["accuracy"]
            cells = " | ".join(
                f"{acc[f'without {k}']:.3f} ({acc[f'without {k}'] - alone[o]:+.3f})" for k, o in zip(keys[::-1], keys)
            )
            lines.append(f"| {name} | {acc['full input']:.3f} | {cells} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def order(name: str) -> tuple[int, int]:
    """Runs in table order: by fusion, then by option, as `configs` makes them."""
    fusion = next((f for f in FUSIONS if name.startswith(f)), "")
    suffix = name[len(fusion) :]
    return (FUSIONS.index(fusion) if fusion else -1, list(ROBUST).index(suffix) if suffix in ROBUST else 0)


def write_page(results: dict) -> None:
    page = ROOT / "docs" / "robustness.md"
    text = page.read_text() if page.is_file() else "# Robustness\n\n<!-- tables -->\n<!-- /tables -->\n"
    start, end = text.index("<!-- tables -->"), text.index("<!-- /tables -->")
    page.write_text(text[: start + len("<!-- tables -->")] + "\n" + tables(results) + "\n" + text[end:])
    av = results.get("av_digits", {}).get("runs", {}).get("ConcatFusion + aux heads")
    if av:
        shutil.copy(Path(av["report"]) / "robustness.png", ROOT / "docs" / "robustness.png")
    print(f"written to {page}")


if __name__ == "__main__":
    main()
