"""Framework overhead: the same model, data and optimizer, trained through mmlightning vs a hand-written loop.

    python benchmarks/overhead.py [--steps 80] [--warmup 10] [--repeats 5] [--batch 32] [--device cpu|cuda]

The model is a text Transformer + a timm ViT + cross-attention fusion + a classification head, built once per
run; the data is the same list of collated batches in memory for both. The plain loop does forward, loss,
backward and AdamW steps (and no-grad forward for validation and prediction); mmlightning runs the same steps
through `Trainer.fit`, `validate` and `predict`, with its per-step metrics and logging. Steady-state steps per
second are timed after `--warmup` steps. The two run in `--repeats` back-to-back pairs (each going first in
turn); the ratio reported is the median of the pairs' ratios, and their range shows the machine's noise.

On a shared CPU machine that noise (+-10% between back-to-back runs) is larger than the overhead, so the script
also runs the same pipeline with a tiny model (16-wide, a few ms a step): there the extra milliseconds per step
that mmlightning adds (hooks, logging, metrics) stand out from the compute, and are reported as a share of the
full model's plain step time. That share is the overhead estimate that does not drown in the noise.
Writes benchmarks/results/overhead.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import time
from pathlib import Path

import torch

OUT = Path(__file__).parent / "results" / "overhead.json"
LABELS = ["a", "b", "c", "d"]


def build_model(device: str, tiny: bool = False):
    from mmlightning import MultimodalModule
    from mmlightning_fusions import CrossAttentionFusion
    from mmlightning_heads import ClassificationHead
    from mmlightning_text import TextEncoder
    from mmlightning_vision import TimmEncoder

    torch.manual_seed(0)
    dim = 16 if tiny else 128  # tiny: the same pipeline with almost no compute, so the framework's own cost shows
    text = TextEncoder(dim=dim, layers=1 if tiny else 2, heads=4, vocab_size=500, max_length=48)
    text.fit([" ".join(f"word{i % 97} token{i % 13}" for i in range(j, j + 20)) for j in range(200)])
    encoders = {
        "text": text,
        "image": TimmEncoder("test_vit" if tiny else "vit_tiny_patch16_224", image_size=64, dim=dim),
    }
    model = MultimodalModule(
        encoders,
        functools.partial(CrossAttentionFusion, dim=dim, heads=4, query="text"),
        {"label": functools.partial(ClassificationHead, labels=LABELS)},
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-4),
    )
    model.heads["label"].set_fitted({"labels": LABELS})
    return model.to(device)


def make_batches(count: int, size: int, device: str, vocab: int) -> list:
    from mmlightning import Batch

    g = torch.Generator().manual_seed(0)
    batches = []
    for i in range(count):
        ids = torch.randint(5, vocab, (size, 48), generator=g)
        mask = torch.ones(size, 48, dtype=torch.bool)
        inputs = {
            "text": {
                "ids": ids,
                "mask": mask,
                "word_ids": torch.arange(48).expand(size, 48),
                "present": torch.ones(size, dtype=torch.bool),
            },
            "image": {
                "pixels": torch.randn(size, 3, 64, 64, generator=g),
                "present": torch.ones(size, dtype=torch.bool),
            },
        }
        inputs = {k: {n: t.to(device) for n, t in v.items()} for k, v in inputs.items()}
        target = torch.randint(0, len(LABELS), (size,), generator=g).to(device)
        batches.append(Batch(inputs=inputs, targets={"label": target}, ids=[f"{i}:{j}" for j in range(size)]))
    return batches


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def plain(model, batches: list, warmup: int, device: str, mode: str) -> float:
    """Steps per second of a hand-written loop over the same model's modules."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train(mode == "train")
    start = None
    for i, batch in enumerate(batches):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        if mode == "train":
            optimizer.zero_grad(set_to_none=True)
            loss = model(batch)["label"].loss
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad():
                model(batch)["label"].predictions.tolist() if mode == "predict" else model(batch)["label"].loss.item()
    sync(device)
    return (len(batches) - warmup) / (time.perf_counter() - start)


