"""mmlightning-heads: NER tagging over words, entity-level F1 as conlleval counts it."""

from __future__ import annotations

import pytest
import torch

from mmlightning import Batch, Features, HeadContext
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
    head.bind(HeadContext("tags", {}))
    head.fit([["B-PER", "O"]])
    assert head.tags == ["O", "B-PER"]
    fused = Features.from_tokens(torch.randn(1, 3, 4), torch.ones(1, 3, dtype=torch.bool))
    fused.spans = {"text": slice(0, 3)}
    encoded = text_words([[-1, 0, -1]])  # word 1 was truncated away
    target = head.target().collate([head.target().encode(["O", "B-PER"])])
    out = head(fused, encoded, Batch(inputs={}, targets={"tags": target}, ids=["s"]))
    assert out.predictions[0, 1].item() == 0  # O
    assert head.target().decode(head(fused, encoded, Batch(inputs={}, ids=["s"]))) == [
        [head.tags[out.predictions[0, 0].item()]]
    ]


def test_bad_targets_and_pooled_fusions_get_clear_errors():
    head = TokenClassificationHead(4)
    head.bind(HeadContext("tags", {}))
    head.fit([["B-PER", "O"]])
    with pytest.raises(ValueError, match="tag 'B-XYZ' is not one of the 2 tags"):
        head.target().encode(["B-XYZ"])
    with pytest.raises(ValueError, match="expected a list of tags"):
        head.target().encode("B-PER O")
    pooled = Features.from_pooled(torch.randn(1, 4))
    with pytest.raises(ValueError, match="use a token-level fusion"):
        head(pooled, text_words([[0]]), Batch(inputs={}, ids=["s"]))
    with pytest.raises(ValueError, match="encoder 'text' gives no word_ids"):
        head(pooled, {"text": Features.from_pooled(torch.randn(1, 4))}, Batch(inputs={}, ids=["s"]))


def test_a_fusion_that_pools_the_text_is_refused():
    head = TokenClassificationHead(4)
    head.bind(HeadContext("tags", {}))
    head.fit([["B-PER", "O"]])
    fused = Features.from_tokens(torch.randn(1, 2, 4), torch.ones(1, 2, dtype=torch.bool))
    fused.spans = {"image": slice(0, 1), "text": slice(1, 2)}  # LateFusion: one token per modality
    with pytest.raises(ValueError, match="kept 1 'text' tokens for 4 text tokens"):
        head(fused, text_words([[-1, 0, 1, -1]]), Batch(inputs={}, ids=["s"]))


def text_words(word_ids: list[list[int]]) -> dict[str, Features]:
    """Encoded text features carrying the word each token came from, as a text encoder gives them."""
    ids = torch.tensor(word_ids)
    features = Features.from_tokens(torch.zeros(*ids.shape, 4), torch.ones(ids.shape, dtype=torch.bool))
    features.word_ids = ids
    return {"text": features}
