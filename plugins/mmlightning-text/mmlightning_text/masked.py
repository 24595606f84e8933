"""Masked language modelling: hide some text tokens before encoding and predict them from the fused features."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlightning import Batch, Features, Head, HeadOutput
from mmlightning.processing import NoPrediction

IGNORE = -100


class MaskedLanguageHead(Head):
    """BERT's masked-language objective over a text encoder's tokens, after fusion (so other modalities help).

    ``prepare_batch`` picks ``rate`` of each text's real tokens ([CLS], [SEP] and padding never) and replaces
    80% of them with [MASK], 10% with a random token and leaves 10%, on a copy of the batch; the head predicts
    the originals from the ``modality`` tokens the fusion kept (a token-level fusion: ``SingleStreamFusion``,
    ``CrossAttentionFusion``, ...). No target column. Logs ``acc`` (of the masked tokens) and ``perplexity``.
    Masking runs in training and validation (with a fixed seed there, so validation is comparable).
    """

    needs_tokens = True

    modality = "text"
    uses_target = False

    def __init__(self, dim: int, modality: str = "text", rate: float = 0.15, dropout: float = 0.1) -> None:
        super().__init__()
        if not 0 < rate < 1:
            raise ValueError(f"rate must be between 0 and 1, got {rate}")
        self.in_dim, self.source, self.rate = dim, modality, rate
        self.drop = nn.Dropout(dropout)
        self.out: Any = None  # built in set_fitted

    def set_fitted(self, state: dict[str, Any]) -> None:
        super().set_fitted(state)
        facts = self.context.facts(self.source)
        if "vocab_size" not in facts:
            raise ValueError(
                f"head '{self.name}' masks the '{self.source}' encoder's tokens, but that encoder gives no vocabulary "
                "(its facts() has no vocab_size): use a text encoder, or set modality=KEY"
            )
        mask_id = facts.get("mask_id")
        if mask_id is None:
            raise ValueError(
                f"the '{self.source}' tokenizer has no [MASK] token; a tokenizer trained by TextEncoder has one"
            )
        self.vocab, self.mask_id = facts["vocab_size"], int(mask_id)
        if self.out is None or self.out.out_features != self.vocab:
            self.out = nn.Linear(self.in_dim, self.vocab)

    def prepare_batch(self, batch: Batch, stage: str) -> Batch:
        if stage not in ("train", "val"):
            return batch
        text = batch.inputs[self.source]
        ids = text["ids"]  # (B, L)
        generator = None if stage == "train" else torch.Generator(device=ids.device).manual_seed(0)
        candidates = (
            text["mask"] & (text["word_ids"] >= 0) if "word_ids" in text else text["mask"]
        )  # real, not [CLS]/[SEP]
        draw = torch.rand(ids.shape, generator=generator, device=ids.device)
        chosen = candidates & (draw < self.rate)  # (B, L)
        action = torch.rand(ids.shape, generator=generator, device=ids.device)
        randoms = torch.randint(5, self.vocab, ids.shape, generator=generator, device=ids.device)
        corrupted = torch.where(chosen & (action < 0.8), torch.full_like(ids, self.mask_id), ids)
        corrupted = torch.where(chosen & (action >= 0.8) & (action < 0.9), randoms, corrupted)
        inputs = {**batch.inputs, self.source: {**text, "ids": corrupted}}
        targets = {**batch.targets, self.name: ids.masked_fill(~chosen, IGNORE)}
        return dataclasses.replace(batch, inputs=inputs, targets=targets)

    def forward(self, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> HeadOutput:
        if self.source not in fused.spans:
            raise ValueError(
                f"head '{self.name}' predicts the '{self.source}' tokens, but the fusion kept no tokens for it; "
                "use a token-level fusion such as SingleStreamFusion or CrossAttentionFusion"
            )
        tokens = fused.tokens[:, fused.spans[self.source]]  # (B, L, D)
        target = batch.targets.get(self.name)  # (B, L) original ids where masked, else -100
        if target is not None and tokens.shape[1] != target.shape[1]:
            raise ValueError(
                f"head '{self.name}': the fusion kept {tokens.shape[1]} '{self.source}' tokens for {target.shape[1]} text tokens; "
                "use a fusion that keeps every token (SingleStreamFusion, CrossAttentionFusion, ...), not a pooling one"
            )
        logits = self.out(self.drop(tokens))  # (B, L, V)
        loss = None
        if target is not None:
            loss = (
                F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE)
                if (target != IGNORE).any()
                else logits.sum() * 0.0
            )
        return HeadOutput(loss=loss, predictions=logits.argmax(-1), logits=logits)

    def make_metrics(self) -> dict[str, nn.Module]:
        from torchmetrics.classification import MulticlassAccuracy
        from torchmetrics.text import Perplexity

        return {
            "acc": _Flat(MulticlassAccuracy(self.vocab, average="micro", ignore_index=IGNORE)),
            "perplexity": Perplexity(ignore_index=IGNORE),
        }

    def metric_inputs(self, output: HeadOutput, batch: Batch) -> tuple[Tensor, Tensor] | None:
        target = batch.targets.get(self.name)
        return None if target is None or output.logits is None else (output.logits, target)

    def target(self) -> NoPrediction:
        return NoPrediction()

    def example_inputs(self, encoded: Mapping[str, Features], targets: Any) -> dict[str, dict[str, Tensor]]:
        features = encoded[self.source]
        b, n = features.mask.shape
        ids = torch.randint(5, self.vocab, (b, n))
        word_ids = torch.arange(n).expand(b, n).clone()
        word_ids[:, 0] = -1
        return {self.source: {"ids": ids, "mask": torch.ones(b, n, dtype=torch.bool), "word_ids": word_ids}}


class _Flat(nn.Module):
    """A metric fed ``(B, L, V)`` logits and ``(B, L)`` targets as ``(B*L, V)`` and ``(B*L,)``."""

    def __init__(self, metric: nn.Module) -> None:
        super().__init__()
        self.metric: Any = metric

    @property
    def update_count(self) -> int:
        return self.metric.update_count

    def update(self, logits: Tensor, target: Tensor) -> None:
        self.metric.update(logits.flatten(0, 1), target.flatten())

    def compute(self) -> Tensor:
        return self.metric.compute()

    def reset(self) -> None:
        self.metric.reset()
