"""A linear-chain conditional random field over tag sequences: the negative log-likelihood of the gold tags
(forward algorithm) and the best sequence (Viterbi), for sequences with gaps (a word with no token is skipped)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CRF(nn.Module):
    """Transition scores between ``tags`` tags (``transitions[i, j]``: tag i followed by tag j), plus a score for
    starting and for ending on each tag. Emissions are ``(B, W, T)``; ``mask`` ``(B, W)`` marks the positions that
    take part (a masked position is skipped: its neighbours are joined by one transition). ``allowed`` ``(T, T)``
    and ``allowed_start`` ``(T,)`` rule transitions and first tags out (bool; default: all allowed)."""

    allowed: Tensor
    allowed_start: Tensor

    def __init__(self, tags: int, allowed: Tensor | None = None, allowed_start: Tensor | None = None) -> None:
        super().__init__()
        self.start = nn.Parameter(torch.zeros(tags))
        self.end = nn.Parameter(torch.zeros(tags))
        self.transitions = nn.Parameter(torch.zeros(tags, tags))
        self.register_buffer("allowed", torch.ones(tags, tags, dtype=torch.bool) if allowed is None else allowed)
        self.register_buffer(
            "allowed_start", torch.ones(tags, dtype=torch.bool) if allowed_start is None else allowed_start
        )

    @property
    def moves(self) -> Tensor:
        """The transition scores, ruled-out ones at -10,000. ``(T, T)``"""
        return self.transitions.masked_fill(~self.allowed, -1e4)

    @property
    def first(self) -> Tensor:
        """The start scores, ruled-out ones at -10,000. ``(T,)``"""
        return self.start.masked_fill(~self.allowed_start, -1e4)

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Mean over the sequences with at least one position of ``log Z - score(gold)``."""
        emissions = emissions.float()
        tags = tags.masked_fill(~mask, 0)  # (B, W); masked tags are never read
        has = mask.any(1)  # (B,)
        return ((self.log_partition(emissions, mask) - self.score(emissions, tags, mask))[has]).mean()

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """The score of the tag sequence ``tags`` ``(B, W)``. ``-> (B,)``."""
        batch, words, _ = emissions.shape
        total = emissions.new_zeros(batch)
        last = torch.full((batch,), -1, dtype=torch.long, device=tags.device)  # the last position's tag so far
        for t in range(words):
            on, tag = mask[:, t], tags[:, t]
            step = emissions[:, t].gather(1, tag[:, None]).squeeze(1)  # (B,)
            step = step + torch.where(last >= 0, self.moves[last.clamp(min=0), tag], self.first[tag])
            total = total + torch.where(on, step, torch.zeros_like(step))
            last = torch.where(on, tag, last)
        return total + torch.where(last >= 0, self.end[last.clamp(min=0)], torch.zeros_like(total))

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """``log Z``, the log of the summed exponentiated scores of every tag sequence. ``-> (B,)``."""
        alpha, started = None, torch.zeros_like(mask[:, 0])
        for t in range(emissions.shape[1]):
            on = mask[:, t, None]  # (B, 1)
            begin = self.first + emissions[:, t]  # (B, T)
            if alpha is None:
                alpha = begin
                started = mask[:, t]
                continue
            moved = torch.logsumexp(alpha[:, :, None] + self.moves[None], 1) + emissions[:, t]  # (B, T)
            fresh = torch.where(started[:, None], moved, begin)
            alpha = torch.where(on, fresh, alpha)
            started = started | mask[:, t]
        if alpha is None:
            return emissions.new_zeros(emissions.shape[0])
        return torch.logsumexp(alpha + self.end, 1)

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """The highest-scoring tags (Viterbi); masked positions get tag 0. ``-> (B, W)``."""
        emissions = emissions.float()
        batch, words, tags = emissions.shape
        best = self.first + emissions[:, 0]  # (B, T)
        started = mask[:, 0].clone()  # (B,)
        keep = torch.arange(tags, device=emissions.device).expand(batch, tags)
        pointers = []
        for t in range(1, words):
            scores = best[:, :, None] + self.moves[None]  # (B, T from, T to)
            moved, came = scores.max(1)  # (B, T), (B, T)
            fresh = torch.where(started[:, None], moved + emissions[:, t], self.first + emissions[:, t])
            on = mask[:, t, None]
            best = torch.where(on, fresh, best)
            came = torch.where(on & started[:, None], came, keep)  # a skipped or first position points at itself
            pointers.append(came)
            started = started | mask[:, t]
        tag = (best + self.end).argmax(1)  # (B,)
        path = [tag]
        for came in reversed(pointers):
            tag = came.gather(1, tag[:, None]).squeeze(1)
            path.append(tag)
        out = torch.stack(path[::-1], 1)  # (B, W)
        return out.masked_fill(~mask, 0)


def scheme_rules(tags: list[str]) -> tuple[Tensor, Tensor]:
    """The transitions an IOB2 or BIOES tagging allows: an ``I-X`` or ``E-X`` only continues an entity ``X`` (after
    ``B-X`` or ``I-X``), so it never starts a sentence or follows anything else. ``-> (T, T), (T,)`` bool."""
    size = len(tags)
    allowed, start = torch.ones(size, size, dtype=torch.bool), torch.ones(size, dtype=torch.bool)
    for j, tag in enumerate(tags):
        prefix, _, kind = tag.partition("-")
        if prefix in ("I", "E") and kind:
            start[j] = False
            for i, before in enumerate(tags):
                allowed[i, j] = before in (f"B-{kind}", f"I-{kind}")
    return allowed, start
