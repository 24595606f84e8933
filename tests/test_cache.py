"""The frozen-encoder feature cache: invisible to results, never stale, and used only where it can be."""

from __future__ import annotations

import functools

import lightning.pytorch as pl
import torch

from mmlightning import Features, MultimodalDataModule, MultimodalModule
from mmlightning_fusions import ConcatFusion
from mmlightning_heads import ClassificationHead
from mmlightning_text import TextEncoder
from mmlightning_vision import TimmEncoder


class Losses(pl.Callback):
    def __init__(self) -> None:
        self.seen: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen.append(float(outputs["loss"]))


def fit(shapes_data, tmp_path, cache: bool, augment: bool = False, cache_dir=None):
    pl.seed_everything(0)
    encoders = {
        "text": TextEncoder(dim=16, layers=1, heads=2, vocab_size=80),
        "image": TimmEncoder("test_resnet", image_size=32, augment=augment),
    }
    model = MultimodalModule(
        encoders,
        functools.partial(ConcatFusion, dim=16),
        {"label": ClassificationHead},
        freeze=["text", "image"],
        cache_frozen=cache,
        cache_dir=cache_dir,
    )
    dm = MultimodalDataModule(train=str(shapes_data / "train.jsonl"), val=str(shapes_data / "val.jsonl"), batch_size=16)
    losses = Losses()
    trainer = pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        callbacks=[losses],
        deterministic=True,
    )
    trainer.fit(model, dm)
    return model, losses.seen, trainer.callback_metrics


def test_the_cache_gives_the_losses_of_no_cache_and_encodes_each_sample_once(shapes_data, tmp_path):
    cached, with_cache, metrics = fit(shapes_data, tmp_path, cache=True)
    _, without, plain = fit(shapes_data, tmp_path, cache=False)
    assert torch.allclose(torch.tensor(with_cache), torch.tensor(without), atol=1e-6, rtol=0)
    assert abs(float(metrics["val/loss"]) - float(plain["val/loss"])) < 1e-6
    cache = cached.cache
    assert cache.misses == 2 * (96 + 48)  # two encoders: each train and val sample once (sanity check: val's first 32)
    assert cache.hits == 2 * (32 + 96 + 48)  # val reuses the sanity check's, the second epoch everything
    assert not any(p.requires_grad for p in cached.encoders["image"].parameters())


def test_once_every_sample_is_cached_the_loader_stops_decoding_its_inputs(shapes_data, tmp_path, monkeypatch):
    from mmlightning_vision.processor import ImageProcessor

    decoded: list[bool] = []
    original = ImageProcessor.__call__
    monkeypatch.setattr(
        ImageProcessor, "__call__", lambda self, *a, **k: decoded.append(a[2]) or original(self, *a, **k)
    )
    cached, with_cache, _ = fit(shapes_data, tmp_path, cache=True)
    assert decoded.count(True) == 96  # training pictures read in the first epoch only
    assert decoded.count(False) == 32 + 48  # the sanity check's, then the first validation's; none after
    assert cached.cache.misses == 2 * (96 + 48)
    _, without, _ = fit(shapes_data, tmp_path, cache=False)
    assert torch.allclose(torch.tensor(with_cache), torch.tensor(without), atol=1e-6, rtol=0)


def test_new_weights_never_meet_old_features(shapes_data, tmp_path):
    model, _, _ = fit(shapes_data, tmp_path, cache=True)
    encoder = model.encoders["image"]
    assert "image" in model.cache.entries
    model.cache.check("image", encoder)
    assert "image" in model.cache.entries  # same weights: kept
    with torch.no_grad():
        next(encoder.parameters()).add_(0.1)
    model.cache.check("image", encoder)
    assert "image" not in model.cache.entries


def test_an_augmenting_processor_is_never_cached(shapes_data, tmp_path):
    model, _, _ = fit(shapes_data, tmp_path, cache=True, augment=True)
    assert "image" not in model.cache.entries and "text" in model.cache.entries


def test_a_disk_cache_gives_the_same_losses_and_a_later_run_reuses_it(shapes_data, tmp_path):
    from mmlightning.cache import DiskStore

    _, in_memory, _ = fit(shapes_data, tmp_path, cache=True)
    first, on_disk, _ = fit(shapes_data, tmp_path, cache=True, cache_dir=tmp_path / "cache")
    assert torch.allclose(torch.tensor(on_disk), torch.tensor(in_memory), atol=1e-6, rtol=0)
    assert isinstance(first.cache.entries["image"], DiskStore) and len(list((tmp_path / "cache").glob("*.sqlite"))) == 2
    import sqlite3

    from mmlightning.cache import unpack

    for path in (tmp_path / "cache").glob("*.sqlite"):  # each row stores its own sample, not its batch's storage
        for (blob,) in sqlite3.connect(path).execute("SELECT value FROM features"):
            tensors = [t for t in unpack(blob).values() if isinstance(t, torch.Tensor)]
            assert len(blob) < sum(t.numel() * t.element_size() for t in tensors) + 1024
    again, reused, _ = fit(shapes_data, tmp_path, cache=True, cache_dir=tmp_path / "cache")
    assert again.cache.misses == 0 and torch.allclose(torch.tensor(reused), torch.tensor(in_memory), atol=1e-6, rtol=0)
    with torch.no_grad():
        next(again.encoders["image"].parameters()).add_(0.1)
    again.cache.check("image", again.encoders["image"])
    assert len(list((tmp_path / "cache").glob("image-*.sqlite"))) == 1  # new weights: a new file, once written
    assert again.cache.entries["image"].path.name not in {p.name for p in (tmp_path / "cache").glob("image-*")}


class Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch cache-payload-ran",))


def test_a_planted_or_corrupted_cache_file_is_set_aside_and_recomputed_and_never_runs(tmp_path, monkeypatch, caplog):
    import io
    import sqlite3

    from mmlightning.cache import FeatureCache, _digest, pack

    monkeypatch.chdir(tmp_path)
    cache = FeatureCache(tmp_path / "cache")

    class Tiny(torch.nn.Linear):
        def processor(self):
            return TextEncoder(dim=8).processor()  # its settings are part of the file's name

    encoder = Tiny(2, 3)
    cache.check("image", encoder)
    store = cache.entries["image"]
    calls = []

    def encode(inputs):
        calls.append(len(inputs["x"]))
        return Features.from_tokens(encoder(inputs["x"])[:, None], torch.ones(len(inputs["x"]), 1, dtype=torch.bool))

    inputs = {"x": torch.randn(2, 2), "present": torch.ones(2, dtype=torch.bool)}
    first = cache.encode("image", ["a", "b"], inputs, encode)
    store.flush()
    assert calls == [2] and torch.equal(cache.encode("image", ["a", "b"], inputs, encode).tokens, first.tokens)
    assert calls == [2]  # both read back from the file
    blob = io.BytesIO()
    torch.save({"tokens": Payload()}, blob)  # someone else writes a pickle into a shared cache_dir
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE features SET value = ? WHERE sample = ?", (blob.getvalue(), _digest("b")))
    with caplog.at_level("WARNING", logger="mmlightning.cache"):
        again = cache.encode("image", ["a", "b"], inputs, encode)
    assert not (tmp_path / "cache-payload-ran").exists()
    assert calls == [2, 2] and torch.allclose(again.tokens, first.tokens)  # computed again
    assert "holds an entry that is not a features blob" in caplog.text and store.path.name in caplog.text
    assert len(list((tmp_path / "cache").glob("*.corrupt-*"))) == 1 and store.path.exists()  # set aside, a new one
    store.flush()
    assert cache.encode("image", ["a", "b"], inputs, encode).tokens.shape == first.tokens.shape and calls == [2, 2]
    store.close()
    store.path.write_bytes(b"not a database at all" * 100)  # the file itself corrupted
    caplog.clear()
    with caplog.at_level("WARNING", logger="mmlightning.cache"):
        assert torch.allclose(cache.encode("image", ["a", "b"], inputs, encode).tokens, first.tokens)
    assert "is not a readable SQLite file" in caplog.text and calls == [2, 2, 2]
    assert len(list((tmp_path / "cache").glob("*.corrupt-*"))) == 2
    entry = {"tokens": torch.ones(2, 3), "mask": torch.ones(2, dtype=torch.bool), "pooled": torch.ones(3),
             "word_ids": None, "codes": None, "grid": (1, 2), "present": False}  # fmt: skip
    assert pack(entry)[:8] != b"PK\x03\x04"  # not a zip of pickles
    from mmlightning.cache import unpack

    back = unpack(pack(entry))
    assert back["grid"] == (1, 2) and back["present"] is False and torch.equal(back["tokens"], entry["tokens"])


def test_sample_attention_maps_run_in_the_trainers_precision_with_cached_bf16_features(shapes_data, tmp_path):
    """The samples table's attention maps take a second forward pass outside the validation step: with bf16 and a
    frozen encoder, the cached features are bf16 while the fusion's weights are fp32, so that pass must run in the
    trainer's precision context as the step does."""
    from mmlightning.callbacks import SamplePredictions
    from mmlightning_fusions import CrossAttentionFusion

    pl.seed_everything(0)
    model = MultimodalModule(
        {
            "text": TextEncoder(dim=16, layers=1, heads=2, vocab_size=80),
            "image": TimmEncoder("test_resnet", image_size=32, augment=False),
        },
        functools.partial(CrossAttentionFusion, dim=16, heads=2, query="text"),
        {"label": ClassificationHead},
        freeze=["image"],
        cache_frozen=True,
    )
    dm = MultimodalDataModule(train=str(shapes_data / "train.jsonl"), val=str(shapes_data / "val.jsonl"), batch_size=16)
    samples = SamplePredictions(count=4)
    trainer = pl.Trainer(
        max_epochs=2,
        precision="bf16-mixed",
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        callbacks=[samples],
        num_sanity_val_steps=0,
    )
    trainer.fit(model, dm)
    assert model.cache is not None and model.cache.hits > 0  # the second epoch's features came from the cache
    assert len(samples.rows) == 4 and samples.columns[-1] == "image (attention)"
