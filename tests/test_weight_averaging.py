"""Lightning's weight-averaging callbacks (EMA, SWA) work with a model built from a config."""

from __future__ import annotations

from conftest import fit_shapes


def _fit(shapes_data, callback):
    trainer = {"logger": False, "callbacks": [callback]}
    return fit_shapes(shapes_data, max_epochs=2, trainer=trainer, data={"batch_size": 16, "num_workers": 1})


def test_ema_weight_averaging_trains_and_saves_the_average(shapes_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ema = {"class_path": "lightning.pytorch.callbacks.EMAWeightAveraging", "init_args": {"decay": 0.9}}
    run = _fit(shapes_data, ema)
    assert 0 <= run.metrics["val/label/acc"] <= 1
    assert run.predict(shapes_data / "val.jsonl")[0]["label"]


def test_the_average_is_taken_of_the_readied_model(shapes_data, tmp_path):
    """The callback copies the model in its setup: by then the strategies have added their adapters and the heads
    are sized from the data, and after fit the model holds the average."""
    import functools

    import torch
    from lightning.pytorch.callbacks import EMAWeightAveraging
    from tuning_helpers import trainer

    from mmlightning import MultimodalDataModule, MultimodalModule
    from mmlightning.tuning import LoRA
    from mmlightning_fusions import ConcatFusion
    from mmlightning_heads import ClassificationHead
    from mmlightning_text import TextEncoder

    torch.manual_seed(0)
    model = MultimodalModule(
        {"text": TextEncoder(dim=16, layers=1, heads=2, vocab_size=80)},
        functools.partial(ConcatFusion, dim=16),
        {"label": ClassificationHead},
        tuning=[LoRA(["text"], rank=4)],
    )
    assert not model.is_fitted
    dm = MultimodalDataModule(train=str(shapes_data / "train.jsonl"), batch_size=16)
    ema = EMAWeightAveraging(decay=0.5)
    trainer(tmp_path, epochs=2, callbacks=[ema]).fit(model, dm)
    average = ema._average_model.module
    mine, theirs = dict(model.named_parameters()), dict(average.named_parameters())
    assert set(mine) == set(theirs) and any("lora_" in name for name in mine)
    assert all(torch.equal(mine[n], theirs[n]) for n in mine)  # fit ends with the average in the model
    assert average.heads["label"].labels == model.heads["label"].labels and len(model.heads["label"].labels) > 1
