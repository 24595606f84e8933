"""A frozen encoder's features, computed once per sample and reused in later epochs (linear probes and
fusion-only training then cost one forward pass of the encoder, not one per epoch).

It applies only where it cannot change a result: the encoder has no trainable parameter and runs in eval mode,
and its processor has no random augmentation while training (``Processor.random_in_training``). Entries are keyed
on the sample (its raw values and media folder) and on a fingerprint of the encoder's weights, so new weights
(unfrozen, loaded) never meet old features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmlightning.features import Features


def fingerprint(module: nn.Module) -> tuple[float, ...]:
    """A cheap summary of the weights: changes whenever a weight does (in practice)."""
    with torch.no_grad():
        sums = [
            torch.stack([t.double().sum(), t.double().abs().sum(), t.double().pow(2).sum()])
            for t in module.state_dict().values()
        ]
        return tuple(torch.stack(sums).sum(0).tolist()) if sums else ()


class FeatureCache:
    """Per encoder key: sample key -> that sample's features (its own tokens, unpadded), on the CPU."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[Any, dict[str, Tensor | None]]] = {}
        self.prints: dict[str, tuple[float, ...]] = {}
        self.hits = self.misses = 0

    def check(self, key: str, encoder: nn.Module) -> None:
        """Forget ``key``'s features if its weights changed since they were computed."""
        now = fingerprint(encoder)
        if self.prints.get(key) != now:
            self.entries.pop(key, None)
            self.prints[key] = now

    def encode(
        self,
        key: str,
        samples: Sequence[Any],
        inputs: dict[str, Tensor],
        encode: Callable[[dict[str, Tensor]], Features],
    ) -> Features:
        """Features for a batch: cached rows reused, the others encoded (only those rows) and stored."""
        store = self.entries.setdefault(key, {})
        missing = [i for i, sample in enumerate(samples) if sample not in store]
        self.hits, self.misses = self.hits + len(samples) - len(missing), self.misses + len(missing)
        if missing:
            rows = torch.tensor(missing, device=inputs["present"].device)
            fresh = encode({name: t.index_select(0, rows) for name, t in inputs.items()})
            for j, i in enumerate(missing):
                store[samples[i]] = _one(fresh, j)
        return _batch([store[sample] for sample in samples], inputs["present"])


def _one(features: Features, row: int) -> dict[str, Any]:
    length = int(features.mask[row].nonzero().max()) + 1 if features.mask[row].any() else 1
    word_ids = None if features.word_ids is None else features.word_ids[row, :length].cpu()
    return {
        "tokens": features.tokens[row, :length].cpu(),
        "mask": features.mask[row, :length].cpu(),
        "pooled": features.pooled[row].cpu(),
        "word_ids": word_ids,
        "grid": features.grid,
    }


def _batch(items: list[dict[str, Any]], present: Tensor) -> Features:
    """Stored rows -> padded Features on ``present``'s device. ``-> tokens (B, N, D)``."""
    device, longest = present.device, max(item["tokens"].shape[0] for item in items)
    tokens = torch.stack(
        [nn.functional.pad(item["tokens"], (0, 0, 0, longest - item["tokens"].shape[0])) for item in items]
    ).to(device)
    mask = torch.stack([nn.functional.pad(item["mask"], (0, longest - item["mask"].shape[0])) for item in items]).to(
        device
    )
    pooled = torch.stack([item["pooled"] for item in items]).to(device)
    features = Features.from_tokens(tokens, mask, present, pooled)
    features.grid = items[0]["grid"]
    if items[0]["word_ids"] is not None:
        features.word_ids = torch.stack(
            [nn.functional.pad(item["word_ids"], (0, longest - item["word_ids"].shape[0]), value=-1) for item in items]
        ).to(device)
    return features
