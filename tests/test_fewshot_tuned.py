"""The fewshot preset's second model: the pretrained image encoder's top levels fine-tuned from the k-shot rows
(``Choice.tuned``), started from the linear probe's encoders, with ``GradualUnfreeze(most=..., keep_norm_stats=...)``;
and the parity check's rows read under the run's ``data_root``."""

from __future__ import annotations

import time
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import yaml
from torch.nn.modules.batchnorm import _BatchNorm
from tuning_helpers import build, trainer

from mmlightning.auto.predictor import Predictor
from mmlightning.auto.presets import Plan
from mmlightning.tuning import GradualUnfreeze, TuningError


def test_fewshot_plans_the_probe_then_the_image_encoders_top_levels_fine_tuned(shapes_data, tmp_path):
    predictor = Predictor("label", "fewshot", tmp_path / "p")
    _, root, _, roles = predictor._infer(str(shapes_data / "train.jsonl"), None)
    probe, tuned = predictor._plans(roles, root)
    assert (probe.name, probe.kind, tuned.name, tuned.kind) == ("linear probe", "frozen", "fine-tuned", "fine-tuned")
    assert tuned.starts_from == "linear probe" and not probe.starts_from
    image = tuned.config["model"]["encoders"]["image"]["init_args"]
    assert image["image_size"] >= 160 and image["data_args"] == {"crop_pct": 1.0}
    assert image["augment_args"]["scale"] == [0.5, 1.0] and "augment" not in image  # random crops and mirrors
    assert probe.config["model"]["encoders"]["image"]["init_args"]["augment"] is False
    assert "image" in probe.config["model"]["freeze"] and "image" not in tuned.config["model"].get("freeze", [])
    frozen_text = [k for k in probe.config["model"]["freeze"] if k != "image"]
    assert tuned.config["model"].get("freeze", []) == frozen_text  # an encoder with no tuned form stays frozen
    [unfreeze] = tuned.config["model"]["tuning"]
    assert unfreeze == {
        "class_path": "GradualUnfreeze",
        "init_args": {"parts": ["image"], "start": 0, "every": 1, "most": 3, "keep_norm_stats": True},
    }
    assert tuned.config["model"]["heads"]["label"]["init_args"]["label_smoothing"] == 0.1
    assert tuned.config["trainer"]["check_val_every_n_epoch"] == tuned.config["trainer"]["max_epochs"] == 20


def test_the_fine_tuned_model_starts_from_the_probes_encoders_or_not_at_all(tmp_path, monkeypatch):
    from mmlightning.auto import runner

    plan = Plan("fine-tuned", {"trainer": {}, "model": {"tuning": []}}, "val/label/acc", "max", "fine-tuned", "probe")
    now = time.monotonic()
    entry = runner.train_one(plan, 1, tmp_path, [{"name": "probe", "note": "stopped"}], now + 1e3, now, cache=None)
    assert entry["note"] == "not started: 'probe', which it starts from, has no checkpoint"
    seen = {}

    def fit(config, callbacks):
        seen.update(config)
        return {"checkpoint": ""}

    monkeypatch.setattr("mmlightning.training.fit", fit)
    done = [{"name": "probe", "checkpoint": "models/a/final.ckpt", "seconds": 5.0, "kind": "frozen"}]
    runner.train_one(plan, 1, tmp_path, done, now + 1e3, now, cache=None)
    [init] = seen["model"]["tuning"]
    assert init == {
        "class_path": "InitFrom",
        "init_args": {"checkpoint": str(tmp_path.resolve() / "models/a/final.ckpt"), "parts": ["encoders", "fusion"]},
    }
    written = yaml.safe_load((tmp_path / "configs" / "2-fine_tuned.yaml").read_text())
    assert written["model"]["tuning"] == [init]  # the config on disk re-runs as it trained
    assert (
        runner.ranked([{"name": "a", "score": 1.0, "mode": "max"}, {"name": "b", "score": 0.5}], "fewshot")[0]["name"]
        == "b"
    )  # fewshot's last model predicts: its tuning rows are its training rows


def test_gradual_unfreezing_stops_at_most_levels_and_can_keep_every_batch_norms_statistics(shapes_data, tmp_path):
    strategy = GradualUnfreeze(["image"], start=0, every=1, most=2, keep_norm_stats=True)
    model, dm = build(shapes_data, [strategy])
    image = model.model.encoders["image"]
    norms = [m for m in image.modules() if isinstance(m, _BatchNorm)]
    seen: list[tuple[int, bool]] = []
    trained: list[int] = []

    class Watch(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                seen.append((strategy.levels, any(m.training for m in norms)))
                trained.append(sum(p.requires_grad for p in image.parameters()))

    trainer(tmp_path, epochs=4, enable_checkpointing=False, callbacks=[Watch()]).fit(model, dm)
    assert [levels for levels, _ in seen] == [1, 2, 2, 2]  # one level, then two, never more
    assert not any(training for _, training in seen)  # no batch norm updates its statistics, trained ones neither
    assert 0 < trained[0] < trained[1] == trained[3] < len(list(image.parameters()))  # the rest stays frozen
    with pytest.raises(TuningError, match="most >= 1"):
        GradualUnfreeze(["image"], most=0)


def test_the_parity_rows_of_a_run_are_read_under_its_data_root(tmp_path):
    from mmlightning.trained import example_rows

    val = tmp_path / "manifests" / "val.jsonl"
    val.parent.mkdir()
    val.write_text('{"image": "a.png", "label": "x"}\n')
    run = SimpleNamespace(config={"data": {"val": str(val), "data_root": str(tmp_path / "media")}})
    run.manifest = lambda: str(val)
    rows, root = example_rows(run, None)  # type: ignore[arg-type]
    assert rows == [{"image": "a.png", "label": "x"}] and root == tmp_path / "media"
    assert example_rows(run, str(val))[1] == val.parent  # rows given: relative to their own folder
