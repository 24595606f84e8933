"""A frozen encoder's features, computed once per sample and reused in later epochs (linear probes and
fusion-only training then cost one forward pass of the encoder, not one per epoch).

It applies only where it cannot change a result: the encoder has no trainable parameter and runs in eval mode,
and its processor has no random augmentation while training (``Processor.random_in_training``). Entries are keyed
on the sample (its raw values and media folder) and on a fingerprint of the encoder's weights, so new weights
(unfrozen, loaded) never meet old features. In memory by default; on disk (SQLite, one file per encoder, weights
and processor settings) for sets whose features do not fit, reused by later runs of the same encoder.

A disk entry is a safetensors blob (tensors, and a JSON header): reading one never runs code. A cache file that is
corrupted, or holds an entry that is not such a blob, is renamed ``NAME.corrupt-TIME`` with a warning naming it, and
its features are computed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from mmlightning.errors import MMLightningError
from mmlightning.features import Features
from mmlightning.processing import CACHED

log = logging.getLogger(__name__)
FORMAT = "safetensors-1"  # part of each file's name: a file of an earlier format is never opened


class CacheError(MMLightningError):
    """A disk feature cache that cannot be used (its entries were lost when the loader had skipped their inputs)."""


class Unreadable(Exception):
    """A disk cache file or entry that cannot be read: the file has been set aside."""


def fingerprint(module: nn.Module) -> tuple[float, ...]:
    """A cheap summary of the weights: changes whenever a weight does (in practice)."""
    with torch.no_grad():
        sums = [
            torch.stack([t.double().sum(), t.double().abs().sum(), t.double().pow(2).sum()])
            for t in module.state_dict().values()
        ]
        return tuple(torch.stack(sums).sum(0).tolist()) if sums else ()


class DiskStore:
    """sample key -> features in one SQLite file: for sets whose features do not fit in memory. The file is named
    by the encoder key and a hash of its weights and processor, so a later run with the same encoder reuses it and
    one with other weights or settings never does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: sqlite3.Connection | None = None
        self.writes = 0

    def _open(self) -> sqlite3.Connection:
        db = self.db
        if db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                db = sqlite3.connect(self.path)
                db.execute("CREATE TABLE IF NOT EXISTS features (sample TEXT PRIMARY KEY, value BLOB)")
            except sqlite3.DatabaseError as err:
                self.set_aside(f"is not a readable SQLite file ({err})")
                db = sqlite3.connect(self.path)
                db.execute("CREATE TABLE features (sample TEXT PRIMARY KEY, value BLOB)")
            self.db = db
        return db

    def set_aside(self, reason: str) -> None:
        """Rename a corrupted file out of the way (kept for a look, never read again) and start an empty one."""
        if self.db is not None:
            self.db.close()
            self.db = None
        aside = self.path.with_name(
            f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9}"
        )
        if self.path.exists():
            self.path.rename(aside)
        log.warning("the feature cache %s %s; moved it to %s, and its features are computed again", self.path,
                    reason, aside.name)  # fmt: skip

    def __contains__(self, sample: Any) -> bool:
        try:
            found = self._open().execute("SELECT 1 FROM features WHERE sample = ?", (_digest(sample),)).fetchone()
        except sqlite3.DatabaseError as err:
            self.set_aside(f"is corrupted ({err})")
            return False
        return found is not None

    def __getitem__(self, sample: Any) -> dict[str, Any]:
        try:
            row = self._open().execute("SELECT value FROM features WHERE sample = ?", (_digest(sample),)).fetchone()
            if row is None:
                raise KeyError(sample)
            return unpack(row[0])  # tensors and JSON only: a blob written by anyone else never runs code here
        except (sqlite3.DatabaseError, ValueError) as err:
            self.set_aside(f"holds an entry that is not a features blob ({str(err).splitlines()[0][:120]})")
            raise Unreadable(str(self.path)) from None

    def __setitem__(self, sample: Any, value: dict[str, Any]) -> None:
        db = self._open()
        db.execute("INSERT OR REPLACE INTO features VALUES (?, ?)", (_digest(sample), pack(value)))
        self.writes += 1
        if self.writes % 256 == 0:
            db.commit()

    def __getstate__(self) -> dict[str, Any]:  # a connection does not pickle: reopened where it is used
        return {"path": self.path, "db": None, "writes": 0}

    def flush(self) -> None:
        if self.db is not None:
            self.db.commit()

    def close(self) -> None:
        if self.db is not None:
            self.db.commit()
            self.db.close()
            self.db = None


def pack(value: dict[str, Any]) -> bytes:
    """One sample's features -> a safetensors blob (its tensors; ``grid`` and ``present`` in the header)."""
    from safetensors.torch import save

    tensors = {key: t.contiguous() for key, t in value.items() if isinstance(t, Tensor)}
    return save(tensors, metadata={"grid": json.dumps(value.get("grid")), "present": json.dumps(value["present"])})


