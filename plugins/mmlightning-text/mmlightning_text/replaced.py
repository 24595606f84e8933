"""ELECTRA's replaced-token detection: a small generator fills masked tokens, the encoder learns which were replaced."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlightning import Batch, Features, Head, HeadOutput
from mmlightning.layers import TransformerStack, sinusoidal_positions
from mmlightning.processing import NoPrediction
from mmlightning_text.masked import IGNORE, _Flat

DISCRIMINATOR, GENERATOR, MASKED = 0, 1, 2  # the three planes of the head's target, (B, L, 3)


class ReplacedTokenHead(Head):
    """ELECTRA (Clark et al. 2020) as an objective head: the text encoder is the discriminator.

    ``prepare_batch`` masks ``rate`` of each text's real tokens ([CLS], [SEP] and padding never); a small generator
    (a masked-language model of ``generator_layers`` Transformer layers that shares the encoder's token embeddings
    and predicts through them, as ELECTRA does) fills each masked place by sampling from its prediction; the
    encoder then reads that corrupted text, and a per-token linear layer on the fused ``modality`` tokens says
    whether each token was replaced. A sampled token that happens to be the original counts as not replaced.
    The sampling is discrete and runs without gradient, so the discriminator's loss never reaches the generator.

    Loss: generator MLM + ``weight`` x discriminator (binary cross-entropy over every real token); ``weight=50`` as
    in the paper. Logs ``replaced_acc``, the discriminator's per-token accuracy. The encoder (the discriminator) is what to keep: fine-tune it with
    ``InitFrom(checkpoint, parts=[encoders.KEY])``. Needs a text encoder that gives its token embeddings
    (``input_embeddings()``, as ``TextEncoder`` does) and a fusion that keeps tokens.
    """

    needs_tokens = True
    modality = "text"
    uses_target = False

    def __init__(
        self,
        dim: int,
        modality: str = "text",
        rate: float = 0.15,
        weight: float = 50.0,
        generator_layers: int = 1,
        generator_heads: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if not 0 < rate < 1:
            raise ValueError(f"rate must be between 0 and 1, got {rate}")
        if weight <= 0:
            raise ValueError(f"weight must be positive, got {weight}")
        self.in_dim, self.source, self.rate, self.weight = dim, modality, rate, weight
        self.generator_layers, self.generator_heads, self.dropout = generator_layers, generator_heads, dropout
        self.discriminate = nn.Linear(dim, 1)
        self.generator: Any = None  # built in set_fitted, with the encoder's embedding width

    def set_fitted(self, state: dict[str, Any]) -> None:
        super().set_fitted(state)
        facts = self.context.facts(self.source)
        if "vocab_size" not in facts or facts.get("mask_id") is None:
            raise ValueError(
                f"head '{self.name}' replaces the '{self.source}' encoder's tokens, but that encoder gives no vocabulary "
                "with a [MASK] token (its facts() has no vocab_size / mask_id): use TextEncoder, or set modality=KEY"
            )
        self.vocab, self.mask_id = int(facts["vocab_size"]), int(facts["mask_id"])
        width = self.embedding().embedding_dim
        if self.generator is None or self.generator.out_bias.shape[0] != self.vocab:
            self.generator = Generator(width, self.vocab, self.generator_layers, self.generator_heads, self.dropout)

    def embedding(self) -> nn.Embedding:
        """The encoder's token embeddings, which the generator shares (a reference: the encoder owns them)."""
        encoder = self.context.encoders.get(self.source)
        found = getattr(encoder, "input_embeddings", lambda: None)()
        if not isinstance(found, nn.Embedding):
            raise ValueError(
                f"head '{self.name}': the '{self.source}' encoder ({type(encoder).__name__}) does not give its token "
                "embeddings (input_embeddings()), which the generator shares; use TextEncoder"
            )
        return found

    def generate(self, masked: Tensor, mask: Tensor) -> Tensor:
        """The generator's logits over the vocabulary at every place of ``masked`` ids: ``(B, L, V)``."""
        generator: Generator = self.generator
        return generator(masked, mask, self.embedding())

    def prepare_batch(self, batch: Batch, stage: str) -> Batch:
        if stage not in ("train", "val"):
            return batch
        text = batch.inputs[self.source]
        ids, mask = text["ids"], text["mask"]  # (B, L)
        generator = None if stage == "train" else torch.Generator(device=ids.device).manual_seed(0)
        real = mask & (text["word_ids"] >= 0) if "word_ids" in text else mask  # not [CLS]/[SEP]/padding
        chosen = real & (torch.rand(ids.shape, generator=generator, device=ids.device) < self.rate)  # (B, L)
        masked = ids.masked_fill(chosen, self.mask_id)
        corrupted = ids.clone()
        if chosen.any():
            with torch.no_grad():
                logits = self.generate(masked, mask)[chosen].float()  # (M, V) at the masked places
                logits[:, self.mask_id] = -1e4  # never sample [MASK] itself
                corrupted[chosen] = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
        target = replaced_targets(ids, corrupted, chosen, real, masked)
        inputs = {**batch.inputs, self.source: {**text, "ids": corrupted}}
        return dataclasses.replace(batch, inputs=inputs, targets={**batch.targets, self.name: target})

    def losses(self, discriminator: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(generator MLM loss, discriminator loss) for ``(B, L)`` discriminator logits and the ``(B, L, 3)`` target."""
        labels = target[..., DISCRIMINATOR]
        valid = labels != IGNORE
        disc = (
            F.binary_cross_entropy_with_logits(discriminator[valid].float(), labels[valid].float())
            if valid.any()
            else discriminator.sum() * 0.0
        )
        originals = target[..., GENERATOR]
        if not (originals != IGNORE).any():
            return discriminator.sum() * 0.0, disc
        logits = self.generate(target[..., MASKED], mask)  # (B, L, V), with gradient this time
        gen = F.cross_entropy(logits.flatten(0, 1).float(), originals.flatten(), ignore_index=IGNORE)
        return gen, disc

    def forward(self, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> HeadOutput:
        if self.source not in fused.spans:
            raise ValueError(
                f"head '{self.name}' reads the '{self.source}' tokens, but the fusion kept none; use a token-level "
                "fusion such as SingleStreamFusion"
            )
        tokens = fused.tokens[:, fused.spans[self.source]]  # (B, L, D)
        logits = self.discriminate(tokens).squeeze(-1)  # (B, L): > 0 says "replaced"
        target = batch.targets.get(self.name)
        loss = None
        if target is not None:
            if target.shape[1] != logits.shape[1]:
                raise ValueError(
                    f"head '{self.name}': the fusion kept {logits.shape[1]} '{self.source}' tokens for "
                    f"{target.shape[1]} text tokens; use a fusion that keeps every token (SingleStreamFusion, ...)"
                )
            gen, disc = self.losses(logits, target, batch.inputs[self.source]["mask"])
            loss = gen + self.weight * disc
        return HeadOutput(loss=loss, predictions=(logits > 0).long(), logits=logits)

    def make_metrics(self) -> dict[str, nn.Module]:
        from torchmetrics.classification import BinaryAccuracy

        return {"replaced_acc": _Replaced(BinaryAccuracy(ignore_index=IGNORE))}

    def metric_inputs(self, output: HeadOutput, batch: Batch) -> tuple[Tensor, Tensor] | None:
        target = batch.targets.get(self.name)
        return None if target is None or output.logits is None else (output.logits, target[..., DISCRIMINATOR])

    def target(self) -> NoPrediction:
        return NoPrediction()

    def example_inputs(self, encoded: Mapping[str, Features], targets: Any) -> dict[str, dict[str, Tensor]]:
        b, n = encoded[self.source].mask.shape
        word_ids = torch.arange(n).expand(b, n).clone()
        word_ids[:, 0] = -1
        ids = torch.randint(5, self.vocab, (b, n))
        return {self.source: {"ids": ids, "mask": torch.ones(b, n, dtype=torch.bool), "word_ids": word_ids}}


def replaced_targets(ids: Tensor, corrupted: Tensor, chosen: Tensor, real: Tensor, masked: Tensor) -> Tensor:
    """The head's ``(B, L, 3)`` target: per token whether it was replaced (1/0; -100 off the real tokens), the
    original id where the generator had to fill it (else -100), and the masked ids the generator read."""
    replaced = (corrupted != ids).long().masked_fill(~real, IGNORE)  # a lucky draw of the original is not replaced
    originals = ids.masked_fill(~chosen, IGNORE)
    return torch.stack([replaced, originals, masked], -1)


class Generator(nn.Module):
    """ELECTRA's generator: shared token embeddings, fixed sine positions, a small Transformer, and logits through
    the shared embedding matrix (tied input and output, plus a bias)."""

    def __init__(self, dim: int, vocab: int, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.stack = TransformerStack(dim, layers, heads, 4, dropout)
        self.transform = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim))
        self.out_bias = nn.Parameter(torch.zeros(vocab))

    def forward(self, ids: Tensor, mask: Tensor, embedding: nn.Embedding) -> Tensor:
        x = embedding(ids)  # (B, L, D)
        x = x + sinusoidal_positions(ids.shape[1], x.shape[-1]).to(x)
        x = self.transform(self.stack(x, mask))  # (B, L, D)
        return x @ embedding.weight.T + self.out_bias  # (B, L, V)


class _Replaced(_Flat):
    """Binary accuracy of ``(B, L)`` logits against ``(B, L)`` 1/0/-100 targets, flattened."""

    def update(self, logits: Tensor, target: Tensor) -> None:
        self.metric.update(logits.flatten().sigmoid(), target.flatten())
