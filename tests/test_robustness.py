"""Robustness: corruption hooks per modality, removal as a null field, auxiliary heads, the robustness command."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from tuning_helpers import build, cli_fit, first_batch

from mmlightning.cli.main import main
from mmlightning.evaluate.robustness import robustness
from mmlightning.tuning import AuxiliaryHeads, ModalityDropout
from mmlightning.tuning.base import TuningError
from mmlightning.tuning.runner import extra_losses


@pytest.fixture(scope="module")
def trained(shapes_data, tmp_path_factory):
    tuning = [{"class_path": "AuxiliaryHeads", "init_args": {"weight": 0.5}}]
    return cli_fit(shapes_data, tmp_path_factory.mktemp("robust"), epochs=2, tuning=tuning)


@pytest.mark.parametrize("key", ["text", "image"])
def test_each_corruption_is_the_identity_at_severity_zero_and_changes_the_input_above_it(shapes_data, key):
    model, _ = build(shapes_data)
    processor = model.encoders[key].processor()
    row = json.loads((shapes_data / "val.jsonl").read_text().splitlines()[0])
    clean = processor(row[key], shapes_data, train=False)
    assert processor.corruptions()
    for kind in processor.corruptions():
        same = processor.corrupt(row[key], shapes_data, kind, 0.0, torch.Generator().manual_seed(0))
        assert all(torch.equal(clean[n], same[n]) for n in clean)
        worse = processor.corrupt(row[key], shapes_data, kind, 1.0, torch.Generator().manual_seed(0))
        assert any(clean[n].shape != worse[n].shape or not torch.equal(clean[n], worse[n]) for n in clean), kind


def test_the_report_removes_and_corrupts_each_modality_at_each_severity(trained, shapes_data, tmp_path):
    report = robustness(trained.checkpoint, tmp_path / "r", severities=[0.5, 1.0])
    names = [c["condition"] for c in report["conditions"]]
    assert names == [
        "full input",
        "without image",
        "without text",
        "image noise 0.5",
        "image noise 1",
        "image blur 0.5",
        "image blur 1",
        "text token_dropout 0.5",
        "text token_dropout 1",
        "text typos 0.5",
        "text typos 1",
    ]
    assert report["rows"] == 48 and report["metric"] == "label/acc"
    assert all(0 <= c["metrics"]["label"]["acc"] <= 1 for c in report["conditions"])
    for name in ("robustness.json", "robustness.md", "robustness.png"):
        assert (tmp_path / "r" / name).stat().st_size > 0
    again = robustness(trained.checkpoint, tmp_path / "again", severities=[0.5, 1.0])
    assert again["conditions"] == report["conditions"]  # seeded: the same table every time


def test_frozen_encoders_with_a_feature_cache_still_meet_the_corruptions(shapes_data, tmp_path):
    """The cache knows a sample by the raw values its processor read: an input made another way (corrupted) carries
    none, so it is encoded, never given the clean input's features."""
    from mmlightning.cache import FeatureCache
    from mmlightning.trained import load_run

    run = cli_fit(shapes_data, tmp_path, epochs=1, freeze=["image", "text"])
    trained = load_run(run.checkpoint)
    model, bundle = trained.model, trained.bundle
    assert sorted(model.frozen) == ["image", "text"]
    rows = [json.loads(line) for line in (shapes_data / "val.jsonl").read_text().splitlines()[:16]]
    clean = [bundle.item(row, shapes_data, ident=str(i)) for i, row in enumerate(rows)]
    generator = torch.Generator().manual_seed(0)
    processor = bundle.processors["image"]
    noisy = [
        {**item, "inputs": {**item["inputs"], "image": processor.corrupt(row["image"], shapes_data, "noise", 1.0,
         generator)}, "raw": {}}
        for item, row in zip(clean, rows)
    ]  # fmt: skip

    def logits(items):
        with torch.no_grad():
            return model(bundle.collate(items, shapes_data))["label"].logits

    uncached_clean, uncached_noisy = logits(clean), logits(noisy)
    model.cache = FeatureCache()  # what training gives a model with frozen encoders
    assert torch.allclose(logits(clean), uncached_clean, atol=1e-5) and model.cache.misses == 2 * len(rows)
    assert torch.allclose(logits(clean), uncached_clean, atol=1e-5) and model.cache.hits == 2 * len(rows)
    cached_noisy = logits(noisy)
    assert torch.allclose(cached_noisy, uncached_noisy, atol=1e-5) and model.cache.hits == 2 * len(rows)
    assert not torch.allclose(cached_noisy, uncached_clean, atol=1e-3)  # the noise reached the frozen encoder
    report = robustness(run.checkpoint, tmp_path / "r", severities=[1.0])
    assert report["conditions"][0]["condition"] == "full input"


