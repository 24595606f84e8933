"""`Features`: what every encoder and fusion hands on, token-level."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Features:
    """A batch of token sequences with their padding mask and one pooled vector per sample.

    Attributes:
        tokens: ``(B, N, D)`` a sequence per sample; ``N == 1`` for a pooled-only encoder.
        mask: ``(B, N)`` bool, True where a token is real (padding and missing samples are False).
        pooled: ``(B, D)`` one vector per sample (zeros where the sample lacks this modality).
        present: ``(B,)`` bool, False where the sample lacks this modality.
        spans: which token positions came from which modality (set by fusions).
        weights: ``(B, M)`` set by late fusions: how much each span's own prediction counts (sorted span
            order, zero where the sample lacks the modality, rows summing to 1). A head that predicts per
            span combines with these; any other head uses ``pooled``, which is the same weighting of the spans.
        word_ids: ``(B, N)`` long, set by encoders whose tokens come from words (text): the word each token came
            from, -1 for special tokens and padding. Token-level heads (NER) map tokens back to words with it.
        grid: ``(H, W)`` set by encoders whose last ``H * W`` tokens lie on a grid, row by row (an image's
            feature-map cells or patches; tokens before them, such as a class token, are not on it). Dashboards
            draw a fusion's attention over the input with it.
        codes: ``(B, N)`` long, set by encoders that quantise (an image tokenizer, VQ-VAE): each token's entry in
            the encoder's codebook. Generation heads learn to predict them; the encoder turns them back into input.
        loss: a scalar the encoder adds to training (a quantiser's commitment loss), set only while it trains;
            the head that trains the encoder adds it to its own loss.
    """

    tokens: Tensor
    mask: Tensor
    pooled: Tensor
    present: Tensor
    spans: dict[str, slice] = field(default_factory=dict)
    weights: Tensor | None = None
    word_ids: Tensor | None = None
    grid: tuple[int, int] | None = None
    codes: Tensor | None = None
    loss: Tensor | None = None

    @classmethod
    def from_tokens(
        cls, tokens: Tensor, mask: Tensor | None = None, present: Tensor | None = None, pooled: Tensor | None = None
    ) -> Features:
        """Build features from tokens; masks out absent samples and mean-pools the real tokens (``mask``
        None: every token is real)."""
        batch = tokens.shape[0]
        if mask is None:
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        if present is None:
            present = torch.ones(batch, dtype=torch.bool, device=tokens.device)
        mask = mask.bool() & present[:, None]  # (B, N)
        tokens = tokens * mask[..., None].to(tokens.dtype)  # (B, N, D)
        if pooled is None:
            pooled = masked_mean(tokens, mask)  # (B, D)
        pooled = pooled * present[:, None].to(pooled.dtype)
        return cls(tokens=tokens, mask=mask, pooled=pooled, present=present)

    @classmethod
    def from_pooled(cls, pooled: Tensor, present: Tensor | None = None) -> Features:
        """Build features for a pooled-only encoder (one token per sample)."""
        return cls.from_tokens(
            pooled[:, None, :],
            torch.ones(pooled.shape[:1] + (1,), dtype=torch.bool, device=pooled.device),
            present,
            pooled,
        )

    @property
    def dim(self) -> int:
        return self.tokens.shape[-1]

    def index(self, rows: Tensor) -> Features:
        """The features of some samples only (``rows``: indices or a bool mask)."""
        weights = None if self.weights is None else self.weights[rows]
        word_ids = None if self.word_ids is None else self.word_ids[rows]
        codes = None if self.codes is None else self.codes[rows]
        return Features(
            self.tokens[rows],
            self.mask[rows],
            self.pooled[rows],
            self.present[rows],
            dict(self.spans),
            weights,
            word_ids,
            self.grid,
            codes,
            self.loss,
        )

    def span_means(self) -> Tensor:
        """Each span's mean real token, in ``spans`` order (zeros where a sample lacks it). ``-> (B, M, D)``."""
        return torch.stack([masked_mean(self.tokens[:, s], self.mask[:, s]) for s in self.spans.values()], 1)


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean of the real tokens per sample, zeros where a sample has none. ``(B, N, D), (B, N) -> (B, D)``."""
    weights = mask.to(tokens.dtype)[..., None]  # (B, N, 1)
    total = (tokens * weights).sum(1)  # (B, D)
    return total / weights.sum(1).clamp(min=1.0)


def drop_modalities(features: dict[str, Features], rate: float | dict[str, float]) -> dict[str, Features]:
    """Modality dropout: mark each sample's modality absent with probability ``rate`` (one for all, or per
    modality key; a key left out is never dropped), never all of a sample's."""
    keys = sorted(features)
    present = torch.stack([features[k].present for k in keys], 1)  # (B, M)
    rates = [float(rate.get(k, 0.0)) if isinstance(rate, dict) else rate for k in keys]
    limit = torch.tensor(rates, device=present.device)  # (M,)
    keep = present & (torch.rand(present.shape, device=present.device) >= limit)  # (B, M)
    none_left = ~keep.any(1)
    keep[none_left] = present[none_left]  # a sample keeps what it had rather than lose everything
    out = {}
    for i, key in enumerate(keys):
        f = features[key]
        dropped = Features.from_tokens(f.tokens, f.mask, keep[:, i], f.pooled)
        dropped.spans, dropped.word_ids, dropped.grid = dict(f.spans), f.word_ids, f.grid
        dropped.codes, dropped.loss = f.codes, f.loss
        out[key] = dropped
    return out
