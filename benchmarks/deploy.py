"""Deployment: size, latency at batch 1, throughput at batch 32 and validation accuracy of a trained model as
PyTorch fp32, ONNX Runtime fp32, ONNX Runtime int8, TorchScript int8 (dynamic quantization of the Linear layers) and
PyTorch fp32 after magnitude pruning (50% of the trained layers' weights, one re-fine-tuning epoch), all on this CPU
in the same run; then `mmlightning serve` under a mixed load of good and hostile requests, with each server
process's memory idle and at its peak.

    python benchmarks/deploy.py                      # trains the quickstart model first (about a minute)
    python benchmarks/deploy.py --ckpt_path RUN/checkpoints/NAME.ckpt --rows VAL.jsonl
    python benchmarks/deploy.py --part serve         # the server under load alone

Self-contained (makes the quickstart dataset); writes benchmarks/results/deploy.json and prints a table. Times are
for the model only (inputs processed once beforehand), medians over repeats, with torch and ONNX Runtime given
the same number of threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def quickstart_checkpoint(work: Path) -> tuple[str, Path]:
    data = work / "data"
    subprocess.run([sys.executable, str(ROOT / "examples/quickstart/make_dataset.py"), str(data)], check=True)
    config = (ROOT / "examples/quickstart/config.yaml").read_text().replace("quickstart_data/", f"{data}/")
    (work / "config.yaml").write_text(config)
    results = work / "fit.json"
    subprocess.run(
        ["mmlightning", "fit", "--config", str(work / "config.yaml"), f"--results_path={results}"]
        + [
            "--trainer.logger=false",
            f"--trainer.default_root_dir={work / 'runs'}",
            "--trainer.enable_progress_bar=false",
        ],
        check=True,
    )
    return json.loads(results.read_text())["checkpoint"], data / "val.jsonl"


def timed(run, batch, repeats: int) -> float:
    run(batch)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", default=None)
    parser.add_argument("--rows", default=None, help="the validation manifest (default: the quickstart's)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "results" / "deploy")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--sparsity", type=float, default=0.5, help="magnitude pruning of the trained layers")
    parser.add_argument("--part", choices=["all", "models", "serve"], default="all")
    parser.add_argument("--requests", type=int, default=600, help="requests of the serve load (a third hostile)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    ckpt, rows = (args.ckpt_path, Path(args.rows)) if args.ckpt_path else quickstart_checkpoint(args.work)
    found = {"checkpoint": str(ckpt)}
    if args.part in ("all", "models"):
        found.update(models(ckpt, rows, args))
    if args.part in ("all", "serve"):
        from serve_load import serve_load

        found["serve"] = serve_load(ckpt, rows, args.requests)
    out = ROOT / "benchmarks" / "results" / "deploy.json"
    out.write_text(json.dumps(found, indent=2))
    print(f"\nwritten to {out}")


def models(ckpt: str, rows: Path, args: argparse.Namespace) -> dict:

    from mmlightning.data.manifest import read_manifest
    from mmlightning.deploy.export import export, load_run
    from mmlightning.deploy.runtime import Exported

    threads = torch.get_num_threads()
    trained = load_run(ckpt)
    model, bundle = trained.model, trained.bundle
    manifest = read_manifest(rows)
    values = [r.values for r in manifest.rows]
    batches = [bundle(values[i : i + 32], manifest.root) for i in range(0, len(values), 32)]
    one, full = bundle(values[:1], manifest.root), batches[0]
    target = bundle.target_column("label")
    truth = [v[target] for v in values]
    variants = {"PyTorch fp32": (model, ckpt)}
    for name, fmt, quantize in [
        ("ONNX Runtime fp32", "onnx", None),
        ("ONNX Runtime int8", "onnx", "dynamic-int8"),
        ("TorchScript int8", "torchscript", "dynamic-int8"),
    ]:
        folder = args.work / name.replace(" ", "_")
        export(ckpt, folder, fmt, rows=str(rows), quantize=quantize)
        exported = Exported.load(folder, threads=threads)
        variants[name] = (exported, folder / exported.spec["file"])
    from mmlightning.deploy.prune import prune_run

    pruned = prune_run(ckpt, args.work / "pruned", args.sparsity, epochs=1)  # on the run's own training data
    variants["PyTorch fp32, pruned"] = (load_run(pruned["checkpoint"]).model, pruned["checkpoint"])
    table = []
    for name, (runner, path) in variants.items():
        # PyTorch on the batch's tensors only: without the raw values the frozen-feature cache is not used
        run = runner.run if hasattr(runner, "spec") else (lambda b, m=runner: m(replace(b, raw={})))
        with torch.no_grad():
            latency = timed(run, one, args.repeats)
            per_batch = timed(run, full, max(3, args.repeats // 5))
            predicted = [p["label"] for b in batches for p in bundle.decode(run(b), b.ids)]
        table.append(
            {
                "model": name,
                "size_mb": round(Path(path).stat().st_size / 2**20, 1),
                "latency_b1_ms": round(latency * 1000, 2),
                "throughput_b32_rows_per_s": round(len(full) / per_batch, 1),
                "val_accuracy": round(sum(p == t for p, t in zip(predicted, truth)) / len(truth), 4),
            }
        )
    base = table[0]
    for row in table:
        row["speedup_b1_vs_pytorch"] = round(base["latency_b1_ms"] / row["latency_b1_ms"], 2)
    print(f"\n{len(truth)} validation rows, {threads} threads; checkpoint {ckpt}\n")
    print(f"{'model':<22} {'size MB':>8} {'b1 ms':>8} {'x fp32':>7} {'b32 rows/s':>11} {'val acc':>8}")
    for r in table:
        print(
            f"{r['model']:<22} {r['size_mb']:>8} {r['latency_b1_ms']:>8} {r['speedup_b1_vs_pytorch']:>7} "
            f"{r['throughput_b32_rows_per_s']:>11} {r['val_accuracy']:>8}"
        )
    return {"threads": threads, "rows": len(truth), "table": table}


if __name__ == "__main__":
    main()
