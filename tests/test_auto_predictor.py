"""The Predictor end to end on generated tables: fit within a time limit, leaderboard, predict, evaluate, save and
load in a fresh process; and `mmlightning auto` on the command line."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import time

import pytest

from mmlightning.auto.predictor import Predictor


def rows(n: int, seed: int = 0) -> list[dict]:
    """A learnable table: the label follows from a number and a category, with some noise."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x, shop = rng.uniform(-2, 2), rng.choice(["north", "south", "east", "west"])
        score = x + (0.8 if shop in ("north", "east") else -0.8) + rng.gauss(0, 0.5)
        out.append(
            {
                "id": i,
                "x": round(x, 3),
                "shop": shop,
                "noise": round(rng.random(), 3),
                "label": "high" if score > 0 else "low",
            }
        )
    return out


def quiet(**extra):
    return {"WANDB_MODE": "disabled", **extra}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("auto")
    train, dev = folder / "train.jsonl", folder / "dev.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows(600)))
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows(200, seed=1)))
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "disabled")
    # balanced: one model (a table has no pretrained encoder to fine-tune); fast's three are tested below
    predictor = Predictor(label="label", preset="balanced", path=folder / "predictor").fit(str(train), time_limit=120)
    mp.undo()
    return predictor, dev


def test_fit_learns_and_reports(fitted):
    predictor, dev = fitted
    board = predictor.leaderboard()
    assert len(board) == 1 and board[0]["predicts"]
    assert board[0]["score"] > 0.75 and board[0]["metric"] == "val/label/acc"
    scores = predictor.evaluate(str(dev))
    assert scores["acc"] > 0.75 and {"balanced_acc", "f1_macro", "auroc"} <= set(scores)
    summary = predictor.fit_summary()
    assert summary["rows"] == {"train": 540, "tuning": 60}  # 10% held out, by class
    roles = {c["column"]: c["role"] for c in summary["roles"]["columns"]}
    assert roles == {"label": "label", "id": "id", "x": "numeric", "shop": "categorical", "noise": "numeric"}
    config = (predictor.path / "configs" / "1-concat.yaml").read_text()
    assert "TabularEncoder" in config and "ModelCheckpoint" in config  # an ordinary config, to re-run


def test_predictions_survive_save_and_load_in_a_fresh_process(fitted, tmp_path):
    predictor, dev = fitted
    before = predictor.predict_proba(str(dev))
    labels = predictor.predict(str(dev))
    assert len(before) == len(labels) == 200 and set(labels) <= {"high", "low"}
    saved = predictor.save(tmp_path / "saved")
    code = (
        "import json, sys; import mmlightning; "
        f"p = mmlightning.Predictor.load({str(saved)!r}); print(json.dumps(p.predict_proba({str(dev)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, **quiet()},
    )
    after = json.loads(out.stdout.strip().splitlines()[-1])
    assert after == before


def test_a_dataframe_in_and_pandas_out(fitted):
    pd = pytest.importorskip("pandas")
    predictor, dev = fitted
    frame = pd.read_json(dev, lines=True).drop(columns=["label"])
    labels = predictor.predict(frame)
    probabilities = predictor.predict_proba(frame)
    assert isinstance(labels, pd.Series) and len(labels) == 200
    assert list(probabilities.columns) == ["high", "low"] or set(probabilities.columns) == {"high", "low"}
    assert probabilities.sum(axis=1).round(4).eq(1).all()


def test_time_limit_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows(20000)))
    start = time.monotonic()
    predictor = Predictor(label="label", preset="fast", path=tmp_path / "p").fit(str(train), time_limit=20)
    took = time.monotonic() - start
    assert took <= 22, f"fit took {took:.1f} s for time_limit=20"
    first = predictor.leaderboard()[0]
    assert (
        first["note"] == "stopped by the time limit" and first["score"] is not None and not math.isnan(first["score"])
    )


def test_the_command_prints_roles_and_leaderboard(tmp_path):
    train = tmp_path / "train.csv"
    lines = ["id,x,shop,noise,label"] + [f"{r['id']},{r['x']},{r['shop']},{r['noise']},{r['label']}" for r in rows(300)]
    train.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmlightning.cli.main",
            "auto",
            "--train",
            str(train),
            "--label",
            "label",
            "--preset",
            "balanced",
            "--time_limit",
            "60",
            "--out",
            str(tmp_path / "p"),
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **quiet()},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "categorical" in out.stdout and "leaderboard" in out.stdout and "predictor saved in" in out.stdout


def test_the_command_refuses_a_bad_label_in_one_line(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("x,label\n1,a\n2,a\n3,a\n")
    out = subprocess.run(
        [sys.executable, "-m", "mmlightning.cli.main", "auto", "--train", str(train), "--label", "label"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **quiet()},
    )
    assert out.returncode == 2 and "has one value" in out.stderr and "Traceback" not in out.stderr


def test_fast_on_pictures_and_text_shares_features_and_ensembles(shapes_data, tmp_path, monkeypatch, capfd):
    """The quickstart's pictures and sentences: pretrained encoders frozen, their features computed by the first
    model only; five models, their ensemble scored on the tuning rows."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    # the captions are 41 phrasings repeated over 96 rows: categories, unless told (a role given)
    predictor = Predictor(label="label", preset="fast", path=tmp_path / "p", column_types={"text": "text"})
    train = [json.loads(line) for line in (shapes_data / "train.jsonl").read_text().splitlines()][:48]
    val = [json.loads(line) for line in (shapes_data / "val.jsonl").read_text().splitlines()][:24]
    predictor.fit(train, tuning_data=val, root=shapes_data)
    roles = {c["column"]: c["role"] for c in predictor.fit_summary()["roles"]["columns"]}
    assert roles["text"] == "text" and roles["image"] == "image"
    names = [m["model"] for m in predictor.leaderboard()]
    assert {"concat", "late", "concat, seed 1", "late, seed 1", "concat, seed 2", "ensemble of 5"} == set(names)
    logged = capfd.readouterr().err
    for name in ("late", "concat, seed 1", "concat, seed 2"):  # from a later model's start to its first epoch's end
        start = logged.index(f"training {name} (")
        first_epoch = logged[start : logged.index("epoch 1/10", start)]
        assert first_epoch.count("features are cached; the loader stops reading") == 4  # text, image; train, val
    assert len(predictor.predict(val, root=shapes_data)) == 24


def test_tags_per_word_train_a_tagger(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    rng = random.Random(0)
    rows = []
    for i in range(240):
        words = [rng.choice(["Anna", "Paris", "went", "to", "the", "IBM", "office", "with", "Bob"]) for _ in range(6)]
        tags = [
            "B-PER" if w in ("Anna", "Bob") else "B-LOC" if w == "Paris" else "B-ORG" if w == "IBM" else "O"
            for w in words
        ]
        rows.append({"sentence": i, "tokens": words, "tags": tags})
    predictor = Predictor(label="tags", preset="fast", path=tmp_path / "p").fit(rows, time_limit=120)
    assert predictor.fit_summary()["roles"]["task"] == "ner"
    assert [m["model"] for m in predictor.leaderboard()] == ["tagger"]
    found = predictor.predict([{"sentence": 0, "tokens": ["Anna", "went", "to", "Paris"]}])
    assert found == [["B-PER", "O", "O", "B-LOC"]]
