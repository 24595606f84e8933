"""mmlightning-text: ELECTRA's replaced-token detection (generator + per-token discriminator)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmlightning import Batch, HeadContext
from mmlightning.testing import check_head
from mmlightning_text import ReplacedTokenHead, TextEncoder
from mmlightning_text.masked import IGNORE
from mmlightning_text.replaced import replaced_targets

TEXTS = ["the cat sat on the mat", "a dog runs in the park", "two birds sing at dawn", "the mat is red"] * 5


def fitted() -> tuple[TextEncoder, ReplacedTokenHead]:
    encoder = TextEncoder(dim=16, layers=1, heads=2, vocab_size=80)
    encoder.fit(TEXTS)
    head = ReplacedTokenHead(16, rate=0.5)
    head.bind(HeadContext("rtd", {"text": 16}, encoders={"text": encoder}))
    head.fit([])
    return encoder, head


def batch_of(encoder: TextEncoder, count: int = 4) -> Batch:
    processor = encoder.processor()
    inputs = {"text": processor.batch([processor(t, Path("."), False) for t in TEXTS[:count]])}
    return Batch(inputs=inputs, ids=[str(i) for i in range(count)])


def test_contract():
    encoder = TextEncoder(dim=16, layers=1, heads=2, vocab_size=80)
    encoder.fit(TEXTS)
    check_head(ReplacedTokenHead, dim=16, encoders={"text": encoder})


def test_a_sampled_original_counts_as_not_replaced():
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    chosen = torch.tensor([[False, True, True, False, False]])
    real = torch.tensor([[False, True, True, True, False]])
    corrupted = torch.tensor([[2, 10, 40, 12, 3]])  # place 1 drew its own original back, place 2 drew another
    target = replaced_targets(ids, corrupted, chosen, real, ids.masked_fill(chosen, 4))
    assert target[0, :, 0].tolist() == [IGNORE, 0, 1, 0, IGNORE]  # replaced: only where the token changed
    assert target[0, :, 1].tolist() == [IGNORE, 10, 11, IGNORE, IGNORE]  # the generator learns both masked places
    assert target[0, :, 2].tolist() == [2, 4, 4, 12, 3]


def test_prepare_batch_replaces_only_real_tokens_with_generator_samples():
    encoder, head = fitted()
    batch = batch_of(encoder)
    prepared = head.prepare_batch(batch, "train")
    ids, new = batch.inputs["text"]["ids"], prepared.inputs["text"]["ids"]
    target = prepared.targets["rtd"]
    real = batch.inputs["text"]["mask"] & (batch.inputs["text"]["word_ids"] >= 0)
    masked = target[..., 1] != IGNORE
    assert masked.any() and not masked[~real].any()  # never [CLS], [SEP], padding
    assert torch.equal(new[~masked], ids[~masked])  # only masked places change
    assert not (new == head.mask_id).any()  # each masked place holds a sampled token, never [MASK]
    assert torch.equal(target[..., 0][real], (new != ids)[real].long())
    assert (target[..., 0][~real] == IGNORE).all()
    assert torch.equal(batch.inputs["text"]["ids"], ids)  # the given batch is left as it was
    again = head.prepare_batch(batch, "val").targets["rtd"]
    assert torch.equal(again, head.prepare_batch(batch, "val").targets["rtd"])  # validation draws the same
    assert head.prepare_batch(batch, "predict") is batch


def test_the_discriminator_loss_does_not_reach_the_generator():
    encoder, head = fitted()
    prepared = head.prepare_batch(batch_of(encoder), "train")
    features = encoder(prepared.inputs["text"])
    logits = head.discriminate(features.tokens).squeeze(-1)
    generator_loss, discriminator_loss = head.losses(logits, prepared.targets["rtd"], prepared.inputs["text"]["mask"])
    discriminator_loss.backward(retain_graph=True)
    assert all(p.grad is None for p in head.generator.parameters())  # sampling is discrete, without gradient
    assert head.discriminate.weight.grad is not None and encoder.embed.weight.grad is not None
    generator_loss.backward()
    assert all(p.grad is not None for p in head.generator.stack.parameters() if p.requires_grad)


def test_the_generator_shares_the_encoder_embeddings():
    encoder, head = fitted()
    assert head.embedding() is encoder.embed
    assert not any(p is encoder.embed.weight for p in head.parameters())  # the encoder owns them: saved once
    logits = head.generate(torch.tensor([[2, 7, 3]]), torch.ones(1, 3, dtype=torch.bool))
    assert logits.shape == (1, 3, encoder.tokenizer.get_vocab_size())


def test_an_encoder_without_token_embeddings_is_a_clear_error():
    head = ReplacedTokenHead(16)
    head.bind(HeadContext("rtd", {}, encoders={"image": object()}))
    with pytest.raises(ValueError, match="reads encoder 'text', but the model's encoders are \\['image'\\]"):
        head.fit([])
