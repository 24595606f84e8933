"""`TabularEncoder`: a record's columns -> a token each, plus a class token, through a Transformer (FT-Transformer).

Numbers get piecewise-linear embeddings over their training quantiles (Gorishniy et al. 2022, from
``rtdl-num-embeddings``), or periodic or linear ones; categories an embedding per column with an unknown id;
a missing cell of either kind a learnt "missing" embedding of its own column.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from mmlightning import Encoder, Features
from mmlightning.layers import TransformerStack
from mmlightning_tabular.columns import describe, fit_columns
from mmlightning_tabular.processor import RecordProcessor, as_record

log = logging.getLogger("mmlightning.tabular")
PROCESSOR_KEYS = ("columns", "kinds", "mean", "std", "vocab")


class TabularEncoder(Encoder):
    """Rows of a table: a token per column (numbers and categories), a class token, a few Transformer layers.

    By default it reads every column no other encoder, target or the id takes (``--data.columns`` may name them,
    or leave some out: ``{"record": ["*", "!rating"]}``). Whether a column is a number or a category is inferred
    from its training values; ``kinds`` overrides it per column (``{"zip": "category"}``).

    Args:
        dim: the width of each column's token.
        layers, heads, dropout: the Transformer over the columns.
        numeric: ``piecewise`` (piecewise-linear over bins, the default), ``periodic`` or ``linear``.
        bins: the most bins per number column.
        binning: ``quantile`` (the default) places the bins at the training quantiles; ``tree`` where a decision
            tree on that column splits it to predict the target (scikit-learn; the training split only).
        target: the head whose target steers ``tree`` bins; needed only when there are several heads.
        kinds: column -> ``number`` or ``category``.
        max_categories: a category column keeps its most frequent values up to this many.
    """

    modality = "record"

    def __init__(
        self,
        dim: int = 64,
        layers: int = 3,
        heads: int = 8,
        dropout: float = 0.1,
        numeric: Literal["piecewise", "periodic", "linear"] = "piecewise",
        bins: int = 48,
        kinds: dict[str, str] | None = None,
        max_categories: int = 1000,
        binning: Literal["quantile", "tree"] = "quantile",
        target: str | None = None,
    ) -> None:
        super().__init__()
        if numeric not in ("piecewise", "periodic", "linear"):
            raise ValueError(f"numeric must be 'piecewise', 'periodic' or 'linear', got {numeric!r}")
        if binning not in ("quantile", "tree"):
            raise ValueError(f"binning must be 'quantile' or 'tree', got {binning!r}")
        self.binning, self.target = binning, target
        self.dim, self.numeric_kind, self.bins, self.kinds = dim, numeric, bins, dict(kinds or {})
        self.max_categories = max_categories
        self.cls = nn.Parameter(torch.randn(dim) * 0.02)
        self.stack = TransformerStack(dim, layers, heads, dropout=dropout)
        self.numeric: nn.Module | None = None  # built in set_fitted: they depend on the columns
        self.number_missing: nn.Parameter | None = None
        self.categories: nn.Embedding | None = None
        self.offsets: Tensor
        self.register_buffer("offsets", torch.zeros(0, dtype=torch.long), persistent=False)

    def default_columns(self) -> str | list[str]:
        return list(self.fitted["columns"]) if self.fitted else "*"

    def fit(self, values: Sequence[Any]) -> None:
        if self.binning == "tree":
            log.warning("binning='tree' needs the targets, which this fit was not given: the bins are quantiles")
        self._fit(values, None)

    def fit_targets(self, values: Sequence[Any], targets: Mapping[str, Sequence[Any]]) -> None:
        if self.binning == "quantile":
            return self._fit(values, None)
        if self.target is not None and self.target not in targets:
            raise ValueError(f"TabularEncoder target={self.target!r} is not a head; the heads are {sorted(targets)}")
        if self.target is None and len(targets) != 1:
            raise ValueError(
                f"TabularEncoder binning='tree' needs to know which head's target to split on: there are "
                f"{len(targets)} ({sorted(targets)}); set target: to one of them"
            )
        return self._fit(values, targets[self.target or next(iter(targets))])

    def _fit(self, values: Sequence[Any], target: Sequence[Any] | None) -> None:
        records = [as_record(v) for v in values]
        state = fit_columns(records, self.kinds, self.bins, self.max_categories, target)
        log.info("record columns: %s", describe(state))
        self.set_fitted(state)

    def set_fitted(self, state: dict[str, Any]) -> None:
        if state == self.fitted:
            return
        super().set_fitted(state)
        columns, kinds = state["columns"], state["kinds"]
        numbers = [c for c in columns if kinds[c] == "number"]
        categories = [c for c in columns if kinds[c] == "category"]
        self.numeric = self._numeric([state["bins"][c] for c in numbers]) if numbers else None
        self.number_missing = nn.Parameter(torch.randn(len(numbers), self.dim) * 0.02) if numbers else None
        sizes = [len(state["vocab"][c]) + 2 for c in categories]
        self.categories = nn.Embedding(sum(sizes), self.dim) if sizes else None
        if self.categories is not None:
            nn.init.normal_(self.categories.weight, std=0.02)
        starts = torch.tensor([0, *sizes[:-1]], dtype=torch.long).cumsum(0) if sizes else torch.zeros(0)
        self.offsets = starts.long()

    def _numeric(self, bins: list[list[float]]) -> nn.Module:
        import rtdl_num_embeddings as rtdl

        if self.numeric_kind == "piecewise":
            edges = [torch.tensor(b, dtype=torch.float32) for b in bins]
            with warnings.catch_warnings():  # a column with one distinct value has one bin, by design
                warnings.filterwarnings("ignore", message=".*has just two bin edges")
                return rtdl.PiecewiseLinearEmbeddings(edges, self.dim, activation=False, version="B")
        if self.numeric_kind == "periodic":
            return rtdl.PeriodicEmbeddings(len(bins), self.dim, lite=False)
        return rtdl.LinearEmbeddings(len(bins), self.dim)

    def processor(self) -> RecordProcessor:
        state = self.fitted or {}
        return RecordProcessor(**{key: state[key] for key in PROCESSOR_KEYS if key in state})

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        present = inputs["present"]  # (B,)
        batch = present.shape[0]
        parts = [self.cls.expand(batch, 1, self.dim)]  # (B, 1, D)
        if self.numeric is not None and self.number_missing is not None:
            numbers = self.numeric(inputs["numbers"])  # (B, F_num, D)
            gone = inputs["number_missing"][..., None]  # (B, F_num, 1)
            parts.append(torch.where(gone, self.number_missing.expand_as(numbers), numbers))
        if self.categories is not None:
            parts.append(self.categories(inputs["categories"] + self.offsets))  # (B, F_cat, D)
        tokens = self.stack(torch.cat(parts, 1))  # (B, 1 + F, D)
        return Features.from_tokens(tokens, None, present, pooled=tokens[:, 0])

    def example_values(self, root: Path, count: int) -> list[Any]:
        sites = ("back", "face", None, "trunk")
        return [
            {"age": None if i % 4 == 3 else 30.0 + 7 * i, "sex": ("male", "female")[i % 2], "site": sites[i % 4]}
            for i in range(count)
        ]
