"""ContrastiveHead across two processes (gloo, CPU): negatives come from the global batch, gradients flow back."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmlightning import HeadContext
from mmlightning.testing import run_distributed
from mmlightning_heads import ContrastiveHead


def make_head(loss: str) -> ContrastiveHead:
    head = ContrastiveHead(8, embed_dim=4, loss=loss)
    head.bind(HeadContext("pair", {"image": 6, "text": 5}))
    head.fit([])
    return head


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return F.normalize(torch.randn(8, 2, 4, generator=g), dim=-1), torch.arange(8)


def loss_on_share(rank: int, loss: str) -> tuple[float, torch.Tensor]:
    embeddings, groups = data()
    local = embeddings[rank * 4 : rank * 4 + 4].clone().requires_grad_(True)
    value = make_head(loss).pair_loss(local, groups[rank * 4 : rank * 4 + 4], torch.ones(4, dtype=torch.bool))
    value.backward()
    return float(value), local.grad.clone()


def test_two_processes_see_the_whole_batch_as_negatives():
    for loss in ("infonce", "sigmoid"):
        results = run_distributed(loss_on_share, loss)
        embeddings, groups = data()
        full = embeddings.clone().requires_grad_(True)
        expected = make_head(loss).pair_loss(full, groups, torch.ones(8, dtype=torch.bool))
        expected.backward()
        # each process averages over its own rows: the mean of the two is the one-process loss over all eight
        assert abs((results[0][0] + results[1][0]) / 2 - float(expected.detach())) < 1e-5, loss
        # all_gather's backward sums every process's gradient into the local rows: twice the mean loss's gradient
        gathered = torch.cat([results[0][1], results[1][1]]) / 2
        assert torch.allclose(gathered, full.grad, atol=1e-5), loss
