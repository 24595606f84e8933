"""Loose files against LitData shards: samples per second out of the training loader (2 workers), cold and warm.

    python benchmarks/streaming.py [--batches 60] [--repeats 3] [--only cifar10_32,cifar10_160,mvsa_single]

For each case the model and datamodule are built as `mmlightning fit --config` builds them, the training split is
written as shards with `mmlightning optimize` (into a temporary folder, removed afterwards), and the same training
loader (order, augmentation, collation) is timed reading the loose files and reading the shards:
- warm: after one pass, with every file in the page cache;
- cold: after every file the loader reads (the images, or the chunk files) is dropped from the page cache
  (``posix_fadvise(DONTNEED)``, which needs no root; the disk's own cache may still hold them).
Shards are written twice: with the files only, and with `--decoded` (each encoder's decoded form too: pictures as
pixels, token ids). The first batch (worker start-up) is not timed; each rate is the median of --repeats
timings (cold: the cache dropped before each). Cases: CIFAR-10 at its own 32 px (where reading
the small files is most of a sample's cost), CIFAR-10 at the shipped config's 160 px (where the resize and
augmentation are), and MVSA-Single (JPEG photos with tweets). Also the size of the shards beside the files they hold. Needs ../shared/data
beside the repository; writes benchmarks/results/streaming.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pipeline import loader_rate  # benchmarks/pipeline.py: the same timing of a training loader

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results" / "streaming.json"
CASES = {
    "cifar10_32": ("cifar10_finetune.yaml", ["--model.encoders.image.init_args.image_size=32"]),
    "cifar10_160": ("cifar10_finetune.yaml", []),
    "mvsa_single": ("mvsa_single.yaml", []),
}


def build(config: str, extra: list[str]):
    from mmlightning.binding import bind
    from mmlightning.cli.optimize import build as build_run

    os.chdir(ROOT)  # the configs' data paths are relative to the repository
    model, data = build_run(str(ROOT / "docs" / "configs" / config), extra)
    bind(model, data)
    return model, data


def evict(paths: list[Path]) -> None:
    """Drop the files from the page cache (the next read goes to the disk)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def rate(data, batches: int, repeats: int, drop: list[Path] | None = None) -> float:
    """Samples per second (the first batch, worker start-up, not timed): the median of ``repeats`` timings, the
    files in ``drop`` dropped from the page cache before each."""
    found = []
    for _ in range(repeats):
        if drop is not None:
            evict(drop)
        found.append(loader_rate(data, 2, batches))
    return statistics.median(found)


def files_of(data) -> list[Path]:
    dataset = data.dataset("train")
    columns = [c for c in ("image",) if c in dataset.rows[0].values]
    return [Path(dataset.root) / row.values[c] for row in dataset.rows for c in columns if row.values.get(c)]


def case(name: str, batches: int, repeats: int, scratch: Path) -> dict:
    from mmlightning.cli.optimize import optimize

    config, extra = CASES[name]
    model, data = build(config, extra)
    loose = files_of(data)
    found: dict = {"rows": len(loose), "loose_mb": sum(p.stat().st_size for p in loose) / 1e6}
    kinds = [("loose", data, loose)]
    for kind, decoded in (("shards", False), ("decoded", True)):
        out = scratch / f"{name}-{kind}"
        start = time.perf_counter()
        optimize(str(ROOT / "docs" / "configs" / config), extra, out, ["train"], "64MB", True, decoded)
        found[f"{kind}_optimize_s"] = time.perf_counter() - start
        found[f"{kind}_mb"] = sum(p.stat().st_size for p in (out / "train").iterdir()) / 1e6
        chunks = [p for p in (out / "train").iterdir() if p.suffix == ".bin"]
        module = build(config, [*extra, f"--data.train=shards://{out / 'train'}"])[1]
        if decoded:
            found["decoded_encoders"] = list(module.dataset("train").decoded)
        kinds.append((kind, module, chunks))
    for cache in ("cold", "warm"):
        for kind, module, paths in kinds:
            if cache == "warm":
                rate(module, batches, 1)  # one pass to warm the cache
            found[f"{kind}_{cache}"] = rate(module, batches, repeats, paths if cache == "cold" else None)
        for kind in ("shards", "decoded"):
            found[f"{kind}_ratio_{cache}"] = found[f"{kind}_{cache}"] / found[f"loose_{cache}"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(CASES))
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent (the shared datasets live beside the repository)")
        return
    from mmlightning.machine import machine

    scratch = Path(tempfile.mkdtemp(prefix="mmlightning-streaming-"))
    results = {}
    try:
        for name in args.only.split(","):
            results[name] = case(name, args.batches, args.repeats, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"\n{machine().line()}; loader with 2 workers, samples per second (median of {args.repeats}) (ratio: against loose files)"
    )
    head = f"{'case':<13}{'rows':>7}{'MB loose/shards/decoded':>25}{'cache':>7}{'loose':>8}{'shards':>8}{'ratio':>7}"
    print(f"{head}{'decoded':>9}{'ratio':>7}")
    for name, found in results.items():
        sizes = f"{found['loose_mb']:.1f}/{found['shards_mb']:.1f}/{found['decoded_mb']:.1f}"
        for cache in ("cold", "warm"):
            print(
                f"{name:<13}{found['rows']:>7}{sizes:>25}{cache:>7}{found[f'loose_{cache}']:>8.0f}"
                f"{found[f'shards_{cache}']:>8.0f}{found[f'shards_ratio_{cache}']:>6.2f}x"
                f"{found[f'decoded_{cache}']:>9.0f}{found[f'decoded_ratio_{cache}']:>6.2f}x"
            )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {"machine": machine().line(), "batches": args.batches, "repeats": args.repeats, "results": results},
            indent=2,
        )
    )
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
