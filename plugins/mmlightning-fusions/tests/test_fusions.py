"""mmlightning-fusions: the contract for every fusion, and what each one specifically promises."""

from __future__ import annotations

import pytest
import torch

import mmlightning_fusions
from mmlightning.testing import check_fusion, random_features
from mmlightning_fusions import (
    BottleneckFusion,
    ConcatFusion,
    CrossAttentionFusion,
    GatedCrossAttentionFusion,
    LateFusion,
    SingleStreamFusion,
    TensorFusion,
)
from mmlightning_fusions.plugin import FUSIONS

DIMS = {"text": 12, "image": 20, "audio": 8}
ALL = [getattr(mmlightning_fusions, name) for name in mmlightning_fusions.__all__]


def test_every_fusion_is_registered_and_exported():
    assert sorted(path.split(":")[1] for path in FUSIONS) == sorted(mmlightning_fusions.__all__) and len(ALL) == 12


@pytest.mark.parametrize("fusion", ALL, ids=lambda f: f.__name__)
def test_contract(fusion):
    check_fusion(fusion, DIMS, dim=16)
    check_fusion(fusion, {"text": 12, "image": 20}, dim=16)


def test_gated_cross_attention_starts_as_the_query_alone():
    fusion = GatedCrossAttentionFusion({"text": 16, "image": 20}, dim=16, query="text").eval()
    features = {"text": random_features(2, 5, 16), "image": random_features(2, 7, 20)}
    out = fusion(features)
    assert torch.allclose(
        out.tokens[:, out.spans["text"]],
        fusion.project["text"](features["text"].tokens) * features["text"].mask[..., None],
    )
    with torch.no_grad():
        fusion.blocks[0].gate_attn.fill_(1.0)
    assert not torch.allclose(fusion(features).tokens[:, out.spans["text"]], out.tokens[:, out.spans["text"]])


def test_bottleneck_modalities_meet_only_through_the_latents():
    fusion = BottleneckFusion({"text": 8, "image": 8}, dim=8, bottlenecks=2, layers=1, heads=2).eval()
    features = {"text": random_features(2, 3, 8), "image": random_features(2, 4, 8)}
    out = fusion(features)
    other = dict(features, image=random_features(2, 4, 8, seed=9))
    # with one layer, text tokens are computed before the averaged latents exist: the image cannot reach them
    assert torch.allclose(fusion(other).tokens[:, out.spans["text"]], out.tokens[:, out.spans["text"]], atol=1e-6)


def test_tensor_fusion_size_grows_with_modalities():
    assert TensorFusion({"a": 4, "b": 4}, dim=8, factor_dim=3).out[1].in_features == 16
    assert TensorFusion({"a": 4, "b": 4, "c": 4}, dim=8, factor_dim=3).out[1].in_features == 64


def test_single_stream_spans_cover_each_modality():
    fusion = SingleStreamFusion({"text": 12, "image": 20}, dim=16).eval()
    features = {"text": random_features(2, 5, 12), "image": random_features(2, 7, 20)}
    out = fusion(features)
    assert out.spans == {"image": slice(0, 7), "text": slice(7, 12)}
    assert torch.equal(out.mask[:, out.spans["text"]], features["text"].mask)


def test_cross_attention_query_tokens_change_and_others_pass_through():
    fusion = CrossAttentionFusion({"text": 12, "image": 20}, dim=16, query="text").eval()
    features = {"text": random_features(2, 5, 12), "image": random_features(2, 7, 20)}
    out = fusion(features)
    image = fusion.project["image"](features["image"].tokens) * features["image"].mask[..., None]
    assert torch.allclose(out.tokens[:, out.spans["image"]], image, atol=1e-6)
    other = dict(features, image=random_features(2, 7, 20, seed=5))
    assert not torch.allclose(fusion(other).tokens[:, out.spans["text"]], out.tokens[:, out.spans["text"]])


def test_cross_attention_rejects_an_unknown_query():
    with pytest.raises(ValueError, match="query 'audio' is not one of the encoders"):
        CrossAttentionFusion({"text": 4, "image": 4}, query="audio")


def test_concat_of_a_sample_with_every_modality_missing_is_finite():
    fusion = ConcatFusion({"a": 4, "b": 4}, dim=8).eval()
    out = fusion({"a": random_features(2, 3, 4, missing=[1]), "b": random_features(2, 3, 4, missing=[1])})
    assert torch.isfinite(out.pooled).all() and out.present.tolist() == [True, False]


def test_late_fusion_weights_are_uniform_or_learned_over_the_present_modalities():
    features = {"text": random_features(3, 5, 12, missing=[1]), "image": random_features(3, 7, 20)}
    mean = LateFusion({"text": 12, "image": 20}, dim=8).eval()
    out = mean(features)
    assert out.spans == {"image": slice(0, 1), "text": slice(1, 2)}
    assert out.weights.tolist() == [[0.5, 0.5], [1.0, 0.0], [0.5, 0.5]]
    learned = LateFusion({"text": 12, "image": 20}, dim=8, combine="learned").eval()
    assert [name for name, _ in learned.named_parameters() if name == "scores"] == ["scores"]
    with torch.no_grad():
        learned.scores.copy_(torch.tensor([0.0, 1.0]))
    weights = learned(features).weights
    assert weights[0, 1] > weights[0, 0] and weights[1].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="combine must be one of"):
        LateFusion({"a": 4, "b": 4}, combine="max")


@pytest.mark.parametrize("fusion", [CrossAttentionFusion, GatedCrossAttentionFusion], ids=lambda f: f.__name__)
def test_cross_attention_shows_where_the_query_looked(fusion):
    from mmlightning.layers import recording_attention

    torch.manual_seed(0)
    model = fusion({"text": 12, "image": 20, "audio": 8}, dim=16, heads=2, query="text").eval()
    features = {
        "text": random_features(3, 5, 12),
        "image": random_features(3, 4, 20, missing=[1]),
        "audio": random_features(3, 6, 8, seed=1),
    }
    model(features)
    assert model.attention() == {}  # nothing kept outside recording_attention
    with recording_attention(model):
        model(features)
        attention = model.attention()
    assert set(attention) == {"audio", "image"} and attention["image"].shape == (3, 4)
    together = torch.cat([attention["audio"], attention["image"]], 1)  # (B, M): a distribution over the context
    assert torch.allclose(together.sum(1), torch.ones(3))
    for key in ("audio", "image"):  # padding gets no attention
        assert (attention[key][~features[key].mask] == 0).all()
    assert (attention["image"][1] == 0).all()  # a missing image is never looked at
    assert model.attention() == {}
