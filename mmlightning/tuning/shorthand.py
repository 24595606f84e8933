"""The training module's two shorthands as the strategies they stand for."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from mmlightning.parts import check_strategies
from mmlightning.strategy import Tuning
from mmlightning.tuning.freeze import Freeze
from mmlightning.tuning.robust import ModalityDropout


def with_shorthands(
    encoders: Collection[str], freeze: Sequence[str] | None, modality_dropout: float, tuning: Sequence[Tuning] | None
) -> list[Tuning]:
    """``freeze=[KEY, ...]`` is a ``Freeze`` on those encoders (or parts of one, ``KEY.SUBMODULE``), applied first; ``modality_dropout=p`` a
    ``ModalityDropout(p)``, applied last (it has no weights, so the others keep their place in checkpoints)."""
    unknown = sorted(key for key in freeze or [] if key.split(".")[0] not in encoders)
    if unknown:
        raise ValueError(
            f"freeze names {unknown}, which are not encoders (or a part of one: KEY.SUBMODULE); the encoders are "
            f"{sorted(encoders)}"
        )
    if not 0.0 <= modality_dropout < 1.0:
        raise ValueError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
    first = [Freeze([f"encoders.{key}" for key in sorted(freeze)])] if freeze else []
    last = [ModalityDropout(modality_dropout)] if modality_dropout > 0 else []
    return [*first, *check_strategies(tuning), *last]
