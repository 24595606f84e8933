"""mmlightning-text: the caption decoder (teacher forcing, greedy and beam decoding) and its metrics."""

from __future__ import annotations

import pytest
import torch

from mmlightning import Batch, HeadContext
from mmlightning.testing import check_head, random_features
from mmlightning_text import CaptionHead
from mmlightning_text.metrics import CaptionScores, rouge_l

CAPTIONS = [
    "a dog runs on the grass",
    "a cat sleeps on the sofa",
    "two dogs play in the snow",
    "a child rides a red bike",
]


def test_contract():
    check_head(CaptionHead, dim=16, layers=1, heads=2, vocab_size=60)
    check_head(CaptionHead, dim=16, layers=1, heads=2, vocab_size=60, decoding="beam", beam_size=2)


def test_rouge_l_and_bleu_score_against_every_reference_of_a_group():
    assert rouge_l("a dog runs", "a dog runs") == 1.0 and rouge_l("a b c d", "a x c y") == pytest.approx(0.5)
    metric = CaptionScores()
    metric.update(
        ["a dog runs on the grass", "a dog runs on the grass"],
        [("img1", "a dog runs on grass"), ("img1", "a dog runs on the grass")],
    )
    bleu, rouge = metric.compute().tolist()
    assert bleu == pytest.approx(1.0) and rouge == pytest.approx(1.0)  # the second reference matches exactly
    metric.reset()
    metric.update(["zebra"], [("img2", "a dog runs on the grass")])
    assert metric.compute().tolist() == [0.0, 0.0]


def fitted_head(**kwargs) -> CaptionHead:
    torch.manual_seed(0)
    head = CaptionHead(16, layers=1, heads=2, vocab_size=60, max_length=24, dropout=0.0, **kwargs)
    head.bind(HeadContext("caption", {}))
    head.fit(CAPTIONS)
    return head


@pytest.mark.parametrize("decoding", ["greedy", "beam"])
def test_a_trained_decoder_generates_the_caption_of_each_input(decoding):
    head = fitted_head(decoding=decoding, beam_size=3)
    fused = random_features(4, 3, 16)  # four inputs, one caption each
    target = head.target().collate([head.target().encode(c) for c in CAPTIONS])
    batch = Batch(inputs={}, targets={"caption": target}, ids=[str(i) for i in range(4)])
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    head.train()
    for _ in range(150):
        optimizer.zero_grad()
        head(fused, {}, batch).loss.backward()
        optimizer.step()
    head.eval()
    out = head(fused, {}, batch)
    assert head.target().decode(out) == CAPTIONS
    metric = CaptionScores()
    metric.update(*head.metric_inputs(out, batch))
    assert metric.compute().tolist() == pytest.approx([1.0, 1.0])


def test_long_captions_are_cut_but_keep_their_end_token_and_bad_ones_are_refused():
    head = fitted_head()
    ids = head.target().encode(" ".join(["dog"] * 40))
    assert len(ids) == 24 and ids[0] == head.bos and ids[-1] == head.eos
    with pytest.raises(ValueError, match="expected a non-empty caption"):
        head.target().encode("  ")
    with pytest.raises(ValueError, match="decoding must be"):
        CaptionHead(16, decoding="sample")
