"""The plugin guide's tabular encoder (docs/examples/tabular): the kit's checks, then a CLI fit from a wide CSV."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import yaml

from mmlightning.cli.main import main

from conftest import main_in

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "examples" / "tabular"))


def test_table_encoder_passes_the_kit(tmp_path):  # the tutorial's test, as a plugin author writes it
    from mmlightning.testing import check_encoder

    from tabular_example import TableEncoder

    rows = [{"age": str(20 + 3 * i), "sex": "fm"[i % 2], "bmi": None if i == 2 else 21.5 + i} for i in range(6)]
    check_encoder(TableEncoder(dim=8), rows, tmp_path)


def write_table(path: Path, count: int, seed: int, bad: bool = False) -> Path:
    """A wide CSV: the label is 'high' when age and smoking together say so (no single column decides it)."""
    rng = random.Random(seed)
    lines = ["id,age,smoker,bmi,region,label"]
    for i in range(count):
        age, smoker, bmi = rng.randint(20, 80), rng.choice(["yes", "no"]), round(rng.uniform(18, 35), 1)
        risk = (age > 50) != (smoker == "yes")
        lines.append(
            f"p{i},{'old' if bad and i == 3 else age},{smoker},{'' if i % 7 == 0 else bmi},{rng.choice('NSEW')},{'high' if risk else 'low'}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


CONFIG = {
    "seed_everything": 0,
    "trainer": {"max_epochs": 12, "enable_progress_bar": False, "enable_model_summary": False, "logger": False},
    "model": {
        "encoders": {"table": {"class_path": "tabular_example.TableEncoder", "init_args": {"dim": 32}}},
        "fusion": {"class_path": "SingleStreamFusion", "init_args": {"dim": 32, "layers": 1, "heads": 2}},
        "heads": {"label": "ClassificationHead"},
        "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01}},
    },
}


def test_a_wide_csv_trains_one_encoder_through_the_cli(tmp_path):
    data = {
        "train": str(write_table(tmp_path / "train.csv", 400, 0)),
        "val": str(write_table(tmp_path / "val.csv", 100, 1)),
        "batch_size": 32,
        "columns": {"table": ["age", "smoker", "bmi", "region"]},
    }
    results = main_in(tmp_path, {**CONFIG, "data": data}, "fit")
    assert results["val/label/acc"] >= 0.9  # only the pair (age, smoker) decides it


def test_a_glob_picks_columns_and_bad_cells_are_named_by_column(tmp_path, capsys):
    data = {
        "train": str(write_table(tmp_path / "train.csv", 60, 0)),
        "val": str(write_table(tmp_path / "val.csv", 20, 1, bad=True)),
        "batch_size": 32,
        "columns": {"table": "[abrs]*"},
    }  # age, smoker, bmi, region: not id or label
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump(
            {
                **CONFIG,
                "trainer": {**CONFIG["trainer"], "max_epochs": 1, "default_root_dir": str(tmp_path / "runs")},
                "data": data,
            }
        )
    )
    assert main(["fit", "--config", str(tmp_path / "config.yaml")]) == 2
    assert "val.csv:5: columns of 'table': age: expected a number, got 'old'" in capsys.readouterr().err