class Timer:
    """A Lightning callback that times the steps after the warm-up."""

    def __new__(cls, warmup: int, device: str):
        from lightning.pytorch import Callback

        class _Timer(Callback):
            def __init__(self) -> None:
                self.start, self.count = None, 0

            def _begin(self, batch_idx: int) -> None:
                if batch_idx == warmup:
                    sync(device)
                    self.start = time.perf_counter()

            def _end(self, batch_idx: int) -> None:
                if batch_idx >= warmup:
                    self.count += 1

            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                self._begin(batch_idx)

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                self._end(batch_idx)

            def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
                self._begin(batch_idx)

            def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
                self._end(batch_idx)

            def on_predict_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
                self._begin(batch_idx)

            def on_predict_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
                self._end(batch_idx)

            def rate(self) -> float:
                sync(device)
                return self.count / (time.perf_counter() - self.start)

        return _Timer()


def framework(model, batches: list, warmup: int, device: str, mode: str) -> float:
    """Steps per second through Trainer.fit / validate / predict on the same batches."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    timer = Timer(warmup, device)
    trainer = pl.Trainer(
        accelerator=device,
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer],
    )
    loader = DataLoader(batches, batch_size=None, shuffle=False)  # the batches as they are, like the plain loop
    if mode == "train":
        trainer.fit(model, train_dataloaders=loader)
    elif mode == "validate":
        trainer.limit_val_batches = 1.0
        trainer.validate(model, dataloaders=loader, verbose=False)
    else:
        trainer.predict(model, dataloaders=loader, return_predictions=False)
    # the timer stops at the last batch's end; Lightning's end-of-run work is not a per-step cost
    return timer.rate()


def compare(model, batches: list, mode: str, args) -> dict:
    """``--repeats`` back-to-back pairs, each runner going first in turn, so drift on a shared machine hits both."""
    plain(
        model, batches[: args.warmup + 2], args.warmup, args.device, mode
    )  # first-call costs (allocator, lazy init) out of the way
    pairs = []
    for i in range(args.repeats):
        runners = [("plain PyTorch", plain), ("mmlightning", framework)][:: 1 if i % 2 == 0 else -1]
        pairs.append({name: run(model, batches, args.warmup, args.device, mode) for name, run in runners})
    ratios = [pair["mmlightning"] / pair["plain PyTorch"] for pair in pairs]
    extra = [1000 / pair["mmlightning"] - 1000 / pair["plain PyTorch"] for pair in pairs]
    return {
        "steps_per_second": {name: statistics.median(pair[name] for pair in pairs) for name in pairs[0]},
        "pair_ratios": ratios,
        "ratio": statistics.median(ratios),
        "extra_ms_per_step": statistics.median(extra),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    results = {}
    for size in ("full", "tiny"):
        model = build_model(args.device, tiny=size == "tiny")
        batches = make_batches(
            args.steps + args.warmup, args.batch, args.device, vocab=model.encoders["text"].embed.num_embeddings
        )
        results[size] = {mode: compare(model, batches, mode, args) for mode in ("train", "validate", "predict")}
    print(
        f"{'stage':<10} {'plain steps/s':>14} {'mmlightning steps/s':>20} {'ratio':>7} {'pair ratios':>13} {'framework ms/step (tiny model)':>31} {'as share of a plain step':>25}"
    )
    for mode, r in results["full"].items():
        s, spread = r["steps_per_second"], f"{min(r['pair_ratios']):.3f}-{max(r['pair_ratios']):.3f}"
        tiny = results["tiny"][mode]["extra_ms_per_step"]
        share = tiny / (1000 / s["plain PyTorch"])
        r["framework_share"] = share
        print(
            f"{mode:<10} {s['plain PyTorch']:>14.2f} {s['mmlightning']:>20.2f} {r['ratio']:>7.3f} {spread:>13} {tiny:>31.2f} {share:>24.1%}"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "device": args.device,
                "torch": torch.__version__,
                "batch": args.batch,
                "steps": args.steps,
                "warmup": args.warmup,
                "repeats": args.repeats,
                "results": results["full"],
                "tiny_model": results["tiny"],
            },
            indent=2,
        )
    )
    print(f"\nwritten to {OUT}")


if __name__ == "__main__":
    main()
