"""Prompt tuning, adversarial training and distillation on tiny models."""

from __future__ import annotations

import pytest
import torch
from tuning_helpers import build, cli_fit, first_batch, grads_after_step, tiny_bert

from mmlightning.tuning import Adversarial, Distillation, PromptTuning, TuningError

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("bert"))


def bert_encoder(folder):
    from mmlightning_text import PretrainedTextEncoder

    return PretrainedTextEncoder(model_path=str(folder), max_length=16)


@pytest.mark.parametrize("deep", [False, True])
def test_prompt_tuning_trains_only_the_prompts_and_padding_does_not_change_a_sample(shapes_data, bert, deep):
    model, dm = build(shapes_data, [PromptTuning(["text"], length=3, deep=deep)], text=bert_encoder(bert))
    batch = first_batch(dm)
    trained = grads_after_step(model, batch)
    assert "tuning.0.prompts.encoders__text" in trained
    assert not any(n.startswith("encoders.text.") for n in trained)
    assert model.tuning[0].prompts["encoders__text"].shape[0] == (2 if deep else 1)
    model.eval()
    encoder, processor = model.encoders["text"], model.encoders["text"].processor()
    short, long = "a red circle", "the shape is a small blue square and a green triangle"
    items = [processor(text.split(), ".", train=False) for text in (short, long)]
    together = encoder(processor.batch(items))
    alone = encoder(processor.batch(items[:1]))
    size = alone.tokens.shape[1]
    assert together.tokens.shape[1] > size  # the short one was padded beside the long one
    assert torch.allclose(together.tokens[0, :size], alone.tokens[0], atol=1e-5)
    plain = bert_encoder(bert).eval()(processor.batch(items[:1]))
    assert not torch.allclose(plain.tokens, alone.tokens, atol=1e-4)  # the prompts do change the output


def test_prompt_tuning_needs_a_transformer_stack(shapes_data):
    with pytest.raises(TuningError, match="has no Transformer stack"):
        build(shapes_data, [PromptTuning(["image"])])


def test_fgm_changes_no_weight_and_adds_the_perturbed_loss(shapes_data, bert):
    model, dm = build(shapes_data, [Adversarial(["text"], epsilon=0.5)], text=bert_encoder(bert))
    batch = first_batch(dm)
    model.train()
    torch.manual_seed(1)
    clean_model, _ = build(shapes_data, None, text=bert_encoder(bert))
    clean_model.load_state_dict(model.state_dict())
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    for module in (model, clean_model):  # no dropout: both passes see the same network
        module.eval()
    total, _ = model._step(batch, "train")
    clean, _ = clean_model._step(batch, "train")
    assert all(torch.equal(weights[n], p) for n, p in model.named_parameters())  # the extra pass moved nothing
    assert float(total) > float(clean) * 1.5  # clean + a perturbed loss that is no smaller than the clean one
    total.backward()
    assert model.encoders["text"].model.embeddings.word_embeddings.weight.grad is not None


def test_pgd_stays_inside_its_ball(shapes_data, bert):
    strategy = Adversarial(["text"], epsilon=0.3, method="pgd", steps=3, alpha=0.5)
    model, dm = build(shapes_data, [strategy], text=bert_encoder(bert))
    deltas = []
    original = strategy._hook

    def spy(module, args, output):
        if strategy._delta:
            deltas.append(next(iter(strategy._delta.values())).detach().clone())
        return original(module, args, output)

    strategy._hook = spy  # the hook was registered already: wrap the registered one
    target = model.encoders["text"].model.embeddings.word_embeddings
    target._forward_hooks.clear()
    target.register_forward_hook(spy)
    model.eval()
    model._step(first_batch(dm), "train")
    assert len(deltas) == 3
    assert all(float(d.flatten(1).norm(dim=1).max()) <= 0.3 + 1e-5 for d in deltas)


def test_adversarial_needs_an_embedding_or_a_layer_name(shapes_data):
    with pytest.raises(TuningError, match="no nn.Embedding.*at: model.conv_stem"):
        build(shapes_data, [Adversarial(["image"])])


@pytest.fixture(scope="module")
def teacher(shapes_data, tmp_path_factory):
    return cli_fit(shapes_data, tmp_path_factory.mktemp("teacher"), epochs=3).checkpoint


def test_a_student_with_only_the_kl_loss_moves_toward_its_teacher(shapes_data, teacher):
    strategy = Distillation(teacher, temperature=2.0)
    student, dm = build(shapes_data, [strategy], loss_weights={"label": 0.0})
    batch = first_batch(dm)
    optimizer = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=0.5)
    kl = []
    for _ in range(60):
        optimizer.zero_grad()
        student.train()
        total, outputs = student._step(batch, "train")
        kl.append(float(total))
        total.backward()
        optimizer.step()
    assert kl[-1] < 0.2 * kl[0]
    student.eval()
    mine, theirs = (
        student(batch)["label"].logits.softmax(-1),
        strategy.teacher(student)(batch)["label"].logits.softmax(-1),
    )
    assert float((mine - theirs).abs().max()) < 0.1  # its probabilities are the teacher's


def test_a_teacher_with_other_labels_is_refused(shapes_data, teacher):
    student, _ = build(shapes_data, [Distillation(teacher)])
    student.heads["label"].set_fitted({"labels": ["a", "b"]})
    with pytest.raises(TuningError, match="head 'label' of the teacher learnt.*same classes"):
        student.tuning[0].teacher(student)
    with pytest.raises(TuningError, match=r"weights name \['other'\], not heads"):
        build(shapes_data, [Distillation(teacher, weights={"other": 1.0})])[0].tuning[0].teacher(student)
