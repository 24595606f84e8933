"""Token classification (NER): a tag per word from the text tokens of the fused features."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlightning import Batch, Features, Head, HeadOutput
from mmlightning_heads.codecs import IGNORE, TagCodec
from mmlightning_heads.common import classifier
from mmlightning_heads.crf import CRF, scheme_rules
from mmlightning_heads.entities import EntityF1


class TokenClassificationHead(Head):
    """A tag per word (IOB2 / BIO / BIOES), predicted from each word's first sub-word token, with entity-level
    precision / recall / F1 counted the way the CoNLL script does (type and span must both match).

    Reads the ``modality`` encoder's tokens from the fused features (a token-level fusion such as
    ``SingleStreamFusion`` or ``CrossAttentionFusion`` keeps them, in ``spans``), and that encoder's
    ``Features.word_ids`` (the text encoder gives them). The target is a list of tags, one per word. A word cut off by
    the encoder's ``max_length`` gets no token: it is left out of the loss and predicted ``O``, so it still
    counts against recall.

    ``crf``: score whole tag sequences with a linear-chain CRF over the words (learnt transitions; trained by the
    sequence's negative log-likelihood, predicted by Viterbi decoding) instead of each word on its own, so
    predictions follow the tagging scheme. ``constrain`` (with ``crf``): rule out what IOB2 and BIOES forbid, an
    ``I-X`` or ``E-X`` that does not continue an entity ``X``; turn it off for IOB1 tags, where ``I-`` may start one.
    """

    needs_tokens = True

    modality = "text"

    def __init__(
        self,
        dim: int,
        modality: str = "text",
        hidden: int | None = None,
        dropout: float = 0.1,
        crf: bool = False,
        constrain: bool = True,
    ) -> None:
        super().__init__()
        self.in_dim, self.source, self.hidden, self.dropout = dim, modality, hidden, dropout
        self.use_crf, self.constrain = crf, constrain
        self.classifier: Any = None  # built in set_fitted
        self.crf: CRF | None = None

    def fit(self, values: Sequence[Any]) -> None:
        tags = sorted({tag for value in values for tag in value})
        if "O" in tags:  # O first, so an unpredictable word defaults to it
            tags = ["O"] + [t for t in tags if t != "O"]
        self.set_fitted({"tags": tags})

    def set_fitted(self, state: dict[str, Any]) -> None:
        super().set_fitted(state)
        self.tags = list(state["tags"])
        self.classifier = classifier(self.in_dim, len(self.tags), self.hidden, self.dropout)
        rules = scheme_rules(self.tags) if self.constrain else (None, None)
        self.crf = CRF(len(self.tags), *rules) if self.use_crf else None

    def target(self) -> TagCodec:
        return TagCodec(self.tags if self.is_fitted else None)

    def tokens(self, fused: Features) -> Tensor:
        if self.source not in fused.spans:
            raise ValueError(
                f"head '{self.name}' tags the '{self.source}' tokens, but the fusion kept no tokens for it "
                f"(spans: {sorted(fused.spans) or 'none'}); use a token-level fusion such as SingleStreamFusion or CrossAttentionFusion"
            )
        return fused.tokens[:, fused.spans[self.source]]  # (B, N, D)

    def check_length(self, tokens: Tensor, word_ids: Tensor) -> None:
        if tokens.shape[1] != word_ids.shape[1]:
            raise ValueError(
                f"head '{self.name}': the fusion kept {tokens.shape[1]} '{self.source}' tokens for {word_ids.shape[1]} text tokens; "
                "use a fusion that keeps every token (SingleStreamFusion, CrossAttentionFusion, ...), not a pooling one"
            )

    def forward(self, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> HeadOutput:
        word_ids = self.word_ids(encoded).to(fused.tokens.device)  # (B, N), -1 for no word
        target = batch.targets.get(self.name)  # (B, W) or None
        words = target.shape[1] if target is not None else word_ids.shape[1]  # a token per word at most: traceable
        first, has_token = first_tokens(word_ids, words)  # (B, W), (B, W)
        tokens = self.tokens(fused)  # (B, N, D)
        self.check_length(tokens, word_ids)
        logits = self.classifier(tokens)  # (B, N, T)
        word_logits = logits.gather(1, first[..., None].expand(-1, -1, logits.shape[-1]))  # (B, W, T)
        best = word_logits.argmax(-1) if self.crf is None else self.crf.decode(word_logits, has_token)  # (B, W)
        predictions = best.masked_fill(~has_token, self.tags.index("O") if "O" in self.tags else 0)  # (B, W)
        loss = None
        if target is not None:
            wanted = target.masked_fill(~has_token, IGNORE)
            if not (wanted != IGNORE).any():
                loss = logits.sum() * 0.0
            elif self.crf is not None:
                loss = self.crf.nll(word_logits, wanted, wanted != IGNORE)
            else:
                loss = F.cross_entropy(word_logits.flatten(0, 1), wanted.flatten(), ignore_index=IGNORE)
        else:
            lengths = (word_ids.max(1).values + 1).clamp(min=0)  # (B,) words seen per sample
            predictions = predictions.masked_fill(
                torch.arange(words, device=word_ids.device)[None] >= lengths[:, None], IGNORE
            )
        return HeadOutput(loss=loss, predictions=predictions, logits=word_logits)

    def make_metrics(self) -> dict[str, nn.Module]:
        return {"entity": EntityF1(self.tags)}

    def metric_values(self, name: str, value: Tensor) -> dict[str, float]:
        types = sorted({tag.partition("-")[2] for tag in self.tags if tag != "O"})
        names = ["precision", "recall", "f1"] + [f"f1/{kind}" for kind in types]
        return dict(zip(names, map(float, value.tolist())))

    def example_targets(self, count: int) -> list[Any]:
        cycle = [["B-PER", "I-PER", "O"], ["O", "B-LOC"], ["B-ORG"]]
        return [cycle[i % 3] for i in range(count)]

    def word_ids(self, encoded: Mapping[str, Features]) -> Tensor:
        features = encoded.get(self.source)
        if features is None or features.word_ids is None:
            raise ValueError(
                f"head '{self.name}' tags words, but encoder '{self.source}' gives no word_ids (Features.word_ids): "
                "use an encoder whose tokens come from words (TextEncoder), or set modality=KEY"
            )
        return features.word_ids


def first_tokens(word_ids: Tensor, words: int) -> tuple[Tensor, Tensor]:
    """Each word's first token position, and whether it has one. ``(B, N) -> (B, W), (B, W)``."""
    batch, length = word_ids.shape
    bucket = torch.where((word_ids >= 0) & (word_ids < words), word_ids, words)  # (B, N); extra bucket for the rest
    positions = torch.arange(length, device=word_ids.device).expand(batch, length)
    first = torch.full((batch, words + 1), length, dtype=torch.long, device=word_ids.device)
    first = first.scatter_reduce(1, bucket, positions, reduce="amin")[:, :words]  # (B, W)
    has_token = first < length
    return first.clamp(max=length - 1), has_token
