"""mmlightning-tabular: columns learnt from training values, missing and unseen cells, the encoder contract,
corruptions, and a text + record model trained, exported, compared with ``predict`` and served."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

import mmlightning
from mmlightning.deploy.local import served
from mmlightning.errors import MMLightningError
from mmlightning.testing import check_encoder
from mmlightning_tabular import RecordProcessor, TabularEncoder, fit_columns
from mmlightning_tabular.processor import MISSING, UNKNOWN

WORDS = {"yes": ["great", "lovely", "perfect"], "no": ["awful", "poor", "broken"]}


def small(**extra) -> TabularEncoder:
    return TabularEncoder(dim=16, layers=1, heads=2, **extra)


def test_encoder_contract(tmp_path):
    encoder = small()
    check_encoder(encoder, encoder.example_values(tmp_path, 6), tmp_path)


def test_kinds_are_inferred_and_can_be_overridden():
    rows = [{"age": "41", "zip": 1000 + i % 3, "sex": ("m", "f")[i % 2], "flag": True} for i in range(10)]
    state = fit_columns(rows)
    assert state["kinds"] == {"age": "number", "zip": "number", "sex": "category", "flag": "category"}
    assert fit_columns(rows, kinds={"zip": "category"})["vocab"]["zip"] == ["1000", "1001", "1002"]
    with pytest.raises(ValueError, match="'sex' a number column, but it holds 'm'"):
        fit_columns(rows, kinds={"sex": "number"})
    with pytest.raises(ValueError, match=r"names column\(s\) \['nope'\]"):
        fit_columns(rows, kinds={"nope": "number"})


def test_numbers_categories_missing_and_unseen_values():
    train = [{"age": a, "city": c} for a, c in [(20, "rome"), (40, "oslo"), (None, "rome"), (60, float("nan"))]]
    processor = RecordProcessor(**{k: v for k, v in fit_columns(train).items() if k != "bins"})
    assert processor.mean["age"] == 40.0 and processor.vocab["city"] == ["rome", "oslo"]
    item = processor({"age": 40, "city": "oslo"}, Path("."), train=False)
    assert item["numbers"].tolist() == [0.0] and item["number_missing"].tolist() == [False]
    assert item["categories"].tolist() == [3]
    unseen = processor({"age": "", "city": "paris"}, Path("."), train=False)
    assert unseen["number_missing"].tolist() == [True] and unseen["numbers"].tolist() == [0.0]
    assert unseen["categories"].tolist() == [UNKNOWN]
    gone = processor({"age": float("nan"), "city": None}, Path("."), train=False)
    assert gone["number_missing"].tolist() == [True] and gone["categories"].tolist() == [MISSING]


def test_a_missing_cell_gets_its_own_learnt_embedding_not_a_zero():
    encoder = small().eval()
    encoder.fit([{"age": float(a), "city": c} for a, c in zip(range(20), "ab" * 10)])
    processor = encoder.processor()
    with torch.no_grad():
        rows = [{"age": None, "city": "a"}, {"age": encoder.fitted["mean"]["age"], "city": "a"}]
        out = encoder(processor.batch([processor(r, Path("."), False) for r in rows]))
    assert not torch.allclose(out.pooled[0], out.pooled[1])  # missing is not the mean (standardised 0)


def test_text_where_a_number_was_trained_names_the_column():
    processor = RecordProcessor(**{k: v for k, v in fit_columns([{"age": 1}, {"age": 2}]).items() if k != "bins"})
    with pytest.raises(ValueError, match=r"column 'age': expected a number \(it was numeric in training\), got 'old'"):
        processor.check({"age": "old"}, Path("."))
    with pytest.raises(ValueError, match="column.s. age absent"):
        processor.check({"other": 1}, Path("."))


def test_a_column_all_missing_and_a_column_with_one_category_train(tmp_path):
    values = [{"empty": None, "one": "same", "n": float(i), "flat": 3.0} for i in range(8)]
    encoder = small()
    check_encoder(encoder, values, tmp_path)
    assert encoder.fitted["kinds"]["empty"] == "category" and encoder.fitted["vocab"]["empty"] == []
    assert encoder.fitted["vocab"]["one"] == ["same"] and len(encoder.fitted["bins"]["flat"]) == 2


def test_two_hundred_columns_fit_and_encode():
    rng = random.Random(0)
    rows = [{f"c{j}": rng.random() if j % 2 else rng.choice("abc") for j in range(200)} for _ in range(64)]
    encoder = small()
    encoder.fit(rows)
    processor = encoder.processor()
    batch = processor.batch([processor(r, Path("."), True) for r in rows[:4]])
    features = encoder(batch)
    assert features.tokens.shape == (4, 201, 16) and torch.isfinite(features.tokens).all()


def test_tree_bins_split_where_the_target_changes_and_quantiles_do_not():
    rng = random.Random(0)
    xs = [rng.random() for _ in range(2000)]
    rows = [{"x": x} for x in xs]
    labels = ["high" if x > 0.43 else "low" for x in xs]
    for target in (labels, [10.0 * x + (5.0 if x > 0.43 else 0.0) for x in xs]):  # a class, then a number
        state = fit_columns(rows, bins=8, target=target)
        edges = [e * state["std"]["x"] + state["mean"]["x"] for e in state["bins"]["x"]]
        assert min(abs(e - 0.43) for e in edges) < 0.01, edges
    quantiles = fit_columns(rows, bins=8)["bins"]["x"]
    between = [e * state["std"]["x"] + state["mean"]["x"] for e in quantiles]
    assert min(abs(e - 0.43) for e in between) > 0.03  # eighths of [0, 1] miss 0.43
    tags = fit_columns(rows, bins=8, target=[["a"]] * len(rows))  # a list cannot steer a tree: quantiles
    assert tags["bins"]["x"] == quantiles
    unlabelled = fit_columns(rows, bins=8, target=[None] * 1999 + ["high"])
    assert len(unlabelled["bins"]["x"]) >= 2


def test_tree_binning_needs_to_know_which_head(tmp_path):
    values = [{"x": float(i)} for i in range(100)]
    with pytest.raises(ValueError, match=r"there are 2 \(\['a', 'b'\]\); set target"):
        small(binning="tree").fit_targets(values, {"a": [0] * 100, "b": [1] * 100})
    with pytest.raises(ValueError, match="target='c' is not a head"):
        small(binning="tree", target="c").fit_targets(values, {"a": [0] * 100})
    with pytest.raises(ValueError, match="binning must be 'quantile' or 'tree'"):
        small(binning="trees")


def test_a_fit_with_tree_binning_splits_on_the_training_targets(tmp_path):
    train, val = write_reviews(tmp_path, 200, 2), write_reviews(tmp_path, 32, 3)
    result = mmlightning.fit(
        train=str(train),
        val=str(val),
        encoders={
            "record": {
                "class_path": "TabularEncoder",
                "init_args": {"dim": 8, "layers": 1, "heads": 2, "binning": "tree"},
            }
        },
        fusion="ConcatFusion",
        heads={"label": "ClassificationHead"},
        max_epochs=1,
        trainer={"logger": False, "default_root_dir": str(tmp_path / "runs")},
        data={"batch_size": 32, "columns": {"record": ["age"]}},
    )
    state = mmlightning.load(result.checkpoint).model.encoders["record"].fitted
    edges = [e * state["std"]["age"] + state["mean"]["age"] for e in state["bins"]["age"]]
    assert len(edges) < 10 and any(35 < e < 60 for e in edges), edges  # "yes" is 25-35, "no" 60-70


@pytest.mark.parametrize("numeric", ["piecewise", "periodic", "linear"])
def test_each_number_embedding_trains(numeric, tmp_path):
    encoder = small(numeric=numeric)
    check_encoder(encoder, encoder.example_values(tmp_path, 5), tmp_path)


def test_corruptions_leave_severity_zero_clean_and_change_the_record():
    rows = [{"age": float(i), "city": "abcd"[i % 4]} for i in range(40)]
    processor = RecordProcessor(**{k: v for k, v in fit_columns(rows).items() if k != "bins"})
    clean = processor(rows[5], Path("."), False)
    for kind in processor.corruptions():
        same = processor.corrupt(rows[5], Path("."), kind, 0.0, torch.Generator().manual_seed(0))
        assert all(torch.equal(same[k], clean[k]) for k in clean), kind
        worst = processor.corrupt(rows[5], Path("."), kind, 1.0, torch.Generator().manual_seed(0))
        assert any(not torch.equal(worst[k], clean[k]) for k in clean), kind
    with pytest.raises(ValueError, match="no record corruption 'blur'"):
        processor.corrupt(rows[0], Path("."), "blur", 0.5, torch.Generator())
    assert processor.preview(rows[5], Path(".")) == {"age": 5.0, "city": "b"}


def write_reviews(folder: Path, count: int, seed: int) -> Path:
    """Reviews with a customer record: the label follows the text's word and, for short texts, the age."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        label = rng.choice(["yes", "no"])
        lines.append(
            {
                "id": f"{seed}-{i}",
                "text": f"{rng.choice(WORDS[label])} dress" if i % 5 else None,
                "age": None if i % 7 == 0 else (25 if label == "yes" else 60) + rng.random() * 10,
                "division": rng.choice(["general", "petite", None]),
                "rating": 5 if label == "yes" else 1,
                "label": label,
            }
        )
    path = folder / f"reviews{seed}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reviews")
    train, val = write_reviews(folder, 96, 0), write_reviews(folder, 32, 1)
    result = mmlightning.fit(
        train=str(train),
        val=str(val),
        encoders={
            "text": {"class_path": "TextEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 60}},
            "record": {"class_path": "TabularEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2}},
        },
        fusion={"class_path": "CrossAttentionFusion", "init_args": {"dim": 16, "heads": 2, "query": "text"}},
        heads={"label": {"class_path": "ClassificationHead", "init_args": {"class_weights": "balanced"}}},
        max_epochs=2,
        trainer={"logger": False, "default_root_dir": str(folder / "runs")},
        data={"batch_size": 16, "columns": {"record": ["*", "!rating"]}},
    )
    return result, folder, val


def test_the_record_reads_every_other_column_but_those_left_out(reviews):
    result, _, _ = reviews
    bundle = mmlightning.load(result.checkpoint).bundle
    assert bundle.columns["record"] == ["age", "division"]  # not the id, the text, the target or rating


def test_a_text_and_record_model_exports_as_it_predicts_and_serves(reviews, tmp_path):
    from mmlightning.deploy.export import export
    from mmlightning.deploy.runtime import Exported

    result, folder, val = reviews
    report = export(result.checkpoint, tmp_path / "onnx", "onnx", rows=str(val))
    assert report["parity"]["predictions_agree"] == 1.0
    rows = [json.loads(line) for line in val.read_text().splitlines()[:8]]
    rows[1] = {**rows[1], "age": None, "division": None}  # the whole record missing
    rows[2] = {**rows[2], "age": None}  # one cell missing
    rows[3] = {**rows[3], "division": "maternity"}  # a category never seen in training
    eager = mmlightning.load(result.checkpoint).predict(rows, root=folder)
    exported = Exported.load(tmp_path / "onnx").predict(rows, root=folder)
    assert [r["label"] for r in exported] == [r["label"] for r in eager]
    for got, want in zip(exported, eager):
        assert got["label_scores"] == pytest.approx(want["label_scores"], abs=1e-4)
    assert all(math.isfinite(v) for r in eager for v in r["label_scores"].values())


def test_a_record_row_is_served_as_json_fields(reviews):
    import requests

    result, folder, val = reviews
    row = json.loads(val.read_text().splitlines()[1])  # text and age present
    want = mmlightning.load(result.checkpoint).predict([row], root=folder)[0]
    with served("--ckpt_path", result.checkpoint) as url:
        body = {"text": row["text"], "age": row["age"], "division": row["division"]}
        got = requests.post(f"{url}/predict", json=body, timeout=30)
        assert got.status_code == 200, got.text
        assert got.json()["label_scores"] == pytest.approx(want["label_scores"], abs=1e-3)
        bad = requests.post(f"{url}/predict", json={**body, "age": "old"}, timeout=30)
        assert bad.status_code == 400 and "column 'age'" in bad.json()["detail"], bad.text


def test_prediction_with_text_in_a_number_column_names_the_row_and_column(reviews, tmp_path):
    result, folder, _ = reviews
    rows = [json.loads(line) for line in (folder / "reviews1.jsonl").read_text().splitlines()[:3]]
    rows[1]["age"] = "forty"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(MMLightningError) as caught:
        mmlightning.load(result.checkpoint).predict(str(bad))
    message = str(caught.value)
    assert "bad.jsonl:2: columns of 'record': column 'age': expected a number" in message, message


def test_a_frozen_record_encoder_is_cached_on_disk_and_reused(tmp_path):
    train, val = write_reviews(tmp_path, 48, 0), write_reviews(tmp_path, 16, 1)
    result = mmlightning.fit(
        train=str(train),
        val=str(val),
        encoders={"record": {"class_path": "TabularEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2}}},
        heads={"label": "ClassificationHead"},
        max_epochs=2,
        model={"freeze": ["record"], "cache_dir": str(tmp_path / "cache")},
        trainer={"logger": False, "default_root_dir": str(tmp_path / "runs")},
        data={"batch_size": 16, "columns": {"record": ["*", "!rating", "!text"]}},
    )
    assert [p.name.split("-")[0] for p in (tmp_path / "cache").glob("*.sqlite")] == ["record"]
    assert math.isfinite(result.metrics["val/label/acc"])


def test_a_record_previews_on_wandb_as_a_small_table():
    import wandb

    from mmlightning.wandb import _to_wandb, record_html

    shown = record_html({"age": 41, "site": "<b>back</b>", "sex": None})
    assert "<td>age</td><td>41</td>" in shown and "&lt;b&gt;back" in shown and "<td>sex</td><td></td>" in shown
    assert isinstance(_to_wandb({"age": 41}), wandb.Html)
