"""Text -> token ids, and a batch of them padded with a mask."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import Tensor

from mmlightning import Processor
from mmlightning_text.tokenizer import pad_id


class TextProcessor(Processor):
    """Tokenizes one text (truncated to ``max_length`` tokens); pads a batch to its longest text."""

    def __init__(self, tokenizer: Tokenizer, max_length: int) -> None:
        self.tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.pad = pad_id(self.tokenizer)

    def check(self, value: Any, root: Path) -> None:
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {type(value).__name__} {value!r}")
        if not value.strip():
            raise ValueError("empty text")

    def __call__(self, value: Any, root: Path, train: bool) -> dict[str, Tensor]:
        self.check(value, root)
        return {"ids": torch.tensor(self.tokenizer.encode(value).ids, dtype=torch.long)}

    def blank(self) -> dict[str, Tensor]:
        return {"ids": torch.tensor(self.tokenizer.encode("").ids or [self.pad], dtype=torch.long)}

    def collate(self, items: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        longest = max(len(item["ids"]) for item in items)
        ids = torch.full((len(items), longest), self.pad, dtype=torch.long)  # (B, L)
        mask = torch.zeros(len(items), longest, dtype=torch.bool)  # (B, L)
        for row, item in enumerate(items):
            ids[row, : len(item["ids"])] = item["ids"]
            mask[row, : len(item["ids"])] = True
        return {"ids": ids, "mask": mask}

    def preview(self, value: Any, root: Path) -> Any:
        return value
