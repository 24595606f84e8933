"""The LightningModule from Python: multi-task loss weighting, optimizer groups, schedule, checkpoint state."""

from __future__ import annotations

import functools

import lightning.pytorch as pl
import pytest
import torch

from mmlightning import MultimodalDataModule, MultimodalModule
from mmlightning.binding import bind
from mmlightning.errors import ConfigError
from mmlightning.optim import WarmupCosine, param_groups
from mmlightning_fusions import SingleStreamFusion
from mmlightning_heads import ClassificationHead
from mmlightning_text import TextEncoder
from mmlightning_vision import TimmEncoder


def build(**kwargs) -> MultimodalModule:
    encoders = {
        "text": TextEncoder(dim=16, layers=1, heads=2, vocab_size=80),
        "image": TimmEncoder("test_resnet", image_size=32, dim=16),
    }
    heads = kwargs.pop("heads", {"label": ClassificationHead})
    return MultimodalModule(encoders, functools.partial(SingleStreamFusion, dim=16, heads=2), heads, **kwargs)


def test_python_api_fit_and_predict(shapes_data, tmp_path):
    model = build()
    dm = MultimodalDataModule(
        train=str(shapes_data / "train.jsonl"),
        val=str(shapes_data / "val.jsonl"),
        predict=str(shapes_data / "val.jsonl"),
        batch_size=16,
    )
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        limit_train_batches=3,
    )
    trainer.fit(model, dm)
    assert model.heads["label"].labels == ["both_true", "colour_wrong", "shape_wrong"]
    assert {"val/label/acc", "val/label/f1_macro", "val/label/f1/shape_wrong"} <= set(trainer.callback_metrics)
    rows = [row for out in trainer.predict(model, dm) for row in dm.bundle.decode(out["outputs"], out["ids"])]
    assert len(rows) == 48 and rows[0]["id"] == "val_00000" and rows[0]["label"] in model.heads["label"].labels


def test_total_loss_is_the_weighted_sum(shapes_data):
    heads = {"label": ClassificationHead, "again": functools.partial(ClassificationHead, label_smoothing=0.2)}
    model = build(heads=heads, loss_weights={"label": 0.25, "again": 2.0})
    dm = MultimodalDataModule(train=str(shapes_data / "train.jsonl"), columns={"again": "label"}, batch_size=8)
    bind(model, dm)
    batch = next(iter(dm._loader("train", shuffle=False)))
    model.eval()
    with torch.no_grad():
        total, outputs = model._step(batch, "val")
    assert torch.allclose(total, 0.25 * outputs["label"].loss + 2.0 * outputs["again"].loss)
    assert not torch.allclose(outputs["label"].loss, outputs["again"].loss)


def test_evaluation_losses_are_the_mean_over_samples(shapes_data):
    model = build()
    dm = MultimodalDataModule(
        train=str(shapes_data / "train.jsonl"), val=str(shapes_data / "val.jsonl"), batch_size=20
    )  # 20, 20, 8
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False)
    bind(model, dm)
    metrics = trainer.validate(model, dm, verbose=False)[0]
    model.eval()
    with torch.no_grad():
        losses = [(model(batch)["label"].loss, len(batch)) for batch in dm._loader("val", shuffle=False)]
    expected = sum(loss * size for loss, size in losses) / sum(size for _, size in losses)
    assert [size for _, size in losses] == [20, 20, 8]
    assert metrics["val/loss"] == pytest.approx(float(expected), rel=1e-5)
    assert metrics["val/label/loss"] == pytest.approx(float(expected), rel=1e-5) and not model._loss_sums


def test_loss_weights_must_name_heads():
    with pytest.raises(ValueError, match="loss_weights names \\['labl'\\], which are not heads"):
        build(loss_weights={"labl": 1.0})


def test_checkpoint_state_restores_fitted_components(shapes_data):
    model = build()
    dm = MultimodalDataModule(train=str(shapes_data / "train.jsonl"))
    bind(model, dm)
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    fresh = build()
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    assert fresh.heads["label"].labels == model.heads["label"].labels
    assert fresh.encoders["text"].tokenizer.get_vocab() == model.encoders["text"].tokenizer.get_vocab()


def test_unfitted_model_without_training_data_says_what_to_do(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"text": "a red circle"}\n')
    model, dm = build(), MultimodalDataModule(predict=str(tmp_path / "x.jsonl"))
    trainer = pl.Trainer(logger=False, enable_progress_bar=False)
    with pytest.raises(ConfigError, match="--ckpt_path"):
        trainer.predict(model, dm)


def test_no_weight_decay_on_biases_and_norms():
    layer = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    decay, no_decay = param_groups(layer)
    assert [p.shape for p in decay["params"]] == [(4, 4)]
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0 and "weight_decay" not in decay


def test_warmup_cosine_schedule():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = WarmupCosine(optimizer, warmup=2, total_steps=10, min_ratio=0.1)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(0.5) and rates[1] == pytest.approx(1.0)
    assert rates[2] > rates[5] > rates[9] >= 0.1


def test_modality_dropout_only_while_training(shapes_data):
    model = build(modality_dropout=0.5)
    dm = MultimodalDataModule(train=str(shapes_data / "train.jsonl"), batch_size=32)
    bind(model, dm)
    batch = next(iter(dm._loader("train", shuffle=False)))
    seen = []
    model.fusion.register_forward_pre_hook(
        lambda module, args: seen.append(torch.stack([f.present for f in args[0].values()], 1))
    )
    model.train()
    model(batch)
    model.eval()
    model(batch)
    assert not seen[0].all() and seen[0].any(1).all()  # some modalities dropped, never all of a sample's
    assert seen[1].all()  # evaluation sees everything
    with pytest.raises(ValueError, match="modality_dropout must be in"):
        build(modality_dropout=1.0)