def unpack(blob: bytes) -> dict[str, Any]:
    """A blob of :func:`pack` -> the features; anything else is a ``ValueError``."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(bytes(blob))
        size = struct.unpack("<Q", blob[:8])[0]
        meta = json.loads(blob[8 : 8 + size]).get("__metadata__") or {}
        grid, present = json.loads(meta["grid"]), json.loads(meta["present"])
    except (SafetensorError, struct.error, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"not a features blob: {err}") from None
    if not {"tokens", "mask", "pooled"} <= set(tensors) or not isinstance(present, bool):
        raise ValueError(f"not a features blob: it holds {sorted(tensors)}")
    return {
        **tensors,
        "word_ids": tensors.get("word_ids"),
        "codes": tensors.get("codes"),
        "grid": None if grid is None else tuple(grid),
        "present": present,
    }


def _digest(value: Any) -> str:
    return hashlib.sha1(str(value).encode("utf-8")).hexdigest()


class FeatureCache:
    """Per encoder key: sample key -> that sample's features (its own tokens, unpadded), on the CPU, or with
    ``folder`` in a :class:`DiskStore` per encoder under it."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.entries: dict[str, Any] = {}
        self.prints: dict[str, tuple[Any, ...]] = {}
        self.folder = Path(folder) if folder else None
        self.hits = self.misses = 0

    def flush(self) -> None:
        """Write what a disk store holds (each epoch's end): a killed run keeps the features computed so far."""
        for store in self.entries.values():
            if isinstance(store, DiskStore):
                store.flush()

    def check(self, key: str, encoder: nn.Module, precision: str = "32-true") -> None:
        """Forget ``key``'s features if its weights, or the precision they are computed in, changed since."""
        now = (*fingerprint(encoder), precision)
        if self.prints.get(key) != now:
            old = self.entries.pop(key, None)
            if isinstance(old, DiskStore):
                old.close()
            self.prints[key] = now
            if self.folder is not None:
                settings = json.dumps(cast(Any, encoder).processor().state(), sort_keys=True, default=str)
                name = f"{key}-{_digest((now, settings, FORMAT))[:16]}.sqlite"
                self.entries[key] = DiskStore(self.folder / name)

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
        if missing and CACHED in inputs:
            raise CacheError(
                f"the loader skipped encoder {key!r}'s inputs as cached, but {len(missing)} sample(s) of the batch are "
                "not in its feature cache (was it cleared?); run again without --model.cache_dir, or report this"
            )
        if missing:
            rows = torch.tensor(missing, device=inputs["present"].device)
            fresh = encode({name: t.index_select(0, rows) for name, t in inputs.items()})
            for j, i in enumerate(missing):
                store[samples[i]] = _one(fresh, j)
        try:
            return _batch([store[sample] for sample in samples], inputs["present"])
        except Unreadable as err:  # the file was set aside: this batch's features are computed again
            if CACHED in inputs:
                raise CacheError(
                    f"the feature cache {err} was corrupted and is set aside, but the loader had skipped this batch's "
                    "inputs as cached; resume the run (--ckpt_path RUN/checkpoints/last.ckpt): its features are "
                    "computed again"
                ) from None
            fresh = encode(inputs)
            items = [_one(fresh, i) for i in range(len(samples))]
            for sample, item in zip(samples, items):
                store[sample] = item
            return _batch(items, inputs["present"])


def _one(features: Features, row: int) -> dict[str, Any]:
    length = int(features.mask[row].nonzero().max()) + 1 if features.mask[row].any() else 1
    word_ids = None if features.word_ids is None else features.word_ids[row, :length].cpu()
    codes = None if features.codes is None else features.codes[row, :length].cpu()
    return {  # copies: a view would keep (and torch.save would write) the whole batch's storage
        "tokens": features.tokens[row, :length].cpu().clone(),
        "mask": features.mask[row, :length].cpu().clone(),
        "pooled": features.pooled[row].cpu().clone(),
        "word_ids": None if word_ids is None else word_ids.clone(),
        "codes": None if codes is None else codes.clone(),
        "grid": features.grid,
        "present": bool(features.present[row]),  # a value that held nothing for the modality (no sound track)
    }


def _batch(items: list[dict[str, Any]], present: Tensor) -> Features:
    """Stored rows -> padded Features on ``present``'s device. ``-> tokens (B, N, D)``."""
    device, longest = present.device, max(item["tokens"].shape[0] for item in items)

    def padded(name: str, value: int = 0) -> Tensor:  # (B, N, ...) from each item's (n, ...)
        rows = [item[name] for item in items]
        if all(row.shape[0] == longest for row in rows):  # images, clips: every sample as long (no padding)
            return torch.stack(rows).to(device)
        extra = [(0, 0) * (row.dim() - 1) + (0, longest - row.shape[0]) for row in rows]
        return torch.stack([nn.functional.pad(row, pad, value=value) for row, pad in zip(rows, extra)]).to(device)

    tokens, mask = padded("tokens"), padded("mask")
    pooled = torch.stack([item["pooled"] for item in items]).to(device)
    present = present & torch.tensor([item.get("present", True) for item in items], device=device)
    features = Features.from_tokens(tokens, mask, present, pooled)
    features.grid = items[0]["grid"]
    if items[0]["word_ids"] is not None:
        features.word_ids = padded("word_ids", -1)
    if items[0].get("codes") is not None:
        features.codes = padded("codes")
    return features
