"""mmlightning-heads: the linear-chain CRF against brute-force enumeration of every tag sequence, and the token
head's `crf` option learning a tagging rule that a per-word classifier cannot."""

from __future__ import annotations

import itertools

import torch

from mmlightning import Batch, Features, HeadContext
from mmlightning.testing import check_head
from mmlightning_heads import TokenClassificationHead
from mmlightning_heads.crf import CRF


def path_score(crf: CRF, emissions: torch.Tensor, on: list[int], path: tuple[int, ...]) -> torch.Tensor:
    """The score of tags ``path`` at positions ``on`` of one sequence's emissions ``(W, T)``."""
    score = crf.start[path[0]] + crf.end[path[-1]]
    score = score + sum(emissions[t, tag] for t, tag in zip(on, path))
    return score + sum(crf.transitions[a, c] for a, c in zip(path, path[1:]))


def brute_force(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, ...]]]:
    """log Z and the best tags of each sequence, by scoring every sequence over its unmasked positions."""
    tags = emissions.shape[-1]
    log_z, best = [], []
    for b in range(emissions.shape[0]):
        on = mask[b].nonzero().flatten().tolist()
        scores = {
            path: path_score(crf, emissions[b], on, path).detach()
            for path in itertools.product(range(tags), repeat=len(on))
        }
        log_z.append(torch.logsumexp(torch.stack(list(scores.values())), 0))
        best.append(max(scores, key=lambda p: float(scores[p])))
    return torch.stack(log_z), best


def test_partition_score_and_viterbi_match_enumeration_with_gaps():
    torch.manual_seed(0)
    crf = CRF(3)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    emissions = torch.randn(4, 5, 3)
    mask = torch.tensor(
        [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 1, 0, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool
    )  # full, padded, with gaps (a word with no token), one word
    log_z, best = brute_force(crf, emissions, mask)
    assert torch.allclose(crf.log_partition(emissions, mask), log_z, atol=1e-5)
    decoded = crf.decode(emissions, mask)
    for b in range(4):
        on = mask[b].nonzero().flatten().tolist()
        assert tuple(decoded[b, on].tolist()) == best[b]
        assert decoded[b, ~mask[b]].eq(0).all()
    gold = torch.randint(0, 3, (4, 5))
    for b in range(4):
        on = mask[b].nonzero().flatten().tolist()
        expected = path_score(crf, emissions[b], on, tuple(gold[b, on].tolist()))
        assert torch.allclose(crf.score(emissions, gold, mask)[b], expected, atol=1e-5)
    nll = crf.nll(emissions, gold, mask)
    per_row = crf.log_partition(emissions, mask) - crf.score(emissions, gold.masked_fill(~mask, 0), mask)
    assert torch.allclose(nll, per_row.mean()) and bool((per_row > 0).all())  # a probability below 1 each


def test_the_crf_head_learns_transitions_and_decodes_valid_sequences():
    """The rule "the word after a B-PER is I-PER" is invisible to each word's own features (all the same here); the
    CRF learns it from the transitions, the per-word head cannot."""
    torch.manual_seed(0)
    check_head(TokenClassificationHead, dim=8, crf=True)
    heads = {}
    for crf in (False, True):
        head = TokenClassificationHead(8, crf=crf)
        head.bind(HeadContext("tags", {}))
        head.fit([["B-PER", "I-PER", "O"]])
        heads[crf] = head
    sentences = [["B-PER", "I-PER", "O", "O"], ["O", "B-PER", "I-PER", "O"], ["O", "O", "B-PER", "I-PER"]]
    word_ids = torch.tensor([[-1, 0, 1, 2, 3, -1]] * 3)
    tokens = torch.zeros(3, 6, 8)
    tokens[:, 1:5, 0] = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])  # only B-PER is visible
    fused = Features.from_tokens(tokens, torch.ones(3, 6, dtype=torch.bool))
    fused.spans = {"text": slice(0, 6)}
    encoded = {"text": Features.from_tokens(tokens, torch.ones(3, 6, dtype=torch.bool))}
    encoded["text"].word_ids = word_ids
    found = {}
    for crf, head in heads.items():
        codec = head.target()
        target = codec.collate([codec.encode(s) for s in sentences])
        batch = Batch(inputs={}, targets={"tags": target}, ids=["a", "b", "c"])
        optimizer = torch.optim.Adam(head.parameters(), lr=0.1)
        for _ in range(150):
            optimizer.zero_grad()
            head.train()
            head(fused, encoded, batch).loss.backward()
            optimizer.step()
        head.eval()
        found[crf] = codec.decode(head(fused, encoded, Batch(inputs={}, ids=["a", "b", "c"])))
    assert found[True] == sentences
    assert found[False] != sentences  # I-PER and O look alike word by word


def test_the_scheme_rules_out_an_inside_tag_that_continues_nothing():
    from mmlightning_heads.crf import scheme_rules

    tags = ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]
    allowed, start = scheme_rules(tags)
    assert start.tolist() == [True, True, True, False, False]
    assert allowed[:, 4].tolist() == [False, False, True, False, True]  # I-PER after B-PER or I-PER only
    assert allowed[:, 0].all() and allowed[:, 1].all()
    crf = CRF(len(tags), allowed, start)
    emissions = torch.zeros(1, 3, len(tags))
    emissions[0, :, 4] = 5.0  # every word looks like I-PER on its own
    emissions[0, 0, 1] = 4.0
    decoded = crf.decode(emissions, torch.ones(1, 3, dtype=torch.bool))[0].tolist()
    assert [tags[i] for i in decoded] == ["B-PER", "I-PER", "I-PER"]  # the best sequence the scheme allows
