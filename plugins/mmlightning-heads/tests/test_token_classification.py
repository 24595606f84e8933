"""mmlightning-heads: NER tagging over words, entity-level F1 as conlleval counts it."""

from __future__ import annotations

import pytest
import torch

from mmlightning import Batch, Features
from mmlightning.testing import check_head
from mmlightning_heads import EntityF1, TokenClassificationHead
from mmlightning_heads.entities import chunks
from mmlightning_heads.token_classification import first_tokens


def test_contract():
    check_head(TokenClassificationHead, dim=16)
    check_head(TokenClassificationHead, dim=16, hidden=8)


def test_chunks_follow_conlleval():
    assert chunks(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 2), ("LOC", 3, 4)}
    assert chunks(["I-PER", "I-PER", "I-LOC"]) == {("PER", 0, 2), ("LOC", 2, 3)}  # IOB1 / a stray I- starts a chunk
    assert chunks(["B-ORG", "B-ORG", "I-ORG"]) == {("ORG", 0, 1), ("ORG", 1, 3)}
    assert chunks(["S-PER", "B-LOC", "E-LOC", "O"]) == {("PER", 0, 1), ("LOC", 1, 3)}  # BIOES


def test_entity_f1_needs_type_and_span_to_match():
    tags = ["O", "B-LOC", "B-PER", "I-PER"]
    metric = EntityF1(tags)
    gold = torch.tensor([[2, 3, 0, 1], [1, 0, -100, -100]])  # PER(0-2) LOC(3); LOC(0)
    pred = torch.tensor([[2, 0, 0, 1], [2, 0, 1, 1]])  # PER(0-1): wrong span; LOC(3) right; PER(0): wrong type
    metric.update(pred, gold)
    precision, recall, f1, f1_loc, f1_per = metric.compute().tolist()
    assert (precision, recall) == (pytest.approx(1 / 3), pytest.approx(1 / 3)) and f1 == pytest.approx(1 / 3)
    assert f1_loc == pytest.approx(2 * 0.5 * 1.0 / 1.5) and f1_per == 0.0  # words past the sentence are ignored


def test_first_sub_word_of_each_word_and_words_cut_off():
    word_ids = torch.tensor([[-1, 0, 0, 1, 2, -1], [-1, 0, 1, 1, -1, -1]])  # the second sentence lost its 3rd word
    first, has_token = first_tokens(word_ids, 3)
    assert first.tolist()[0] == [1, 3, 4] and first.tolist()[1][:2] == [1, 2]
    assert has_token.tolist() == [[True, True, True], [True, True, False]]


def test_a_cut_off_word_is_predicted_o_and_counted_as_missed():
    head = TokenClassificationHead(4)
    head.name = "tags"
    head.fit([["B-PER", "O"]])
    assert head.tags == ["O", "B-PER"]
    fused = Features.from_tokens(torch.randn(1, 3, 4), torch.ones(1, 3, dtype=torch.bool))
    fused.spans = {"text": slice(0, 3)}
    inputs = {"text": {"word_ids": torch.tensor([[-1, 0, -1]])}}  # word 1 was truncated away
    target = head.collate_targets([head.encode_target(["O", "B-PER"])])
    out = head(fused, {}, Batch(inputs=inputs, targets={"tags": target}, ids=["s"]))
    assert out.predictions[0, 1].item() == 0  # O
    assert head.decode(head(fused, {}, Batch(inputs=inputs, ids=["s"]))) == [[head.tags[out.predictions[0, 0].item()]]]


def test_bad_targets_and_pooled_fusions_get_clear_errors():
    head = TokenClassificationHead(4)
    head.name = "tags"
    head.fit([["B-PER", "O"]])
    with pytest.raises(ValueError, match="tag 'B-XYZ' is not one of the 2 tags"):
        head.encode_target(["B-XYZ"])
    with pytest.raises(ValueError, match="expected a list of tags"):
        head.encode_target("B-PER O")
    pooled = Features.from_pooled(torch.randn(1, 4))
    with pytest.raises(ValueError, match="use a token-level fusion"):
        head(pooled, {}, Batch(inputs={"text": {"word_ids": torch.tensor([[0]])}}, ids=["s"]))


def test_a_fusion_that_pools_the_text_is_refused():
    head = TokenClassificationHead(4)
    head.name = "tags"
    head.fit([["B-PER", "O"]])
    fused = Features.from_tokens(torch.randn(1, 2, 4), torch.ones(1, 2, dtype=torch.bool))
    fused.spans = {"image": slice(0, 1), "text": slice(1, 2)}  # LateFusion: one token per modality
    with pytest.raises(ValueError, match="kept 1 'text' tokens for 4 text tokens"):
        head(fused, {}, Batch(inputs={"text": {"word_ids": torch.tensor([[-1, 0, 1, -1]])}}, ids=["s"]))
