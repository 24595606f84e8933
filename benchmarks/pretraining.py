"""What pretraining buys, on the real data in ../shared/data:

- zeroshot: CIFAR-10 test accuracy with no CIFAR label seen, from the Flickr8k contrastive run (all-MiniLM-L6-v2 and
  EfficientNet-Lite0, frozen, projections trained on 800 Flickr8k images), with one bare prompt, one CLIP prompt and
  CLIP's 7-prompt set (averaged);
- fewshot: `mmlightning fewshot` (the Predictor's fewshot preset) with k = 1, 5 and 20 rows a class on CIFAR-10
  (scored on its test split), HAM10000 and AV digits (on their dev splits), timed end to end, features included;
- rtd: the from-scratch CoNLL text encoder pretrained on the same unlabelled text (CoNLL-2003 training sentences
  and MVSA tweets, labels unused) for the same wall time with MLM and with ELECTRA's replaced-token detection, then
  each fine-tuned on CoNLL-2003 NER for the same epochs, beside no pretraining; entity F1 on valid and test.

    python benchmarks/pretraining.py [--only zeroshot --only fewshot --only rtd] [--flickr_run RUN]
        [--pretrain_minutes 10] [--finetune_epochs 2] [--no-docs]

Skips with a message when ../shared/data is absent. Writes benchmarks/results/pretraining.json, prints the tables
and writes them into docs/results.md (between its `pretraining` markers). Timings are wall seconds on this machine
(the capability line of `mmlightning env` is recorded).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results"
CIFAR = "airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck".split(",")
TEMPLATES = {
    "the label alone": ["{}"],
    "a photo of a {}.": ["a photo of a {}."],
    "CLIP's 7 prompts, averaged": [
        "itap of a {}.",
        "a bad photo of the {}.",
        "a origami {}.",
        "a photo of the large {}.",
        "a {} in a video game.",
        "art of the {}.",
        "a photo of the small {}.",
    ],
}
FEWSHOT = {  # dataset -> (training split, scored split)
    "cifar10": ("train.jsonl", "test.jsonl"),
    "ham10000": ("train.jsonl", "dev.jsonl"),
    "av_digits": ("train.jsonl", "dev.jsonl"),
}


def capability() -> str:
    found = subprocess.run(["mmlightning", "env", "--json"], capture_output=True, text=True, check=False)
    try:
        return str(json.loads(found.stdout).get("line", ""))
    except json.JSONDecodeError:
        return ""


def fit(config: dict[str, Any] | Path, out: Path, name: str, extra: list[str] = ()) -> dict[str, Any]:
    """``mmlightning fit`` on a config (a dict is written to ``out``), its results and wall seconds."""
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(config, dict):
        path = out / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        config = path
    results = out / f"{name}.json"
    command = ["mmlightning", "fit", "--config", str(config), f"--results_path={results}"]
    command += ["--trainer.enable_progress_bar=false", "--trainer.logger=false"]
    command += [f"--trainer.default_root_dir={out / name}", *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return {**json.loads(results.read_text()), "seconds": round(time.perf_counter() - start, 1)}


# --- zero-shot ---------------------------------------------------------------------------------------


def zeroshot(out: Path, flickr_run: str | None) -> dict[str, Any]:
    from mmlightning.evaluate.zeroshot import accuracy, manifest_rows
    from mmlightning.evaluate.zeroshot import zeroshot as classify
    from mmlightning.trained import load_run

    found: dict[str, Any] = {}
    if flickr_run is None:
        trained = fit(ROOT / "docs" / "configs" / "flickr8k_pretrained.yaml", out, "flickr", ["--trainer.max_epochs=6"])
        flickr_run = str(trained["checkpoint"])
        found["flickr_fit_seconds"] = trained["seconds"]
        found["flickr_val"] = {k: v for k, v in trained.items() if k.startswith("val/align/R@")}
    run = load_run(flickr_run)
    rows, root = manifest_rows(DATA / "cifar10" / "test.jsonl")
    found.update(run=flickr_run, rows=len(rows), chance=0.1, accuracy={})
    for name, templates in TEMPLATES.items():
        start = time.perf_counter()
        predictions = classify(run, CIFAR, rows, templates, root)
        found["accuracy"][name] = round(accuracy(predictions, rows, "label", "label"), 4)
        found.setdefault("seconds", {})[name] = round(time.perf_counter() - start, 1)
        print(f"zero-shot CIFAR-10 ({name}): {found['accuracy'][name]:.4f}", flush=True)
    return found


# --- few-shot ------------------------------------------------------------------------------------------


def fewshot(out: Path, ks: list[int]) -> dict[str, Any]:
    from mmlightning.auto.predictor import Predictor

    found: dict[str, Any] = {}
    for name, (train, scored) in FEWSHOT.items():
        for k in ks:
            folder = out / "fewshot" / f"{name}_k{k}"
            if folder.exists():
                import shutil

                shutil.rmtree(folder)
            start = time.perf_counter()
            predictor = Predictor("label", "fewshot", folder).fit(str(DATA / name / train), k=k)
            fitted = time.perf_counter() - start
            scores = predictor.evaluate(str(DATA / name / scored))
            entry = {
                "k": k,
                "rows": predictor.summary["rows"]["train"],
                "scored_on": scored,
                "acc": round(scores["acc"], 4),
                "f1_macro": round(scores["f1_macro"], 4),
                "fit_seconds": round(fitted, 1),
                "total_seconds": round(time.perf_counter() - start, 1),
                "roles": {a["column"]: a["role"] for a in predictor.summary["roles"]["columns"]},
            }
            found[f"{name}_k{k}"] = entry
            print(f"few-shot {name} k={k}: {entry}", flush=True)
    return found


# --- replaced-token detection against MLM ----------------------------------------------------------------


def corpus(out: Path) -> Path:
    """CoNLL-2003's training sentences and MVSA's training tweets as word lists, labels left out."""
    from mmlightning.data.manifest import read_manifest
    from mmlightning_text.conll import ConllReader

    rows, _ = ConllReader().read(DATA / "conll2003" / "train.txt")
    words = [row.values["tokens"] for row in rows]
    tweets = read_manifest(DATA / "mvsa_single" / "train.jsonl").rows
    words += [str(row.values["text"]).split() for row in tweets if str(row.values.get("text") or "").split()]
    random.Random(0).shuffle(words)
    path = out / "unlabelled.jsonl"
    path.write_text("".join(json.dumps({"tokens": w}) + "\n" for w in words))
    print(f"unlabelled text: {len(words)} rows ({len(rows)} CoNLL sentences, {len(tweets)} tweets)", flush=True)
    return path


def steps_of(checkpoint: str) -> int | None:
    """The optimizer steps a checkpoint was saved at, from its name (``epoch=0-step=550.ckpt``)."""
    import re

    found = re.search(r"step=(\d+)", Path(checkpoint).name)
    return int(found.group(1)) if found else None


def pretrain_config(head: dict[str, Any], train: Path, minutes: float) -> dict[str, Any]:
    ner = yaml.safe_load((ROOT / "docs" / "configs" / "conll2003_ner.yaml").read_text())
    encoder = ner["model"]["encoders"]["tokens"]
    return {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 100,
            "max_time": f"00:00:{int(minutes):02d}:{round(minutes * 60) % 60:02d}",
            "log_every_n_steps": 50,
        },
        "model": {
            "encoders": {"tokens": encoder},
            "fusion": {
                "class_path": "SingleStreamFusion",
                "init_args": {"dim": encoder["init_args"]["dim"], "layers": 0},
            },
            "heads": {"objective": head},
            "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.0005, "weight_decay": 0.01}},
        },
        "data": {"train": str(train), "batch_size": 32, "num_workers": 1},
    }


def test_scores(found: dict[str, Any], out: Path, name: str) -> dict[str, Any]:
    tested = out / f"{name}_test.json"
    config = str(Path(found["run_dir"]) / "config.yaml")
    command = ["mmlightning", "test", "--config", config, f"--ckpt_path={found['checkpoint']}"]
    subprocess.run([*command, f"--results_path={tested}", "--trainer.enable_progress_bar=false"], check=True, cwd=ROOT)
    return json.loads(tested.read_text())


def rtd(out: Path, minutes: float, epochs: int) -> dict[str, Any]:
    out = out / "rtd"
    out.mkdir(parents=True, exist_ok=True)
    train = corpus(out)
    heads = {
        "mlm": {"class_path": "MaskedLanguageHead", "init_args": {"modality": "tokens"}},
        "rtd": {"class_path": "ReplacedTokenHead", "init_args": {"modality": "tokens"}},
    }
    found: dict[str, Any] = {"pretrain_minutes": minutes, "finetune_epochs": epochs, "rows": {}}
    starts: dict[str, str | None] = {"none": None}
    for name, head in heads.items():
        pretrained = fit(pretrain_config(head, train, minutes), out, f"pretrain_{name}")
        starts[name] = str(pretrained["checkpoint"])
        found[f"pretrain_{name}"] = {
            "seconds": pretrained["seconds"],
            "steps": steps_of(str(pretrained["checkpoint"])),
            **{k: v for k, v in pretrained.items() if k.startswith("train/objective/")},
        }
    ner = ROOT / "docs" / "configs" / "conll2003_ner.yaml"
    for name, checkpoint in starts.items():
        extra = [f"--trainer.max_epochs={epochs}", f"--data.train={DATA / 'conll2003' / 'train.txt'}"]
        extra += [f"--data.val={DATA / 'conll2003' / 'valid.txt'}", f"--data.test={DATA / 'conll2003' / 'test.txt'}"]
        if checkpoint:
            init = {
                "class_path": "mmlightning.tuning.InitFrom",
                "init_args": {"checkpoint": checkpoint, "parts": ["encoders.tokens"]},
            }
            extra.append(f"--model.tuning={json.dumps([init])}")
        tuned = fit(ner, out, f"finetune_{name}", extra)
        tested = test_scores(tuned, out, f"finetune_{name}")
        found[name] = {
            "valid_f1": round(tuned["val/tags/f1"], 4),
            "test_f1": round(tested["test/tags/f1"], 4),
            "finetune_seconds": tuned["seconds"],
        }
        print(f"CoNLL-2003 after {name} pretraining: {found[name]}", flush=True)
    return found


# --- the tables ------------------------------------------------------------------------------------------


def tables(results: dict[str, Any]) -> str:
    parts = [f"Measured by `python benchmarks/pretraining.py` on {results.get('capability') or 'this machine'}."]
    if "zeroshot" in results:
        z = results["zeroshot"]
        lines = ["| prompts | CIFAR-10 test accuracy (2,000 images; chance 0.10) |", "|---|---|"]
        lines += [f"| {name} | {acc:.4f} |" for name, acc in z["accuracy"].items()]
        parts.append("**Zero-shot** (`mmlightning zeroshot`, the Flickr8k contrastive run):\n\n" + "\n".join(lines))
    if "fewshot" in results:
        lines = [
            "| dataset (scored split) | k | rows | accuracy | macro F1 | fit s | with scoring s |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, e in results["fewshot"].items():
            name = key.rsplit("_k", 1)[0]
            lines.append(
                f"| {name} ({e['scored_on'].split('.')[0]}) | {e['k']} | {e['rows']} | {e['acc']:.4f} | "
                f"{e['f1_macro']:.4f} | {e['fit_seconds']:.0f} | {e['total_seconds']:.0f} |"
            )
        parts.append(
            "**Few-shot** (`mmlightning fewshot --k K`: a linear probe on frozen pretrained features, then the image "
            "encoder's top levels fine-tuned; the fine-tuned model scored):\n\n" + "\n".join(lines)
        )
    if "rtd" in results:
        r = results["rtd"]
        lines = [
            "| pretraining | pretraining steps in the same time | CoNLL valid F1 | CoNLL test F1 |",
            "|---|---|---|---|",
        ]
        for name in ("none", "mlm", "rtd"):
            if name in r:
                steps = r.get(f"pretrain_{name}", {}).get("steps", "")
                lines.append(f"| {name} | {steps} | {r[name]['valid_f1']:.4f} | {r[name]['test_f1']:.4f} |")
        parts.append(
            f"**Replaced-token detection against MLM** ({r['pretrain_minutes']} minutes of pretraining each, then "
            f"{r['finetune_epochs']} epochs of CoNLL fine-tuning):\n\n" + "\n".join(lines)
        )
    return "\n\n".join(parts)


def write_docs(text: str) -> None:
    page = ROOT / "docs" / "results.md"
    start, end = "<!-- pretraining:start -->", "<!-- pretraining:end -->"
    content = page.read_text()
    if start not in content:
        content += f"\n## What pretraining buys: zero-shot, few-shot, replaced-token detection\n\n{start}\n{end}\n"
    head, rest = content.split(start, 1)
    page.write_text(f"{head}{start}\n{text}\n{end}{rest.split(end, 1)[1]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=["zeroshot", "fewshot", "rtd"])
    parser.add_argument("--flickr_run", default=None, help="a trained Flickr8k contrastive run (else one is trained)")
    parser.add_argument("--k", type=int, action="append", default=None)
    parser.add_argument("--pretrain_minutes", type=float, default=10.0)
    parser.add_argument("--finetune_epochs", type=int, default=2)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent (the benchmark reads the shared datasets)")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "pretraining.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    results["capability"] = capability()
    work = OUT / "pretraining"
    for part in args.only or ["rtd", "fewshot", "zeroshot"]:
        if part == "zeroshot":
            results["zeroshot"] = zeroshot(work, args.flickr_run)
        elif part == "fewshot":
            results["fewshot"] = fewshot(work, args.k or [1, 5, 20])
        else:
            results["rtd"] = rtd(work, args.pretrain_minutes, args.finetune_epochs)
        path.write_text(json.dumps(results, indent=2))
    text = tables(results)
    print(text)
    if not args.no_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
