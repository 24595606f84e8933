"""The fine-tuning contract, where strategies have always imported it from: see :mod:`mmlightning.strategy`."""

from mmlightning.strategy import (
    GLOB,
    Tuning,
    TuningError,
    canonical,
    modules_in,
    part_module,
    select,
    selected,
    top_part,
    top_parts,
)

__all__ = [
    "GLOB",
    "Tuning",
    "TuningError",
    "canonical",
    "modules_in",
    "part_module",
    "select",
    "selected",
    "top_part",
    "top_parts",
]
