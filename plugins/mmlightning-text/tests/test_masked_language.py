"""mmlightning-text: masked language modelling over the fused text tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmlightning import Batch, HeadContext
from mmlightning.testing import check_head
from mmlightning_text import MaskedLanguageHead, TextEncoder

TEXTS = ["the cat sat on the mat", "a dog runs in the park", "two birds sing at dawn", "the mat is red"] * 5


def fitted_encoder() -> TextEncoder:
    encoder = TextEncoder(dim=16, layers=1, heads=2, vocab_size=80)
    encoder.fit(TEXTS)
    return encoder


def test_contract():
    check_head(MaskedLanguageHead, dim=16, encoders={"text": fitted_encoder()})


def test_masking_hides_only_real_tokens_and_keeps_the_originals_as_targets():
    encoder = fitted_encoder()
    head = MaskedLanguageHead(16, rate=0.5)
    head.bind(HeadContext("mlm", {}, encoders={"text": encoder}))
    head.fit([])
    processor = encoder.processor()
    inputs = {"text": processor.batch([processor(t, Path("."), False) for t in TEXTS[:4]] + [None])}
    batch = Batch(inputs=inputs, ids=list("abcde"))
    masked = head.prepare_batch(batch, "train")
    ids, new, target = inputs["text"]["ids"], masked.inputs["text"]["ids"], masked.targets["mlm"]
    chosen = target != -100
    assert chosen.any() and torch.equal(target[chosen], ids[chosen])  # the originals are the targets
    assert not chosen[
        ~(inputs["text"]["mask"] & (inputs["text"]["word_ids"] >= 0))
    ].any()  # never [CLS], [SEP], padding
    assert torch.equal(new[~chosen], ids[~chosen]) and (new[chosen] == head.mask_id).float().mean() > 0.5
    assert torch.equal(batch.inputs["text"]["ids"], ids)  # the batch it was given is left as it was
    assert torch.equal(head.prepare_batch(batch, "val").targets["mlm"], head.prepare_batch(batch, "val").targets["mlm"])
    assert head.prepare_batch(batch, "predict") is batch


def test_a_missing_text_encoder_is_a_clear_error():
    head = MaskedLanguageHead(16)
    head.bind(HeadContext("mlm", {}, encoders={"image": object()}))
    with pytest.raises(ValueError, match="reads encoder 'text', but the model's encoders are \\['image'\\]"):
        head.fit([])
