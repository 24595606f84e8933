"""Few-shot classification (`mmlightning fewshot`, the Predictor's ``fewshot`` preset): k rows a class, the roles'
encoders, the features concatenated as they are and one linear layer on them; the result is an ordinary run."""

from __future__ import annotations

import json
import random
import re

import pytest

from mmlightning.auto.predictor import Predictor
from mmlightning.auto.splits import per_class
from mmlightning.cli.main import main
from mmlightning.errors import ConfigError
from mmlightning.trained import load_run


def separable(n: int, seed: int) -> list[dict]:
    """Two classes a clear margin apart along one number (and a second number that carries nothing)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rng.choice(["left", "right"])
        x = rng.uniform(1.0, 3.0) * (-1 if label == "left" else 1)
        out.append({"id": f"{seed}-{i}", "x": round(x, 3), "y": round(rng.uniform(-3, 3), 3), "label": label})
    return out


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fewshot")
    train, dev = folder / "train.jsonl", folder / "dev.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in separable(200, 0)))
    dev.write_text("".join(json.dumps(r) + "\n" for r in separable(100, 1)))
    return folder, train, dev


def test_k_rows_a_class_are_drawn_with_the_seed():
    rows = separable(60, 0)
    chosen = per_class(rows, "label", 5, 0, "train.jsonl")
    assert sorted(r["label"] for r in chosen) == ["left"] * 5 + ["right"] * 5
    assert chosen == per_class(rows, "label", 5, 0, "train.jsonl")
    assert chosen != per_class(rows, "label", 5, 1, "train.jsonl")
    assert [r["id"] for r in chosen] == sorted((r["id"] for r in chosen), key=lambda i: int(i.split("-")[1]))


def test_k_larger_than_a_class_is_refused_with_the_class_named():
    rows = separable(40, 0)[:30] + [{"id": "z", "x": 0.5, "y": 0, "label": "middle"}]
    with pytest.raises(ConfigError, match="k=3 rows a class, but in train.jsonl 'middle' has 1 row\\(s\\) of 'label'"):
        per_class(rows, "label", 3, 0, "train.jsonl")
    with pytest.raises(ConfigError, match="at least 1"):
        per_class(rows, "label", 0, 0, "train.jsonl")


def test_fewshot_needs_classes(tables, monkeypatch):
    folder, train, _ = tables
    monkeypatch.setenv("WANDB_MODE", "disabled")
    with pytest.raises(ConfigError, match="k rows a class needs classes; the label 'x' makes the task regression"):
        Predictor("x", "fewshot", folder / "regression").fit(str(train), k=5)


def test_the_command_recovers_a_separable_problem_as_a_run_export_takes(tables, tmp_path, capsys, monkeypatch):
    _, train, dev = tables
    monkeypatch.setenv("WANDB_MODE", "disabled")
    out = tmp_path / "fewshot"
    args = [
        "fewshot",
        "--train",
        str(train),
        "--label",
        "label",
        "--k",
        "10",
        "--out",
        str(out),
        "--evaluate",
        str(dev),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    scores = re.search(r"dev.jsonl: acc ([0-9.]+),.* auroc ([0-9.]+)", printed)
    assert scores and float(scores.group(1)) >= 0.95 and float(scores.group(2)) == 1.0, printed[-3000:]  # 10 a class
    predictor = Predictor.load(out)
    assert predictor.summary["rows"] == {"train": 20, "tuning": 20} and predictor.summary["k"] == 10
    config = (out / predictor.models[0]["config"]).read_text()
    assert "dim: null" in config and "hidden: null" in config  # the features as they are, one linear layer
    run = re.search(r"--ckpt_path (\S+)", printed).group(1)
    assert run == str(out / predictor.models[0]["checkpoint"])
    trained = load_run(run)  # an ordinary run
    assert [r["label"] for r in trained.predict(separable(20, 2))] == [r["label"] for r in separable(20, 2)]
    exported = tmp_path / "exported"
    assert main(["export", "--ckpt_path", run, "--format", "onnx", "--out", str(exported), "--rows", str(dev)]) == 0
    assert "predictions agree 100.0%" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stopped:  # a missing option stops the parser, exit status 2
        main(["fewshot", "--train", str(train), "--label", "label", "--out", str(tmp_path / "x")])
    assert stopped.value.code == 2 and "k" in capsys.readouterr().err
