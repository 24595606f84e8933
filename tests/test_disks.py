"""Full and read-only disks: one message naming the folder and the last good checkpoint, no file half-written under
its final name, whatever was there before kept."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
import yaml

from mmlightning.files import DiskError, replacing, staged, write_text
from mmlightning.trained import read_checkpoint

TEXT = {"class_path": "TextEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 80}}


def test_a_full_disk_while_checkpointing_names_the_folder_and_the_last_good_checkpoint(
    shapes_data, tmp_path, monkeypatch, capsys
):
    from mmlightning.cli.main import main

    config = {
        "checkpoint_every_n_steps": 3,
        "trainer": {"max_epochs": 2, "logger": False, "default_root_dir": str(tmp_path / "runs")},
        "model": {"encoders": {"text": TEXT}, "fusion": "ConcatFusion", "heads": {"label": "ClassificationHead"}},
        "data": {"train": str(shapes_data / "train.jsonl"), "batch_size": 16},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    save, calls = torch.save, []

    def filling(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) < 3 or not str(f).endswith(".partial"):
            return save(obj, f, *args, **kwargs)
        Path(f).write_bytes(b"PK\x03\x04" + b"\x00" * 1000)  # part of it written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", filling)
    assert main(["fit", "--config", str(tmp_path / "config.yaml")]) == 1
    error = capsys.readouterr().err
    folder = next((tmp_path / "runs").glob("*/checkpoints"))
    assert "the disk is full" in error and str(folder) in error and "Traceback" not in error
    assert "the last good checkpoint is" in error and "--ckpt_path" in error
    named = error.split("the last good checkpoint is ")[1].split(". Nothing")[0]
    assert Path(named).parent == folder and read_checkpoint(named)["global_step"] >= 3
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no partial file left
    for checkpoint in folder.glob("*.ckpt"):  # each file under a final name is whole
        read_checkpoint(checkpoint)


def test_a_read_only_disk_keeps_the_earlier_file_and_says_so(tmp_path, monkeypatch):
    path = write_text(tmp_path / "bundle.json", '{"earlier": true}')
    real = os.replace

    def read_only(source, target):
        raise OSError(errno.EROFS, "Read-only file system", str(target))

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(DiskError, match=rf"could not write bundle.json in {tmp_path}: the disk is read-only"):
        write_text(path, '{"later": true}')
    monkeypatch.setattr(os, "replace", real)
    assert path.read_text() == '{"earlier": true}' and sorted(p.name for p in tmp_path.iterdir()) == ["bundle.json"]


def test_a_failed_write_leaves_nothing_under_the_final_name(tmp_path):
    with pytest.raises(RuntimeError), replacing(tmp_path / "model.ckpt") as partial:
        partial.write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("the user's")
    with pytest.raises(RuntimeError), staged(tmp_path / "out") as folder:
        (folder / "model.onnx").write_bytes(b"half an export")
        raise RuntimeError("the parity check failed")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["notes.txt"]
    with staged(tmp_path / "out") as folder:
        (folder / "model.onnx").write_bytes(b"an export")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.onnx", "notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
