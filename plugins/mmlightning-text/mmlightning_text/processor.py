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

CHARS_PER_TOKEN = 64  # a long text is cut to this many characters a token before it is tokenised, when the tokens
# kept end in the first half of the cut: no word of thousands of characters straddles its end


class TextProcessor(Processor):
    """Tokenizes one text (truncated to ``max_length`` tokens); pads a batch to its longest text.

    A value is a string, or a list of words (already split, as in NER data). Besides ``ids`` and ``mask`` it
    gives ``word_ids``: the word each token came from (-1 for [CLS], [SEP] and padding), so token-level
    heads can map sub-word tokens back to words. ``tokenizer``: a ``tokenizers.Tokenizer`` or its JSON; None
    before the encoder learnt one (such a processor only checks values). ``case``: also give ``case``, the
    capitalisation of each token's word (see `CASES`), which a lowercasing tokenizer throws away.
    """

    reads_files = False  # a value is the text itself

    def __init__(self, tokenizer: Tokenizer | str | None, max_length: int, case: bool = False) -> None:
        self.max_length, self.tokenizer, self.case = max_length, None, case
        if tokenizer is not None:
            self.tokenizer = Tokenizer.from_str(tokenizer if isinstance(tokenizer, str) else tokenizer.to_str())
            self.tokenizer.no_padding()
            self.tokenizer.enable_truncation(max_length)
            self.pad = pad_id(self.tokenizer)

    def state(self) -> dict[str, Any]:
        tokenizer = None if self.tokenizer is None else self.tokenizer.to_str()
        return {"tokenizer": tokenizer, "max_length": self.max_length, "case": self.case}

    def _fitted(self) -> Tokenizer:
        if self.tokenizer is None:
            raise RuntimeError("this text processor has no tokenizer yet: the encoder learns it from the training text")
        return self.tokenizer

    def check(self, value: Any, root: Path) -> None:
        if isinstance(value, list):
            if not value:
                raise ValueError("empty list of words")
            bad = [w for w in value if not isinstance(w, str) or not w.strip()]
            if bad:
                raise ValueError(f"expected a list of non-empty words, found {bad[0]!r}")
            return
        if not isinstance(value, str):
            raise ValueError(f"expected text or a list of words, got {type(value).__name__} {value!r}")
        if not value.strip():
            raise ValueError("empty text")

    def __call__(self, value: Any, root: Path, train: bool) -> dict[str, Tensor]:
        self.check(value, root)
        value, encoding = self._encode(value)
        words = [-1 if w is None else w for w in encoding.word_ids]
        out = {"ids": torch.tensor(encoding.ids, dtype=torch.long), "word_ids": torch.tensor(words, dtype=torch.long)}
        if self.case:
            out["case"] = torch.tensor(case_classes(value, words, encoding.offsets), dtype=torch.long)
        return out

    def decoded(self, value: Any, root: Path) -> dict[str, Tensor] | None:
        """The token ids (all of ``__call__``'s output: nothing is random); none before the tokenizer is learnt."""
        return None if self.tokenizer is None else self(value, root, train=False)

    def from_decoded(self, decoded: dict[str, Tensor], train: bool) -> dict[str, Tensor]:
        return dict(decoded)

    def truncates(self, value: Any) -> bool:
        if not isinstance(value, str):
            return False
        tokenizer = self._fitted()
        tokenizer.no_truncation()
        try:
            return len(tokenizer.encode(value[: 4 * self.max_length * CHARS_PER_TOKEN]).ids) > self.max_length
        finally:
            tokenizer.enable_truncation(self.max_length)

    def _encode(self, value: Any) -> tuple[Any, Any]:
        """The encoding of ``value`` cut to ``max_length`` tokens, and the text it was read from. A long string is
        cut to its first ``CHARS_PER_TOKEN`` characters a token before tokenising (a 50 MB request body is not
        tokenised whole to keep 128 tokens); the cut is kept only when the tokens kept end in its first half, so the
        result is the whole string's, and the whole string is tokenised otherwise."""
        tokenizer = self._fitted()
        if isinstance(value, list):
            return value, tokenizer.encode(value, is_pretokenized=True)
        limit = self.max_length * CHARS_PER_TOKEN
        if len(value) > limit:
            head = value[:limit]
            encoding = tokenizer.encode(head)
            end = max((stop for _, stop in encoding.offsets), default=0)
            if len(encoding.ids) >= self.max_length and end <= limit // 2:
                return head, encoding
        return value, tokenizer.encode(value)

    def corruptions(self) -> tuple[str, ...]:
        return ("token_dropout", "typos")

    def corrupt(
        self, value: Any, root: Path, kind: str, severity: float, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """``token_dropout``: each token (not [CLS]/[SEP]) left out with probability ``severity``; ``typos``: each
        word, with probability ``severity``, gets one edit (two letters swapped, one dropped or one doubled)."""
        if kind == "token_dropout":
            item = self(value, root, train=False)
            keep = (torch.rand(item["ids"].shape, generator=generator) >= severity) | (item["word_ids"] < 0)
            return {name: tensor[keep] for name, tensor in item.items()}
        if kind == "typos":
            words = list(value) if isinstance(value, list) else value.split(" ")
            draws = torch.rand(len(words), 3, generator=generator).tolist()
            typed = [_typo(w, how, where) if hit < severity else w for w, (hit, how, where) in zip(words, draws)]
            return self(typed if isinstance(value, list) else " ".join(typed), root, train=False)
        raise ValueError(f"no text corruption '{kind}': choose from {', '.join(self.corruptions())}")

    def blank(self) -> dict[str, Tensor]:
        ids = self._fitted().encode("").ids or [self.pad]
        out = {"ids": torch.tensor(ids, dtype=torch.long), "word_ids": torch.full((len(ids),), -1, dtype=torch.long)}
        if self.case:
            out["case"] = torch.zeros(len(ids), dtype=torch.long)
        return out

    def collate(self, items: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        longest = max(len(item["ids"]) for item in items)
        ids = torch.full((len(items), longest), self.pad, dtype=torch.long)  # (B, L)
        mask = torch.zeros(len(items), longest, dtype=torch.bool)  # (B, L)
        words = torch.full((len(items), longest), -1, dtype=torch.long)  # (B, L)
        case = torch.zeros(len(items), longest, dtype=torch.long) if self.case else None  # (B, L)
        for row, item in enumerate(items):
            ids[row, : len(item["ids"])] = item["ids"]
            mask[row, : len(item["ids"])] = True
            words[row, : len(item["ids"])] = item["word_ids"]
            if case is not None:
                case[row, : len(item["ids"])] = item["case"]
        out = {"ids": ids, "mask": mask, "word_ids": words}
        return out if case is None else {**out, "case": case}

    def preview(self, value: Any, root: Path) -> Any:
        return " ".join(value) if isinstance(value, list) else value


CASES = ("none", "no letters", "lower", "UPPER", "Title", "miXed")  # the ``case`` ids; "none": special tokens, padding


def case_classes(value: Any, words: Sequence[int], offsets: Sequence[tuple[int, int]]) -> list[int]:
    """The `CASES` id of each token's word. ``value``: the text or its words; ``words``: each token's word (-1 for
    none); ``offsets``: each token's characters (in its word for a list of words, in the text otherwise)."""
    if isinstance(value, list):
        texts = {w: value[w] for w in set(words) if w >= 0}
    else:
        spans: dict[int, list[int]] = {}
        for w, (start, end) in zip(words, offsets):
            if w >= 0:
                span = spans.setdefault(w, [start, end])
                span[0], span[1] = min(span[0], start), max(span[1], end)
        texts = {w: value[a:b] for w, (a, b) in spans.items()}
    kinds = {w: _case(text) for w, text in texts.items()}
    return [kinds[w] if w >= 0 else 0 for w in words]


def _case(word: str) -> int:
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return 1
    if all(c.islower() for c in letters):
        return 2
    if all(c.isupper() for c in letters):
        return 3 if len(letters) > 1 else 4
    return 4 if letters[0].isupper() and all(c.islower() for c in letters[1:]) else 5


def _typo(word: str, how: float, where: float) -> str:
    """One edit of a word: two neighbouring letters swapped, one dropped, or one doubled (never emptied)."""
    if len(word) < 2:
        return word + word
    at = min(int(where * (len(word) - 1)), len(word) - 2)
    if how < 1 / 3:
        return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    if how < 2 / 3:
        return word[:at] + word[at + 1 :]
    return word[: at + 1] + word[at] + word[at + 1 :]
