"""Several heads of every kind in one model, from the command line: fit, then predict from the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import main_in, write_rows


def with_more_targets(source: Path, out: Path) -> Path:
    """The shapes rows plus a list-of-tags column and a number column, both learnable from the image/text."""
    rows = [json.loads(line) for line in source.read_text().splitlines()]
    for row in rows:
        row["tags"] = [row["label"]] + (["ok"] if row["label"] == "both_true" else [])
        row["score"] = {"both_true": 1.0, "colour_wrong": 0.0, "shape_wrong": 0.5}[row["label"]] * 10
    return write_rows(out, rows)


def test_every_kind_of_head_trains_together_and_predicts(shapes_data, tmp_path):
    train = with_more_targets(shapes_data / "train.jsonl", shapes_data / "train_more.jsonl")
    val = with_more_targets(shapes_data / "val.jsonl", shapes_data / "val_more.jsonl")
    config = {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 1,
            "enable_progress_bar": False,
            "logger": False,
            "enable_model_summary": False,
            "default_root_dir": str(tmp_path),
        },
        "model": {
            "encoders": {
                "text": {
                    "class_path": "TextEncoder",
                    "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 100},
                },
                "image": {
                    "class_path": "TimmEncoder",
                    "init_args": {"model_name": "test_resnet", "image_size": 32, "dim": 16},
                },
            },
            "fusion": {"class_path": "LateFusion", "init_args": {"dim": 16, "combine": "learned"}},
            "heads": {
                "label": {"class_path": "ClassificationHead"},
                "align": {"class_path": "ContrastiveHead", "init_args": {"embed_dim": 8, "loss": "sigmoid"}},
                "match": {"class_path": "MatchingHead", "init_args": {"embed_dim": 8}},
                "patches": {"class_path": "MaskedPatchHead", "init_args": {"grid": 4, "rate": 0.25}},
                "tags": {"class_path": "MultiLabelHead"},
                "score": {"class_path": "RegressionHead"},
            },
            "loss_weights": {"align": 0.5},
        },
        "data": {"train": str(train), "val": str(val), "predict": str(val), "batch_size": 16},
    }
    results = main_in(tmp_path, config, "fit", "--trainer.enable_checkpointing=true")
    for name in (
        "label/acc",
        "align/R@1_image_to_text",
        "align/R@10_text_to_image",
        "tags/f1_micro",
        "tags/f1/ok",
        "score/mae",
        "score/r2",
        "match/acc",
        "patches/mse",
    ):
        assert f"val/{name}" in results, name
    main_in(
        tmp_path,
        config,
        "predict",
        f"--ckpt_path={results['checkpoint']}",
        f"--predictions_path={tmp_path / 'pred.jsonl'}",
    )
    rows = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert len(rows) == 48 and rows[0]["label"] in {"both_true", "colour_wrong", "shape_wrong"}
    assert set(rows[0]["tags"]) <= {"both_true", "colour_wrong", "shape_wrong", "ok"} and isinstance(
        rows[0]["score"], float
    )
    assert len(rows[0]["align"]["image"]) == 8 and len(rows[0]["align"]["text"]) == 8 and 0.0 <= rows[0]["match"] <= 1.0
