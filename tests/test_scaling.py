"""Several nodes: two torchrun "nodes" of one process each, joined over gloo on 127.0.0.1 and streaming their data from
shards (`mmlightning optimize`), train as one process with twice the batch does from the loose files. Nothing random in the forward (no dropout; the image encoder frozen, so its batch norm does not
see the share of the batch a process has): the two differ only in the order floating-point sums are made."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from mmlightning.cli.main import main
from mmlightning.deploy.local import free_port

from conftest import main_in

TEXT = {
    "class_path": "TextEncoder",
    "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 80, "dropout": 0.0},
}
IMAGE = {"class_path": "TimmEncoder", "init_args": {"model_name": "test_resnet", "image_size": 32, "dim": 16}}


def config(shapes_data, batch_size: int) -> dict:
    return {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 2,
            "logger": False,
            "accelerator": "cpu",
            "deterministic": True,
            "enable_progress_bar": False,
        },
        "model": {
            "encoders": {"text": TEXT, "image": IMAGE},
            "fusion": {"class_path": "ConcatFusion", "init_args": {"dim": 16, "dropout": 0.0}},
            "heads": {"label": {"class_path": "ClassificationHead", "init_args": {"dropout": 0.0}}},
            "freeze": ["image"],  # batch norm in eval mode: the same whatever share of the batch a process has
        },
        "data": {
            "train": str(shapes_data / "train.jsonl"),
            "val": str(shapes_data / "val.jsonl"),
            "batch_size": batch_size,
        },
    }


def test_two_torchrun_nodes_match_one_process_with_twice_the_batch(shapes_data, tmp_path):
    (tmp_path / "one").mkdir()
    one = main_in(tmp_path / "one", config(shapes_data, 16), "fit")
    work = tmp_path / "two"
    work.mkdir()
    streamed = config(shapes_data, 8)
    (work / "config.yaml").write_text(yaml.safe_dump(streamed))
    assert main(["optimize", "--config", str(work / "config.yaml"), "--out", str(tmp_path / "shards")]) == 0
    streamed["data"].update(train=f"shards://{tmp_path / 'shards/train'}", val=f"shards://{tmp_path / 'shards/val'}")
    (work / "config.yaml").write_text(yaml.safe_dump(streamed))
    port = free_port()
    nodes = []
    for rank in (0, 1):
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
            f"--node_rank={rank}", "--master_addr=127.0.0.1", f"--master_port={port}",
            "-m", "mmlightning.cli.main", "fit", "--config", "config.yaml", "--trainer.num_nodes=2",
            "--trainer.devices=1", "--trainer.strategy=ddp", "--results_path=fit.json",
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
        nodes.append(subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    try:
        said = [node.communicate(timeout=600)[0].decode(errors="replace") for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], said[0][-3000:] + said[1][-3000:]
    two = json.loads((work / "fit.json").read_text())
    runs = list((work / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("run-"), runs  # both nodes wrote into one run folder
    assert two["epochs"] == one["epochs"] == 2
    assert abs(two["val/label/acc"] - one["val/label/acc"]) <= 0.005  # the target: within half a point
    for key in ("val/loss", "train/loss_epoch"):  # in practice the same to float rounding
        assert two[key] == pytest.approx(one[key], rel=1e-5), key


def test_fsdp_without_a_gpu_is_refused_in_one_sentence(shapes_data, tmp_path, capsys, monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: FSDP can run")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config(shapes_data, 8)))
    assert main(["fit", "--config", "c.yaml", "--trainer.strategy=fsdp"]) == 2
    error = capsys.readouterr().err
    assert "--trainer.strategy=fsdp needs a GPU" in error and "Traceback" not in error
    assert not (tmp_path / "runs").exists()  # refused before a run folder or a Trainer
