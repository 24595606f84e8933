"""Exact resume: a run killed with SIGKILL mid-epoch and resumed from last.ckpt ends as a run never stopped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mmlightning.cli.main import main

from conftest import main_in

CONFIG = {
    "seed_everything": 0,
    "checkpoint_every_n_steps": 5,
    "trainer": {
        "max_epochs": 3,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "logger": False,
        "deterministic": True,
    },
    "model": {
        "encoders": {
            "text": {"class_path": "TextEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 100}},
            "image": {
                "class_path": "TimmEncoder",
                "init_args": {"model_name": "test_resnet", "image_size": 32, "dim": 16},
            },
        },
        "fusion": {"class_path": "CrossAttentionFusion", "init_args": {"dim": 16, "heads": 2}},
        "heads": {"label": {"class_path": "ClassificationHead"}},
        "modality_dropout": 0.2,  # random draws in the model too, besides dropout and augmentation
    },
}


EMA = {"class_path": "lightning.pytorch.callbacks.EMAWeightAveraging", "init_args": {"decay": 0.9}}


@pytest.mark.parametrize(
    ("workers", "ema", "shards"), [(0, False, False), (2, False, False), (0, True, False), (2, False, True)]
)
def test_a_killed_run_resumed_from_last_ckpt_ends_bit_for_bit_as_an_uninterrupted_one(
    shapes_data, tmp_path, workers, ema, shards
):
    """With EMA on, the checkpoint holds the average beside the current weights, and both come back. With
    ``shards``, both runs stream from shards written by ``mmlightning optimize``, and end with the same weights."""
    data = {
        "num_workers": workers,
        "train": str(shapes_data / "train.jsonl"),
        "val": str(shapes_data / "val.jsonl"),
        "batch_size": 8,
    }  # 12 steps an epoch
    config = {**CONFIG, "data": data}
    if shards:
        (tmp_path / "shards.yaml").write_text(yaml.safe_dump(config))
        assert main(["optimize", "--config", str(tmp_path / "shards.yaml"), "--out", str(tmp_path / "shards")]) == 0
        data.update(train=f"shards://{tmp_path / 'shards' / 'train'}", val=f"shards://{tmp_path / 'shards' / 'val'}")
    if ema:
        config["trainer"] = {**config["trainer"], "callbacks": [EMA]}
    (tmp_path / "whole").mkdir()
    whole = main_in(
        tmp_path / "whole", {**config, "trainer": {**config["trainer"], "default_root_dir": "runs/run-whole"}}, "fit"
    )

    killed = tmp_path / "killed"
    killed.mkdir()
    trainer = {
        **config["trainer"],
        "default_root_dir": "runs/run-killed",
        "callbacks": [
            *config["trainer"].get("callbacks", []),
            {"class_path": "killer.KillAt", "init_args": {"step": 29}},
        ],
    }
    (killed / "config.yaml").write_text(yaml.safe_dump({**config, "trainer": trainer}))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent / "helpers"), os.environ.get("PYTHONPATH", "")]),
        "WANDB_MODE": "offline",
    }
    done = subprocess.run(
        [sys.executable, "-m", "mmlightning.cli.main", "fit", "--config", "config.yaml"],
        cwd=killed,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == -9, done.stderr[-2000:]
    last = killed / "runs" / "run-killed" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=False)
    assert saved["global_step"] == 25  # mid-epoch 3 (the last): 1 of its 12 batches done
    assert ("current_model_state" in saved) == ema  # with EMA, state_dict holds the average
    epoch_end = tmp_path / "epoch_end.ckpt"  # the end of an epoch (the resumed run replaces it in its folder)
    shutil.copy(max(last.parent.glob("epoch=*-*.ckpt")), epoch_end)

    resumed = main_in(
        killed,
        {**config, "trainer": {**config["trainer"], "default_root_dir": "runs/run-killed"}},
        "fit",
        f"--ckpt_path={last}",
    )
    assert whole["epochs"] == resumed["epochs"] == 3
    train = [key for key in whole if key.startswith("train/") and not key.endswith("_step")]
    assert {"train/loss_epoch", "train/label/acc", "train/label/f1_macro"} <= set(train)
    for key in ("val/loss", "val/label/acc", "val/label/f1_macro", *train):  # train/: the resumed epoch's own
        assert resumed[key] == whole[key], key  # exactly, not approximately
    if shards:
        weights = [
            torch.load(tmp_path / f / "runs" / f"run-{f}" / "checkpoints" / "last.ckpt", weights_only=True)[
                "state_dict"
            ]
            for f in ("whole", "killed")
        ]
        assert weights[0].keys() == weights[1].keys()
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    if ema or shards:
        return  # resuming from an epoch's end is the same path; once is enough
    again = main_in(
        killed,
        {**config, "trainer": {**config["trainer"], "default_root_dir": "runs/run-again"}},
        "fit",
        f"--ckpt_path={epoch_end}",
    )
    for key in ("val/loss", *train):
        assert again[key] == whole[key], key
