"""Every documented command runs: each config under docs/configs and examples/ fits for two steps on stand-in data
made here (the real datasets live outside the repository), with the default logger, W&B offline."""

from __future__ import annotations

import json
import os
import random
import wave
from pathlib import Path

import pytest
from PIL import Image

from mmlightning.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "docs" / "configs").glob("*.yaml")) + sorted((ROOT / "examples").glob("*/config.yaml"))
CONLL = (
    "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\ncall NN I-NP O\n\n"
    + "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n"
)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> Path:
    """One manifest with every column the configs read: text, image, audio, video (every other clip with a sound
    track), label, group, record fields, the surveillance targets; and a CoNLL file."""
    from mmlightning_video.clips import moving_square, write_clip

    folder = tmp_path_factory.mktemp("stand_in")
    rng = random.Random(0)
    rows = []
    for i in range(12):
        Image.new("RGB", (40, 32), (rng.randrange(256), 80, 160)).save(folder / f"{i}.png")
        with wave.open(str(folder / f"{i}.wav"), "wb") as out:
            out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
            out.writeframes(bytes(rng.randrange(256) for _ in range(2 * 4000)))
        direction = ("up", "down", "left", "right")[i % 4]
        sound = [0.2 * rng.uniform(-1, 1) for _ in range(4000)] if i % 2 else None
        write_clip(folder / f"{i}.mp4", moving_square(4, 32, direction, seed=i), audio=sound)
        rows.append(
            {
                "id": str(i),
                "text": f"a {'red blue'.split()[i % 2]} thing number {i}",
                "image": f"{i}.png",
                "audio": f"{i}.wav",
                "label": str(i % 3),
                "group": f"g{i // 2}",
                "age": None if i % 5 == 0 else 20 + 3 * i,  # a record's fields, one sometimes missing
                "malignant": ("yes", "no")[i % 2],
                "rating": 1 + i % 5,
                "video": f"{i}.mp4",
                "alert": ("yes", "no")[i % 2],
                "digit": i % 3,
                "spoken": (i + 1) % 3,
                "motion": direction,
            }
        )
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "data.txt").write_text(CONLL * 3)
    return folder


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.parent.name if p.name == "config.yaml" else p.stem)
def test_a_shipped_config_fits(config, stand_in, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    data = stand_in / ("data.txt" if "conll" in config.stem else "data.jsonl")
    args = [
        "fit",
        "--config",
        str(config),
        f"--data.train={data}",
        f"--data.val={data}",
        "--data.test=null",
        "--data.num_workers=0",
        "--data.batch_size=4",
        "--trainer.max_steps=2",
        "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false",
    ]
    assert main(args) == 0
    assert list((tmp_path / "runs").rglob("bundle.json"))
    assert os.listdir(tmp_path / "runs" / "wandb")  # the default logger ran, offline
