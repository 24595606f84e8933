"""Attention through scaled_dot_product_attention: matches the textbook formula, masks padding, never NaN."""

from __future__ import annotations

import math

import torch

from mmlightning.features import Features, masked_mean
from mmlightning.layers import MultiHeadAttention, TransformerStack, recording_attention, sinusoidal_positions


def manual_attention(attn, x, context, key_mask):
    b, n, d = x.shape
    q = attn.q(x).view(b, n, attn.heads, -1).transpose(1, 2)
    k, v = attn.kv(context).view(b, context.shape[1], 2, attn.heads, -1).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    return attn.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d))


def test_attention_matches_formula_with_padding():
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, heads=4).eval()
    x, y = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    mask = torch.tensor([[True] * 7, [True] * 3 + [False] * 4])
    assert torch.allclose(attn(x, y, key_mask=mask), manual_attention(attn, x, y, mask), atol=1e-5)


def test_no_real_key_gives_zeros_not_nan():
    attn = MultiHeadAttention(8, heads=2).eval()
    mask = torch.tensor([[True, True], [False, False]])
    out = attn(torch.randn(2, 3, 8), torch.randn(2, 2, 8), key_mask=mask)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[1], attn.out.bias.expand(3, 8))


def test_causal_mask_hides_the_future():
    torch.manual_seed(0)
    stack = TransformerStack(8, layers=1, heads=2).eval()
    x = torch.randn(1, 4, 8)
    changed = x.clone()
    changed[0, 3] += torch.randn(8)  # (a constant shift would vanish in LayerNorm)
    mask = torch.ones(1, 4, dtype=torch.bool)
    a, b = stack(x, mask, causal=True), stack(changed, mask, causal=True)
    assert torch.allclose(a[0, :3], b[0, :3], atol=1e-6) and not torch.allclose(a[0, 3], b[0, 3])


def test_features_from_tokens_masks_missing_samples():
    tokens = torch.ones(2, 3, 4)
    features = Features.from_tokens(tokens, torch.tensor([[True, True, False]] * 2), torch.tensor([True, False]))
    assert features.mask.tolist() == [[True, True, False], [False, False, False]]
    assert features.pooled[0].tolist() == [1.0] * 4 and features.pooled[1].tolist() == [0.0] * 4
    assert masked_mean(tokens, torch.zeros(2, 3, dtype=torch.bool)).abs().sum() == 0


def test_sinusoidal_positions():
    table = sinusoidal_positions(10, 6)
    assert table.shape == (10, 6) and torch.allclose(table[0, 1::2], torch.ones(3))


def test_modality_dropout_never_drops_every_modality():
    from mmlightning.features import drop_modalities

    torch.manual_seed(0)
    full = torch.ones(1000, 3, dtype=torch.bool)
    features = {k: Features.from_tokens(torch.randn(1000, 2, 4), full[:, :2], full[:, 0]) for k in ("a", "b", "c")}
    features["c"] = Features.from_tokens(torch.randn(1000, 2, 4), full[:, :2], torch.arange(1000) % 2 == 0)
    dropped = drop_modalities(features, 0.5)
    kept = torch.stack([dropped[k].present for k in "abc"], 1)
    assert kept.any(1).all()  # every sample keeps at least one modality
    assert not (kept[:, 2] & ~features["c"].present).any()  # a missing modality never comes back
    # the rate asked for, less the samples that would have lost everything: 0.5 - 0.5 / 8 - 0.5 / 4 = 0.31
    assert 0.26 < 1 - kept[:, 0].float().mean() < 0.36
    assert (dropped["a"].pooled[~kept[:, 0]] == 0).all() and not dropped["a"].mask[~kept[:, 0]].any()


def test_recorded_attention_is_what_the_layer_applied():
    torch.manual_seed(0)
    layer = MultiHeadAttention(8, heads=1).eval()
    x, context = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    key_mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    with recording_attention(layer):
        y = layer(x, context, key_mask=key_mask)
        weights = layer.weights  # (B, N, M)
    assert layer.weights is None and not layer.record  # nothing kept afterwards
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3)) and (weights[0, :, 3:] == 0).all()
    values = layer.kv(context)[..., 8:]  # one head: the attention's values
    assert torch.allclose(layer.out(weights @ values), y, atol=1e-5)
    with recording_attention(layer):
        layer(x, causal=True)
        assert (layer.weights.triu(1) == 0).all()
