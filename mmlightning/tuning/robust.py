"""Robust to a missing modality: `ModalityDropout` (per modality, with a warm-up) and `AuxiliaryHeads` (each
modality alone also predicts each target, and answers for a row that has only it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from mmlightning.features import Features, drop_modalities
from mmlightning.tuning.base import Tuning, TuningError
from mmlightning.tuning.distill import soft_kl

if TYPE_CHECKING:
    from mmlightning.model import MultimodalModel


class ModalityDropout(Tuning):
    """While training, each sample loses each modality with its own probability (never all of them), so the
    fusion learns to answer from what is left.

    ``rates``: one probability for every modality, or one per encoder key (``{image: 0.5, audio: 0.2}``; a key
    left out is never dropped). ``warmup``: epochs over which the rates rise linearly from 0 (the fused model first
    learns from complete rows). Use it with any fusion; with ``AuxiliaryHeads`` the fused path and each modality's
    own path both learn.
    """

    def __init__(self, rates: float | dict[str, float] = 0.3, warmup: int = 0) -> None:
        super().__init__([])
        values = rates.values() if isinstance(rates, dict) else [rates]
        if any(not 0.0 <= r < 1.0 for r in values) or warmup < 0:
            raise TuningError(f"ModalityDropout: rates must be in [0, 1) and warmup >= 0, got {rates} and {warmup}")
        self.rates, self.warmup, self.epoch = rates, warmup, 0

    def adapt(self, model: MultimodalModel) -> None:
        if isinstance(self.rates, dict):
            unknown = sorted(set(self.rates) - set(model.encoders))
            if unknown:
                raise TuningError(
                    f"ModalityDropout: rates name {unknown}, which are not encoders; the encoders are {sorted(model.encoders)}"
                )

    def on_train_epoch_start(self, model: MultimodalModel, epoch: int) -> None:
        self.epoch = epoch

    def scale(self) -> float:
        return 1.0 if self.warmup == 0 else min(1.0, (self.epoch + 1) / (self.warmup + 1))

    def transform_features(self, model: MultimodalModel, encoded: dict[str, Features]) -> dict[str, Features]:
        if not model.training or len(encoded) < 2:
            return encoded
        rates = self.rates if isinstance(self.rates, dict) else dict.fromkeys(encoded, self.rates)
        return drop_modalities(encoded, {k: r * self.scale() for k, r in rates.items()})

    def describe(self, model: MultimodalModel) -> str:
        ramp = f", rising over {self.warmup} epoch(s)" if self.warmup else ""
        return f"ModalityDropout {self.rates}{ramp}"


class AuxiliaryHeads(Tuning):
    """Per-modality auxiliary heads: each modality's own features also predict each head's target, through a head
    of the same kind (built like the model's, on the encoder's width), trained with loss ``weight`` on the rows that
    have that modality. Their losses are logged apart (``train/auxiliaryheads/HEAD__KEY``).

    ``fallback`` (default on): at prediction, a row that has only one modality is answered by that modality's
    auxiliary head, so a fused model missing an input does as well as a model trained on what is left.
    ``heads``/``modalities`` restrict which (default: every head with a target, every encoder).
    ``path``: ``"head"`` puts each auxiliary head straight on its encoder's features; ``"fusion"`` puts a fusion of
    the model's kind, built for that one modality, in between, so each modality's path is the model that modality
    alone would have trained (the fusion must accept a single modality); ``"auto"`` (the default) is ``"fusion"``
    where the model's fusion can be built for one modality and ``"head"`` where it cannot.
    ``distill``: weight of a second loss that also teaches each auxiliary head the fused model's answer (KL from the
    fused logits, detached, at ``temperature``), so a modality's own path learns what the fusion knows about its rows.
    """

    def __init__(
        self,
        weight: float = 0.5,
        fallback: bool = True,
        heads: Sequence[str] | None = None,
        modalities: Sequence[str] | None = None,
        distill: float = 0.0,
        temperature: float = 2.0,
        path: Literal["auto", "head", "fusion"] = "auto",
    ) -> None:
        super().__init__([])
        if path not in ("auto", "head", "fusion"):
            raise TuningError(f"AuxiliaryHeads: path must be 'auto', 'head' or 'fusion', got {path!r}")
        if weight < 0 or distill < 0 or temperature <= 0:
            raise TuningError(
                f"AuxiliaryHeads: weight and distill must be >= 0 and temperature > 0, got {weight}, {distill}, {temperature}"
            )
        self.weight, self.fallback = weight, fallback
        self.distill, self.temperature, self.path = distill, temperature, path
        self.head_keys, self.modality_keys = heads, modalities
        self.aux = nn.ModuleDict()  # "HEAD__KEY" -> a head on encoder KEY's features (or on fusions[KEY]'s)
        self.fusions = nn.ModuleDict()  # KEY -> a fusion of encoder KEY alone (path "fusion")
        self._losses: dict[str, Tensor] = {}

    def pairs(self, model: MultimodalModel) -> list[tuple[str, str]]:
        heads = (
            list(self.head_keys) if self.head_keys is not None else [k for k, h in model.heads.items() if h.uses_target]
        )
        keys = list(self.modality_keys) if self.modality_keys is not None else sorted(model.encoders)
        for name, known in (("heads", set(model.heads)), ("modalities", set(model.encoders))):
            unknown = sorted(set(heads if name == "heads" else keys) - known)
            if unknown:
                raise TuningError(f"AuxiliaryHeads: {name} {unknown} are not in the model; it has {sorted(known)}")
        return [(h, k) for h in heads for k in keys]

    def adapt(self, model: MultimodalModel) -> None:
        from mmlightning.contracts import HeadContext

        dims = {k: e.dim for k, e in model.encoders.items()}
        for head_key, key in self.pairs(model):
            name = f"{head_key}__{key}"
            if name in self.aux:
                continue
            fuse = self._fusion(model, key) if self.path != "head" else None
            head = model.head_factories[head_key](fuse.dim if fuse is not None else model.encoders[key].dim)
            head.bind(HeadContext(name=head_key, encoder_dims=dims, fuse=fuse, encoders=dict(model.encoders.items())))
            head.set_fitted(model.heads[head_key].fitted or {})
            ref = next(model.heads[head_key].parameters(), None)
            self.aux[name] = head.to(ref.device) if ref is not None else head

    def _fusion(self, model: MultimodalModel, key: str) -> Any:
        if key not in self.fusions:
            try:
                fuse = model.fusion_factory({key: model.encoders[key].dim})
            except Exception as err:
                if self.path == "auto":
                    return None
                raise TuningError(
                    f"AuxiliaryHeads: path 'fusion' builds the model's fusion for '{key}' alone, and it refused: {err}; "
                    "use path: head"
                ) from err
            ref = next(model.fusion.parameters(), None)
            self.fusions[key] = fuse.to(ref.device) if ref is not None else fuse
        return self.fusions[key]

    def answer(self, name: str, features: Features, batch: Any) -> Any:
        """What auxiliary head ``HEAD__KEY`` answers from encoder KEY's ``features`` alone."""
        key = name.split("__", 1)[1]
        fused = self.fusions[key]({key: features}) if key in self.fusions else features
        return self.aux[name](fused, {key: features}, batch)

    def transform_outputs(
        self, model: MultimodalModel, batch: Any, encoded: dict[str, Features], outputs: dict[str, Any]
    ) -> dict[str, Any]:
        if model.training:
            for name in self.aux:
                head_key, key = name.split("__", 1)
                rows = encoded[key].present.nonzero().flatten()
                if head_key in batch.targets and len(rows):
                    part, features = subset(batch, rows), encoded[key].index(rows)
                    mine = self.answer(name, features, part)
                    if mine.loss is not None:
                        self._losses[name] = self.weight * mine.loss
                    fused = outputs[head_key].logits
                    if self.distill and mine.logits is not None and fused is not None:
                        teacher = fused.detach().index_select(0, rows)
                        self._losses[f"{name}/distill"] = self.distill * soft_kl(mine.logits, teacher, self.temperature)
            return outputs
        if not self.fallback or len(encoded) < 2:
            return outputs
        present = {k: f.present for k, f in encoded.items()}
        alone = {k: p & (torch.stack(list(present.values())).sum(0) == 1) for k, p in present.items()}
        out = dict(outputs)
        for name in self.aux:
            head_key, key = name.split("__", 1)
            mine = self.answer(name, encoded[key], batch)
            out[head_key] = _where(alone[key], mine, out[head_key])
        return out

    def losses(self, model: MultimodalModel, batch: Any, outputs: dict[str, Any], total: Tensor) -> dict[str, Tensor]:
        found, self._losses = self._losses, {}
        return found

    def describe(self, model: MultimodalModel) -> str:
        count = sum(p.numel() for p in self.parameters())
        use = "; rows with one modality answered by its head" if self.fallback else ""
        taught = f", distilled from the fusion (weight {self.distill}, T {self.temperature})" if self.distill else ""
        through = ", each through its own fusion" if self.fusions else ""
        return f"AuxiliaryHeads {sorted(self.aux)}{through} (weight {self.weight}{taught}, {count:,} parameters){use}"


def subset(batch: Any, rows: Tensor) -> Any:
    """The rows ``rows`` of a batch (targets, inputs, ids, raw values)."""
    from mmlightning.contracts import Batch

    picked = rows.tolist()
    return Batch(
        inputs={k: {n: t.index_select(0, rows) for n, t in v.items()} for k, v in batch.inputs.items()},
        targets={k: t.index_select(0, rows) for k, t in batch.targets.items()},
        ids=[batch.ids[i] for i in picked],
        raw={c: [v[i] for i in picked] for c, v in batch.raw.items()},
        root=batch.root,
    )


def _where(rows: Tensor, mine: Any, theirs: Any) -> Any:
    """``theirs`` with the rows ``rows`` (bool ``(B,)``) taken from ``mine`` (both HeadOutputs)."""
    from dataclasses import replace

    def pick(a: Tensor | None, b: Tensor | None) -> Tensor | None:
        if a is None or b is None or a.shape != b.shape:
            return b
        return torch.where(rows.view(-1, *([1] * (b.ndim - 1))), a, b)

    return replace(
        theirs, predictions=pick(mine.predictions, theirs.predictions), logits=pick(mine.logits, theirs.logits)
    )
