"""The surveillance example (examples/surveillance): its clips say what their labels say, and `run.py` trains on
them and prints each target with each modality removed, as `bash scripts/surveillance.sh` does."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "surveillance"


def maker():
    spec = importlib.util.spec_from_file_location("surveillance_maker", EXAMPLE / "make_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_clips_hold_what_their_labels_say(tmp_path):
    from mmlightning_audio.features import read_audio
    from mmlightning_video.decode import read_clip

    subprocess.run([sys.executable, str(EXAMPLE / "make_dataset.py"), str(tmp_path), "--train", "12", "--val", "4"],
                   check=True, capture_output=True)  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and {r["alert"] for r in rows} == {"yes", "no"}
    for row in rows:
        code = maker().WORDS.index(row["text"].rsplit(" ", 1)[1])
        assert (row["alert"] == "no") == (row["digit"] == row["spoken"] == code)
        clip = read_clip(tmp_path / row["video"], 8, 32)
        bright = [np.argwhere(frame[..., 0] > 120).mean(0) for frame in clip]  # (y, x) of the digit
        dy, dx = bright[-1] - bright[0]
        moved = {"up": -dy, "down": dy, "left": -dx, "right": dx}
        assert max(moved, key=moved.get) == row["motion"]
        waveform, rate = read_audio(tmp_path / row["video"])
        spectrum = np.abs(np.fft.rfft(waveform.numpy()))
        low, high = maker().DTMF[row["spoken"]]
        peaks = np.fft.rfftfreq(len(waveform), 1 / rate)[np.argsort(spectrum)[-40:]]
        assert min(abs(peaks - low)) < 15 and min(abs(peaks - high)) < 15  # the key's two tones


def test_run_trains_and_prints_each_target_without_each_modality(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    make = [sys.executable, str(EXAMPLE / "make_dataset.py"), "surveillance_data", "--train", "16", "--val", "8"]
    subprocess.run(make, check=True, capture_output=True, cwd=tmp_path)
    done = subprocess.run([sys.executable, str(EXAMPLE / "run.py"), "--epochs", "1"], cwd=tmp_path, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout.split("each modality removed:")[1]
    assert "alert    digit   spoken" in table
    for condition in ("full input", "without audio", "without text", "without video"):
        assert condition in table