def test_removing_a_modality_scores_as_rows_whose_field_is_null(trained, shapes_data, tmp_path):
    report = robustness(trained.checkpoint, tmp_path / "r", severities=[1.0])
    rows = [json.loads(line) for line in (shapes_data / "val.jsonl").read_text().splitlines()]
    (shapes_data / "val_no_image.jsonl").write_text("".join(json.dumps({**r, "image": None}) + "\n" for r in rows))
    nulls = robustness(
        trained.checkpoint, tmp_path / "n", rows=str(shapes_data / "val_no_image.jsonl"), severities=[1.0]
    )
    without = next(c for c in report["conditions"] if c["condition"] == "without image")
    assert nulls["conditions"][0]["metrics"] == without["metrics"]


def test_the_command_prints_the_table_and_logs_to_wandb_offline(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert (
        main(["robustness", "--ckpt_path", trained.checkpoint, "--out", str(tmp_path / "r"), "--severities", "1"]) == 0
    )
    out = capsys.readouterr().out
    assert "| full input |" in out and "| without text |" in out and "robustness.png" in out
    assert list((tmp_path / "r" / "wandb").glob("offline-run-*/run-*.wandb"))


def trained_forward(shapes_data, strategy):
    """A model with ``strategy``, its first batch, and its training-mode outputs, with dropout off so that a second
    forward of the same batch gives the same features."""
    model, dm = build(shapes_data, [strategy])
    model = model.model  # the strategies act on the model itself
    batch = first_batch(dm)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.train()
    return model, batch, model(batch)


def test_auxiliary_heads_add_their_weighted_losses_apart_and_answer_rows_with_one_modality(shapes_data):
    strategy = AuxiliaryHeads(weight=0.3, path="head")
    model, batch, outputs = trained_forward(shapes_data, strategy)
    total = sum(o.loss for o in outputs.values())
    losses = extra_losses(model, batch, outputs, total)
    assert sorted(losses) == ["auxiliaryheads/label__image", "auxiliaryheads/label__text"]
    encoded = model.encode(batch)
    strategy.transform_outputs(model, batch, encoded, outputs)  # the same features for both sides
    weighted = strategy.losses(model, batch, outputs, total)
    for key in ("image", "text"):
        alone = strategy.aux[f"label__{key}"](encoded[key], {key: encoded[key]}, batch).loss
        assert torch.allclose(weighted[f"label__{key}"], 0.3 * alone)
    model.eval()
    batch.inputs["image"]["present"][:4] = False  # the first four rows have text only
    with torch.no_grad():
        mixed = model(batch)["label"]
        encoded = model.encode(batch)
        text = strategy.aux["label__text"](encoded["text"], encoded, batch)
    assert torch.equal(mixed.predictions[:4], text.predictions[:4])
    assert torch.allclose(mixed.logits[:4], text.logits[:4])


def test_auxiliary_heads_distill_the_fused_answer_into_each_modality_path(shapes_data):
    strategy = AuxiliaryHeads(weight=0.0, distill=2.0, temperature=3.0, path="head")
    model, batch, outputs = trained_forward(shapes_data, strategy)
    losses = strategy.losses(model, batch, outputs, torch.tensor(0.0))
    assert sorted(losses) == ["label__image", "label__image/distill", "label__text", "label__text/distill"]
    assert float(losses["label__text"].detach()) == 0.0  # weight 0: only the taught part trains
    encoded = model.encode(batch)
    strategy.transform_outputs(model, batch, encoded, outputs)  # the same features for both sides
    losses = strategy.losses(model, batch, outputs, torch.tensor(0.0))
    fused = outputs["label"].logits.detach()
    with torch.no_grad():
        mine = strategy.aux["label__text"](encoded["text"], {"text": encoded["text"]}, batch).logits
    t = 3.0
    expected = (
        t
        * t
        * torch.nn.functional.kl_div(
            (mine / t).log_softmax(-1), (fused / t).log_softmax(-1), log_target=True, reduction="batchmean"
        )
    )
    assert torch.allclose(losses["label__text/distill"], 2.0 * expected, atol=1e-5)
    losses["label__text/distill"].backward()
    assert all(p.grad is None for p in model.heads.parameters())  # the teacher side is detached
    assert any(p.grad is not None for p in strategy.aux["label__text"].parameters())


def test_auxiliary_paths_through_their_own_fusion_are_the_unimodal_model(shapes_data):
    strategy = AuxiliaryHeads(path="fusion")
    model, dm = build(shapes_data, [strategy])
    model = model.model  # the strategies act on the model itself
    assert sorted(strategy.fusions) == ["image", "text"]
    for key in ("image", "text"):  # a ConcatFusion of the model's settings over one modality, then the head
        assert strategy.fusions[key].dims == {key: model.encoders[key].dim}
        assert strategy.aux[f"label__{key}"].in_dim == strategy.fusions[key].dim == model.fusion.dim
    batch = first_batch(dm)
    model.train()
    losses = extra_losses(model, batch, model(batch), torch.tensor(0.0))
    assert sorted(losses) == ["auxiliaryheads/label__image", "auxiliaryheads/label__text"]
    losses["auxiliaryheads/label__text"].backward()
    assert all(p.grad is not None for p in strategy.fusions["text"].parameters())
    model.eval()
    batch.inputs["image"]["present"][:4] = False
    with torch.no_grad():
        mixed = model(batch)["label"]
        encoded = model.encode(batch)
        text = strategy.aux["label__text"](strategy.fusions["text"]({"text": encoded["text"]}), encoded, batch)
    assert torch.allclose(mixed.logits[:4], text.logits[:4])
    assert sorted(AuxiliaryHeads().fusions) == []  # built with the model
    auto, _ = build(shapes_data, [AuxiliaryHeads()])  # "auto": ConcatFusion can be built for one modality
    assert sorted(auto.tuning[0].fusions) == ["image", "text"]
    with pytest.raises(TuningError, match="path must be 'auto', 'head' or 'fusion'"):
        AuxiliaryHeads(path="tower")
    from mmlightning_fusions import CrossAttentionFusion

    two = functools.partial(CrossAttentionFusion, dim=16, heads=2)  # needs two modalities
    crossed, _ = build(shapes_data, [AuxiliaryHeads()], fusion=two)
    assert sorted(crossed.tuning[0].fusions) == [] and crossed.tuning[0].aux["label__text"].in_dim == 16
    with pytest.raises(TuningError, match="path 'fusion' builds the model's fusion for 'image' alone.*use path: head"):
        build(shapes_data, [AuxiliaryHeads(path="fusion")], fusion=two)


def test_modality_dropout_rises_over_its_warmup_and_drops_only_the_named_modality(shapes_data):
    strategy = ModalityDropout({"image": 0.9}, warmup=3)
    model, dm = build(shapes_data, [strategy])
    model = model.model  # the strategies act on the model itself
    batch = first_batch(dm)
    model.train()
    scales = []
    for epoch in range(5):
        strategy.on_train_epoch_start(model, epoch)
        scales.append(strategy.scale())
    assert scales == [0.25, 0.5, 0.75, 1.0, 1.0]
    torch.manual_seed(0)
    dropped = strategy.transform_features(model, model.encode(batch))
    assert bool(dropped["text"].present.all()) and not bool(dropped["image"].present.all())
    with pytest.raises(Exception, match=r"rates name \['audio'\]"):
        build(shapes_data, [ModalityDropout({"audio": 0.5})])
