"""Fine-tuning strategies on tiny models: exactly the intended parameters train, at the intended rates."""

from __future__ import annotations

import pytest
import torch
from tuning_helpers import build, first_batch, grads_after_step, trainer

from mmlightning.tuning import Freeze, GradualUnfreeze, LayerwiseLRDecay, LoRA, TuningError
from mmlightning.tuning.runner import param_groups, report, scale_rates


def test_freezing_the_encoders_trains_only_the_fusion_and_head_and_freezes_batch_norm(shapes_data):
    model, dm = build(shapes_data, [Freeze(["encoders"])])
    trained = grads_after_step(model, first_batch(dm))
    assert trained and all(n.startswith(("fusion.", "heads.")) for n in trained)
    assert {n.split(".")[0] for n in trained} == {"fusion", "heads"}
    batch_norms = [m for m in model.encoders["image"].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert batch_norms and not any(m.training for m in batch_norms)
    assert model.model.frozen == ["image", "text"]  # whole encoders frozen: their features may be cached


def test_freezing_a_glob_freezes_just_those_weights(shapes_data):
    model, dm = build(shapes_data, [Freeze(["encoders.text.stack.layers.0.*", "fusion"])])
    trained = grads_after_step(model, first_batch(dm))
    assert not any(n.startswith(("encoders.text.stack.layers.0.", "fusion.")) for n in trained)
    assert any(n.startswith("encoders.text.stack.layers.1.") for n in trained)
    assert model.model.frozen == []


def test_a_submodule_path_may_start_with_the_encoder_key(shapes_data):
    model, dm = build(shapes_data, [Freeze(["text.stack.layers.0", "image"])])
    trained = grads_after_step(model, first_batch(dm))
    assert not any(n.startswith(("encoders.text.stack.layers.0.", "encoders.image.")) for n in trained)
    assert any(n.startswith("encoders.text.stack.layers.1.") for n in trained)
    assert not model.encoders["text"].stack.layers[0].training  # a whole module frozen runs in eval mode
    assert model.model.frozen == ["image"]


def test_a_part_that_does_not_exist_names_the_parts_that_do(shapes_data):
    with pytest.raises(
        TuningError, match=r"part 'encoders.txt' matches nothing.*encoders.image, encoders.text, fusion, heads.label"
    ):
        build(shapes_data, [Freeze(["encoders.txt"])])


def test_layerwise_decay_gives_each_depth_its_rate(shapes_data):
    model, _ = build(shapes_data, [LayerwiseLRDecay(["text"], decay=0.5)])
    optimizer = torch.optim.AdamW(param_groups(model.model), lr=1.0)
    scale_rates(optimizer)
    rate = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.model.named_parameters())
    text = "encoders.text."
    assert rate[id(named[text + "stack.layers.1.attn.q.weight"])] == pytest.approx(0.5)  # top block
    assert rate[id(named[text + "stack.layers.0.attn.q.weight"])] == pytest.approx(0.25)
    embedding = next(n for n in named if n.startswith(text) and "embed" in n)
    assert rate[id(named[embedding])] == pytest.approx(0.125)  # below the 2 blocks
    assert rate[id(named[text + "stack.norm.weight"])] == pytest.approx(1.0)  # above them
    assert all(rate[id(p)] == 1.0 for n, p in named.items() if n.startswith(("heads.", "encoders.image.")))
    _, groups = report(model.model, optimizer)
    assert sorted({round(g[1], 4) for g in groups}) == [0.125, 0.25, 0.5, 1.0]


def test_gradual_unfreezing_follows_its_schedule_and_every_parameter_is_in_the_optimizer(shapes_data, tmp_path):
    model, dm = build(shapes_data, [GradualUnfreeze(["text"], start=1, every=1)])
    text = {n: p for n, p in model.model.named_parameters() if n.startswith("encoders.text.")}
    seen: list[set[str]] = []

    import lightning.pytorch as pl

    class Watch(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                seen.append({n for n, p in text.items() if p.requires_grad})
                in_optimizer = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
                assert all(id(p) in in_optimizer for p in text.values())

    trainer(tmp_path, epochs=4, enable_checkpointing=False, callbacks=[Watch()]).fit(model, dm)
    assert seen[0] == set()  # epoch 0: the text encoder is frozen
    assert any(".stack.layers.1." in n for n in seen[1]) and any(".stack.norm." in n for n in seen[1])  # the top
    assert not any(".stack.layers.0." in n for n in seen[1])
    assert any(".stack.layers.0." in n for n in seen[2]) and not any("embed" in n for n in seen[2])
    assert any("embed" in n for n in seen[3]) and seen[3] == set(text)  # all of it


def test_lora_trains_only_its_adapters_and_merges_into_the_same_outputs(shapes_data):
    pytest.importorskip("peft")
    model, dm = build(shapes_data, [LoRA(["text"], rank=4)])
    batch = first_batch(dm)
    trained = grads_after_step(model, batch)
    text = [n for n in trained if n.startswith("encoders.text.")]
    assert text and all("lora_" in n for n in text)
    assert any(n.startswith("fusion.") for n in trained)
    with torch.no_grad():  # adapters start at zero (B = 0): move them so that merging has something to fold
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    model.eval()
    before = model(batch)["label"].logits
    model.tuning[0].merge(model.model)
    assert not any("lora_" in n for n, _ in model.named_parameters())
    after = model(batch)["label"].logits
    assert torch.allclose(before, after, atol=1e-5)


def test_lora_on_a_part_without_linear_layers_says_so(shapes_data):
    pytest.importorskip("peft")
    with pytest.raises(TuningError, match="no linear layers.*conv=True"):
        build(shapes_data, [LoRA(["encoders.image.model.conv1"])])
