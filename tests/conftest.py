"""Shared fixtures: a small image + text dataset on disk, and fake plugin distributions."""

from __future__ import annotations

import importlib
import json
import os
import random
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "quickstart"))
make_dataset = importlib.import_module("make_dataset")


@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory) -> Path:
    """The quickstart dataset, small: 96 train and 48 val rows with PNG images."""
    out = tmp_path_factory.mktemp("shapes")
    rng = random.Random(0)
    make_dataset.write_split(out, "train", 96, rng)
    make_dataset.write_split(out, "val", 48, rng)
    return out


def fit_shapes(shapes_data: Path, **overrides):
    """``mmlightning.fit`` on the shapes data with a small text + image model; keyword arguments override its own."""
    import mmlightning

    args = {
        "train": str(shapes_data / "train.jsonl"),
        "val": str(shapes_data / "val.jsonl"),
        "encoders": {
            "text": {"class_path": "TextEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 80}},
            "image": {"class_path": "TimmEncoder", "init_args": {"model_name": "test_resnet", "image_size": 32}},
        },
        "heads": {"label": "ClassificationHead"},
        "max_epochs": 1,
        "trainer": {"logger": False},
        "data": {"batch_size": 16},
    }
    return mmlightning.fit(**{**args, **overrides})


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def write_image(path: Path, size: int = 32) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (200, 30, 30)).save(path)
    return path.name


def make_plugin(site: Path, name: str, source: str, version: str = "1.0") -> None:
    """A plugin distribution as pip would install it: a module and a dist-info with its entry point."""
    (site / f"{name}.py").write_text(source, encoding="utf-8")
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[mmlightning]\n{name} = {name}\n", encoding="utf-8")


@pytest.fixture()
def plugin_site(tmp_path, monkeypatch):
    """A folder on sys.path where tests install fake plugins; the plugin cache is reset around each test."""
    import mmlightning.plugins as plugins

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(plugins, "_loaded", None)
    yield site
    for module in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[module]


def main_in(work: Path, config: dict, *args: str) -> dict:
    """Write ``config`` to WORK/config.yaml and run ``mmlightning ARGS --config it`` from WORK, as a user would;
    returns the metrics ``--results_path`` wrote (fit, validate, test) or {}."""
    import yaml

    from mmlightning.cli.main import main

    path, results = work / "config.yaml", work / f"{args[0]}.json"
    path.write_text(yaml.safe_dump(config))
    extra = [f"--results_path={results}"] if args[0] in ("fit", "validate", "test") else []
    cwd = Path.cwd()
    os.chdir(work)
    try:
        assert main([args[0], "--config", str(path), *args[1:], *extra]) == 0
    finally:
        os.chdir(cwd)
    return json.loads(results.read_text()) if extra else {}
