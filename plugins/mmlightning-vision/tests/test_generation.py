"""mmlightning-vision: the VQ-VAE tokenizer and the text-to-image generation head, on real tensors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from mmlightning import Batch, Encoder, Features, HeadContext
from mmlightning.errors import ConfigError
from mmlightning.testing import check_encoder
from mmlightning_vision import ImageGenerationHead, ReconstructionHead, VQVAEEncoder
from mmlightning_vision.generation import filtered


class Words(Encoder):
    """A stand-in text encoder: its tokens are given as they are."""

    def __init__(self, dim: int = 6) -> None:
        super().__init__()
        self.dim = dim
        self.set_fitted({})

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> Features:
        return Features.from_tokens(inputs["tokens"], None, inputs.get("present"))


def tokenizer(**extra: Any) -> VQVAEEncoder:
    torch.manual_seed(0)
    return VQVAEEncoder(**{"image_size": 8, "downsample": 1, "dim": 8, "codebook_size": 6, "hidden": 8, **extra})


def head(**extra: Any) -> tuple[ImageGenerationHead, VQVAEEncoder]:
    torch.manual_seed(0)
    vq = tokenizer()
    made = ImageGenerationHead(4, **{"width": 16, "layers": 2, "heads": 2, "dropout": 0.0, **extra})
    made.bind(HeadContext("picture", {"text": 6, "image": vq.dim}, encoders={"text": Words(), "image": vq}))
    made.fit([])
    return made.eval(), vq


def texts(rows: int = 3, length: int = 4, seed: int = 0) -> Features:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(rows, length, dtype=torch.bool)
    mask[0, 2:] = False  # a shorter text
    return Features.from_tokens(torch.randn(rows, length, 6, generator=g), mask)


def test_the_tokenizer_keeps_the_encoder_contract(tmp_path):
    vq = tokenizer()
    check_encoder(vq, vq.example_values(tmp_path, 4), tmp_path)


def test_the_quantiser_passes_gradients_straight_through_and_updates_its_codebook_only_in_training():
    vq = tokenizer()
    pixels = torch.rand(4, 1, 8, 8, requires_grad=True)
    present = torch.ones(4, dtype=torch.bool)
    features = vq({"pixels": pixels, "present": present})
    assert features.codes.shape == (4, 16) and features.grid == (4, 4) and features.loss is not None
    assert torch.allclose(features.tokens, vq.vectors(features.codes), atol=1e-5)  # the tokens are codebook entries
    features.tokens.pow(2).sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0  # through the argmin, to the encoder's input
    before = vq.quantizer._codebook.embed.clone()
    vq({"pixels": torch.rand(4, 1, 8, 8), "present": present})
    assert not torch.equal(before, vq.quantizer._codebook.embed)  # the EMA moved the codebook
    vq.eval()
    frozen = vq.quantizer._codebook.embed.clone()
    assert vq({"pixels": torch.rand(4, 1, 8, 8), "present": present}).loss is None
    assert torch.equal(frozen, vq.quantizer._codebook.embed)
    assert vq.decode(features.codes).shape == (4, 1, 8, 8)


def test_the_reconstruction_loss_is_the_pixel_error_plus_the_commitment_loss():
    vq = tokenizer()
    made = ReconstructionHead(8)
    made.bind(HeadContext("pixels", {"image": 8}, encoders={"image": vq}))
    made.fit([])
    pixels = torch.rand(3, 1, 8, 8)
    inputs = {"pixels": pixels, "present": torch.tensor([True, True, False])}
    features = vq(inputs)
    out = made(features, {"image": features}, Batch(inputs={"image": inputs}, ids=["a", "b", "c"]))
    rebuilt = vq.decode_vectors(features.tokens)
    assert torch.allclose(out.loss, F.mse_loss(rebuilt[:2], pixels[:2]) + features.loss)
    metrics = made.make_metrics()
    for metric in metrics.values():
        metric.update(*made.metric_inputs(out, Batch(inputs={"image": inputs}, ids=["a", "b", "c"])))
    used = metrics["codes"].compute()
    assert 0 < float(used[0]) <= 1 and float(used[1]) >= 1  # share of codes used, perplexity
    assert metrics["previews"].compute().shape == (2, 2, 1, 8, 8)  # two present pictures beside their rebuilding


def test_the_teacher_forced_loss_is_the_cross_entropy_of_each_next_code():
    made, vq = head()
    text = texts()
    codes = torch.tensor([[0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3]] * 3)
    picture = Features.from_tokens(vq.vectors(codes))
    picture.codes = codes
    made.train()
    made.text_drop = 0.0
    out = made(picture, {"text": text, "image": picture}, Batch(inputs={}, ids=["a", "b", "c"]))
    memory, mask = made.condition(text)
    logits = made.logits(codes, memory, mask)  # (3, 16, 6)
    by_hand = -sum(logits[b, i].log_softmax(-1)[codes[b, i]] for b in range(3) for i in range(16)) / (3 * 16)
    assert torch.allclose(out.loss, by_hand, atol=1e-5)
    changed = codes.clone()
    changed[:, 7:] = 5 - changed[:, 7:]
    again = made.logits(changed, memory, mask)
    assert torch.allclose(again[:, :8], logits[:, :8], atol=1e-5)  # code i sees codes before it only
    assert not torch.allclose(again[:, 8:], logits[:, 8:])
    assert math.isclose(float(made.last_bits.mean()), float(out.loss.detach()) / math.log(2), rel_tol=1e-5)


def sampled(made: ImageGenerationHead, seed: int = 0, **settings: Any) -> torch.Tensor:
    memory, mask = made.condition(texts())
    return made.sample(memory, mask, generator=torch.Generator().manual_seed(seed), **settings)


def test_sampling_with_a_seed_repeats_and_the_cache_changes_nothing():
    made, _ = head()
    first = sampled(made, temperature=1.0, top_k=0, top_p=1.0, guidance=2.0)
    assert first.shape == (3, 16) and first.min() >= 0 and first.max() < 6
    assert torch.equal(first, sampled(made, temperature=1.0, top_k=0, top_p=1.0, guidance=2.0))
    assert not torch.equal(first, sampled(made, seed=1, guidance=2.0))
    memory, mask = made.condition(texts())
    for settings in ({"guidance": 1.0}, {"guidance": 3.0, "top_k": 3}, {"guidance": 1.0, "top_p": 0.7}):
        cached = made.sample(memory, mask, torch.Generator().manual_seed(5), use_cache=True, **settings)
        plain = made.sample(memory, mask, torch.Generator().manual_seed(5), use_cache=False, **settings)
        assert torch.equal(cached, plain), settings


def test_guidance_at_zero_is_unconditional_sampling():
    made, _ = head()
    memory, mask = made.condition(texts())
    nulls = made.nulls(*mask.shape)
    guided = made.sample(memory, mask, torch.Generator().manual_seed(3), guidance=0.0)
    unconditional = made.sample(*nulls, torch.Generator().manual_seed(3), guidance=1.0)
    assert torch.equal(guided, unconditional)
    assert not torch.equal(guided, made.sample(memory, mask, torch.Generator().manual_seed(3), guidance=1.0))


def test_top_k_and_top_p_keep_the_likeliest_codes():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert (
        torch.isinf(filtered(logits, top_k=2)[0, 2:]).all() and torch.isfinite(filtered(logits, top_k=2)[0, :2]).all()
    )
    probs = logits.softmax(-1)[0]  # 0.64, 0.24, 0.09, 0.03
    kept = torch.isfinite(filtered(logits, top_p=float(probs[0] + 0.01))[0])
    assert kept.tolist() == [True, True, False, False]
    assert torch.isfinite(filtered(logits, top_p=0.5)[0]).tolist() == [True, False, False, False]


def test_rows_without_a_picture_are_drawn_and_rows_with_one_are_scored():
    made, vq = head(previews=0)
    text = texts()
    codes = torch.randint(0, 6, (3, 16), generator=torch.Generator().manual_seed(0))
    picture = Features.from_tokens(vq.vectors(codes), None, torch.tensor([True, False, True]))
    picture.codes = codes
    out = made(picture, {"text": text, "image": picture}, Batch(inputs={}, ids=["a", "b", "c"]))
    assert out.predictions.shape == (3, 1, 8, 8) and torch.isfinite(out.loss)
    assert torch.allclose(out.predictions[0], vq.decode(codes[:1])[0])  # scored rows show their own codes
    assert out.predictions.min() >= 0 and out.predictions.max() <= 1
    assert made.target().decode(out)[1].startswith("data:image/png;base64,")


def test_a_head_over_an_encoder_that_gives_no_codes_is_refused():
    made = ImageGenerationHead(4, width=16, layers=1, heads=2)
    made.bind(HeadContext("picture", {"text": 6, "image": 6}, encoders={"text": Words(), "image": Words()}))
    with pytest.raises(ConfigError, match="needs encoder 'image' to be an image tokenizer"):
        made.fit([])
    with pytest.raises(ConfigError, match="not a multiple of heads"):
        ImageGenerationHead(4, width=10, heads=4)


def test_a_training_step_backpropagates_and_validation_fills_the_metrics():
    made, vq = head(previews=2)
    text = texts()
    codes = torch.randint(0, 6, (3, 16), generator=torch.Generator().manual_seed(1))
    picture = Features.from_tokens(vq.vectors(codes))
    picture.codes = codes
    batch = Batch(inputs={}, ids=["a", "b", "c"])
    made.train()
    out = made(picture, {"text": text, "image": picture}, batch)
    out.loss.backward()
    assert all(p.grad is not None for p in made.blocks.parameters()) and made.metric_inputs(out, batch) is None
    made.eval()
    metrics = made.make_metrics()
    out = made(picture, {"text": text, "image": picture}, batch)
    for metric in metrics.values():
        metric.update(*made.metric_inputs(out, batch))
    assert float(metrics["bits_per_code"].compute()) > 0
    shown = metrics["samples"].compute()
    assert shown.shape == (2, 2, 1, 8, 8)  # the first two prompts: the real picture beside the drawn one
    columns, rows = made.metric_tables("samples", shown)["samples"]
    assert columns == ["real (tokenizer)", "drawn"] and rows[0][1].size == (32, 32)
    assert len(made.target().decode(out)) == 3
