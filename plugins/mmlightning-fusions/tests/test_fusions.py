"""mmlightning-fusions: the contract for every fusion, and what each one specifically promises."""

from __future__ import annotations

import pytest
import torch

from mmlightning.testing import check_fusion, random_features
from mmlightning_fusions import ConcatFusion, CrossAttentionFusion, SingleStreamFusion

DIMS = {"text": 12, "image": 20, "audio": 8}


@pytest.mark.parametrize("fusion", [ConcatFusion, SingleStreamFusion, CrossAttentionFusion])
def test_contract(fusion):
    check_fusion(fusion, DIMS, dim=16)
    check_fusion(fusion, {"text": 12, "image": 20}, dim=16)


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
