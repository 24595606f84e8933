"""Captioning: an autoregressive Transformer decoder that cross-attends to the fused tokens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlightning import Batch, Features, Head, HeadOutput, TargetCodec
from mmlightning.layers import TransformerStack
from mmlightning_text.metrics import CaptionScores
from mmlightning_text.tokenizer import pad_id, train_tokenizer


class CaptionHead(Head):
    """Generates text from the fused features (GPT-style decoding, conditioned on every fused token).

    Trained with teacher forcing: causal self-attention over the caption so far, cross-attention to the fused
    tokens, cross-entropy on the next token. ``validate``/``test`` generate (greedy, or beam search with
    ``decoding="beam"``) and report corpus BLEU-4 and ROUGE-L against every reference caption of the same
    input: rows sharing the raw value of the ``group_by`` column (e.g. the image path) are one input with
    several references. ``predict`` writes the generated text. The tokenizer is learnt from the training
    captions and saved in the checkpoint.
    """

    modality = "text"

    def __init__(
        self,
        dim: int,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
        max_length: int = 32,
        vocab_size: int = 4000,
        tokenizer: Literal["wordpiece", "bpe"] = "wordpiece",
        decoding: Literal["greedy", "beam"] = "greedy",
        beam_size: int = 3,
        group_by: str | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if decoding not in ("greedy", "beam"):
            raise ValueError(f"decoding must be 'greedy' or 'beam', got {decoding!r}")
        self.dim, self.max_length, self.vocab_size, self.kind = dim, max_length, vocab_size, tokenizer
        self.decoding, self.beam_size, self.group_by, self.label_smoothing = (
            decoding,
            beam_size,
            group_by,
            label_smoothing,
        )
        self.positions = nn.Parameter(torch.randn(max_length, dim) * 0.02)  # (L, D)
        self.decoder = TransformerStack(dim, layers, heads, dropout=dropout, cross=True)
        self.norm = nn.LayerNorm(dim)
        self.embed: Any = None  # built in set_fitted
        self.out: Any = None  # built in set_fitted

    # --- the vocabulary ---------------------------------------------------------------------------
    def fit(self, values: Sequence[Any]) -> None:
        texts = [v for v in values if isinstance(v, str) and v.strip()]
        if not texts:
            raise ValueError(f"head '{self.name}' found no caption text in the training split")
        self.set_fitted({"tokenizer": train_tokenizer(texts, self.kind, self.vocab_size, lowercase=True).to_str()})

    def set_fitted(self, state: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        super().set_fitted(state)
        self.tokenizer = Tokenizer.from_str(state["tokenizer"])
        self.tokenizer.no_padding()
        self.pad, self.bos, self.eos = (
            pad_id(self.tokenizer),
            _token(self.tokenizer, "[CLS]"),
            _token(self.tokenizer, "[SEP]"),
        )
        vocab = self.tokenizer.get_vocab_size()
        if self.embed is None or self.embed.num_embeddings != vocab:
            self.embed = nn.Embedding(vocab, self.dim, padding_idx=self.pad)
            self.out = nn.Linear(self.dim, vocab)

    def target(self) -> CaptionCodec:
        return CaptionCodec(self.fitted["tokenizer"] if self.fitted is not None else None, self.max_length)

    # --- decoding ---------------------------------------------------------------------------------
    def logits(self, ids: Tensor, memory: Tensor, memory_mask: Tensor) -> Tensor:
        """Next-token logits for every prefix. ``(B, L) ids, (B, M, D), (B, M) -> (B, L, V)``."""
        x = self.embed(ids) + self.positions[: ids.shape[1]]  # (B, L, D)
        x = self.decoder(x, ids != self.pad, context=memory, context_mask=memory_mask, causal=True)  # (B, L, D)
        return self.out(self.norm(x))

    @torch.no_grad()
    def generate(self, memory: Tensor, memory_mask: Tensor) -> Tensor:
        """Captions for a batch: ``(B, L)`` ids from [CLS] to [SEP], padded."""
        if self.decoding == "beam" and self.beam_size > 1:
            return self._beam(memory, memory_mask)
        ids = torch.full((memory.shape[0], 1), self.bos, dtype=torch.long, device=memory.device)  # (B, 1)
        done = torch.zeros(memory.shape[0], dtype=torch.bool, device=memory.device)
        for _ in range(self.max_length - 1):
            step = self.logits(ids, memory, memory_mask)[:, -1]  # (B, V)
            step[:, self.pad] = -1e4
            token = step.argmax(-1).masked_fill(done, self.pad)  # (B,)
            ids = torch.cat([ids, token[:, None]], 1)
            done |= token == self.eos
            if done.all():
                break
        return ids

    def _beam(self, memory: Tensor, memory_mask: Tensor) -> Tensor:
        """Beam search with length-normalised log-probabilities (a beam ends at [SEP])."""
        b, k, device = memory.shape[0], self.beam_size, memory.device
        memory, memory_mask = memory.repeat_interleave(k, 0), memory_mask.repeat_interleave(k, 0)  # (B*K, M, D)
        ids = torch.full((b * k, 1), self.bos, dtype=torch.long, device=device)
        scores = torch.full((b, k), -1e9, device=device)
        scores[:, 0] = 0.0  # all beams start identical: keep one
        done = torch.zeros(b * k, dtype=torch.bool, device=device)
        for _ in range(self.max_length - 1):
            step = self.logits(ids, memory, memory_mask)[:, -1].log_softmax(-1)  # (B*K, V)
            step[:, self.pad] = -1e9
            step[done] = -1e9
            step[done, self.pad] = 0.0  # a finished beam only pads, at no cost
            total = (scores.view(-1, 1) + step).view(b, -1)  # (B, K*V)
            scores, flat = total.topk(k, dim=1)  # (B, K)
            beam, token = flat // step.shape[1], flat % step.shape[1]
            rows = (beam + torch.arange(b, device=device)[:, None] * k).view(-1)  # (B*K,)
            ids = torch.cat([ids[rows], token.view(-1, 1)], 1)
            done = done[rows] | (token.view(-1) == self.eos)
            if done.all():
                break
        lengths = (ids != self.pad).sum(1).view(b, k).float()
        best = (scores / lengths).argmax(1)  # (B,)
        return ids.view(b, k, -1)[torch.arange(b, device=device), best]

    # --- the head ---------------------------------------------------------------------------------
    def forward(self, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> HeadOutput:
        memory, memory_mask = fused.tokens, fused.mask  # (B, M, D), (B, M)
        target = batch.targets.get(self.name)  # (B, L) or None
        loss, logits = None, None
        if target is not None:
            logits = self.logits(target[:, :-1], memory, memory_mask)  # (B, L-1, V)
            wanted = target[:, 1:].masked_fill(target[:, 1:] == self.pad, -100)
            loss = F.cross_entropy(
                logits.flatten(0, 1), wanted.flatten(), ignore_index=-100, label_smoothing=self.label_smoothing
            )
        if self.training and logits is not None:
            return HeadOutput(loss=loss, predictions=logits.argmax(-1), logits=logits)  # generation is for eval
        return HeadOutput(loss=loss, predictions=self.generate(memory, memory_mask), logits=logits)

    def texts(self, ids: Tensor) -> list[str]:
        return texts(self.tokenizer, self.pad, ids)

    def make_metrics(self) -> dict[str, nn.Module]:
        return {"caption": CaptionScores()}

    def metric_inputs(self, output: HeadOutput, batch: Batch) -> tuple[Any, Any] | None:
        if self.training or self.name not in batch.targets:
            return None
        groups = batch.raw.get(self.group_by) if self.group_by else None
        groups = [str(g) for g in groups] if groups else list(batch.ids)
        return self.texts(output.predictions), list(zip(groups, self.texts(batch.targets[self.name])))

    def metric_values(self, name: str, value: Tensor) -> dict[str, float]:
        return dict(zip(("bleu4", "rougeL"), map(float, value.tolist())))

    def example_targets(self, count: int) -> list[Any]:
        words = ["a", "dog", "runs", "on", "the", "grass", "cat", "sleeps"]
        return [" ".join(words[(i + j) % len(words)] for j in range(3 + i % 3)) for i in range(count)]


class CaptionCodec(TargetCodec):
    """Captions -> token ids ([CLS] ... [SEP], cut at ``max_length``), batches padded; generated ids -> text."""

    def __init__(self, tokenizer: str | None, max_length: int) -> None:
        from tokenizers import Tokenizer

        self.max_length, self.tokenizer = max_length, None
        if tokenizer is not None:
            self.tokenizer = Tokenizer.from_str(tokenizer)
            self.tokenizer.no_padding()
            self.pad, self.eos = pad_id(self.tokenizer), _token(self.tokenizer, "[SEP]")

    def state(self) -> dict[str, Any]:
        return {"tokenizer": None if self.tokenizer is None else self.tokenizer.to_str(), "max_length": self.max_length}

    def check(self, value: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"expected a non-empty caption, got {value!r}")

    def encode(self, value: Any) -> Tensor:
        self.check(value)
        if self.tokenizer is None:
            raise RuntimeError("this caption codec has no tokenizer yet: the head learns it from the training captions")
        ids = self.tokenizer.encode(value).ids  # [CLS] ... [SEP]
        if len(ids) > self.max_length:
            ids = ids[: self.max_length - 1] + [self.eos]
        return torch.tensor(ids, dtype=torch.long)

    def collate(self, targets: Sequence[Tensor]) -> Tensor:
        return nn.utils.rnn.pad_sequence(list(targets), batch_first=True, padding_value=self.pad)  # (B, L)

    def decode(self, output: Any) -> list[Any]:
        return texts(self.tokenizer, self.pad, output.predictions)


def _token(tokenizer: Any, token: str) -> int:
    found = tokenizer.token_to_id(token)
    if found is None:
        raise ValueError(f"the caption tokenizer has no {token} token; one trained by CaptionHead has it")
    return found


def texts(tokenizer: Any, pad: int, ids: Tensor) -> list[str]:
    """Token ids ``(B, L)`` -> their texts, padding and special tokens left out."""
    return [tokenizer.decode([t for t in row if t != pad], skip_special_tokens=True) for row in ids.tolist()]
