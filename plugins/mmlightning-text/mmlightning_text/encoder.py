"""`TextEncoder`: token embeddings + positions + a Transformer stack."""

from __future__ import annotations

import random
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from mmlightning import Encoder, Features
from mmlightning.layers import TransformerStack, sinusoidal_positions
from mmlightning_text.processor import TextProcessor
from mmlightning_text.tokenizer import pad_id, train_tokenizer


class TextEncoder(Encoder):
    """Transformer text encoder over a WordPiece/BPE tokenizer trained on the data or loaded from a file."""

    modality = "text"

    def __init__(
        self,
        dim: int = 256,
        layers: int = 4,
        heads: int = 4,
        mlp_ratio: int = 4,
        dropout: float = 0.1,
        max_length: int = 128,
        tokenizer: Literal["wordpiece", "bpe"] = "wordpiece",
        vocab_size: int = 8000,
        lowercase: bool = True,
        tokenizer_file: str | None = None,
        positions: Literal["learned", "sinusoidal"] = "learned",
        pooling: Literal["mean", "cls"] = "mean",
    ) -> None:
        super().__init__()
        self.dim, self.max_length, self.pooling = dim, max_length, pooling
        self.kind, self.vocab_size, self.lowercase = tokenizer, vocab_size, lowercase
        self.embed: Any = None  # built in set_fitted
        if positions == "learned":
            self.positions = nn.Parameter(torch.randn(max_length, dim) * 0.02)  # (L, D)
        else:
            self.register_buffer("positions", sinusoidal_positions(max_length, dim), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.stack = TransformerStack(dim, layers, heads, mlp_ratio, dropout)
        if tokenizer_file:
            self.set_fitted({"tokenizer": Path(tokenizer_file).read_text(encoding="utf-8")})

    def fit(self, values: Sequence[Any]) -> None:
        texts = [v if isinstance(v, str) else " ".join(v) for v in values if isinstance(v, (str, list))]
        if not texts:
            raise ValueError(
                "No training text to learn a tokenizer from; give --model.encoders.KEY.tokenizer_file instead"
            )
        self.set_fitted({"tokenizer": train_tokenizer(texts, self.kind, self.vocab_size, self.lowercase).to_str()})

    def set_fitted(self, state: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        super().set_fitted(state)
        self.tokenizer = Tokenizer.from_str(state["tokenizer"])
        vocab = self.tokenizer.get_vocab_size()
        if self.embed is None or self.embed.num_embeddings != vocab:
            self.embed = nn.Embedding(vocab, self.dim, padding_idx=pad_id(self.tokenizer))

    def input_embeddings(self) -> nn.Embedding | None:
        """The token embeddings (None before the tokenizer exists); ELECTRA's generator shares them."""
        embed: nn.Embedding | None = self.embed
        return embed

    def processor(self) -> TextProcessor:
        return TextProcessor(self.tokenizer if self.is_fitted else None, self.max_length)

    def facts(self) -> dict[str, Any]:
        if not self.is_fitted:
            return {}
        return {
            "vocab_size": self.tokenizer.get_vocab_size(),
            "tokenizer": (self.fitted or {})["tokenizer"],
            **{
                f"{name}_id": self.tokenizer.token_to_id(f"[{name.upper()}]")
                for name in ("pad", "unk", "cls", "sep", "mask")
            },
        }

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        ids, mask = inputs["ids"], inputs["mask"]  # (B, L), (B, L)
        x = self.drop(self.embed(ids) + self.positions[: ids.shape[1]])  # (B, L, D)
        x = self.stack(x, mask)  # (B, L, D)
        pooled = x[:, 0] if self.pooling == "cls" else None  # (B, D) or mean of real tokens
        features = Features.from_tokens(x, mask, inputs.get("present"), pooled)
        features.word_ids = inputs.get("word_ids")  # (B, L)
        return features

    def example_values(self, root: Path, count: int) -> list[Any]:
        rng = random.Random(0)
        return [
            " ".join(
                "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 7))) for _ in range(rng.randint(1, 9))
            )
            for _ in range(count)
        ]
