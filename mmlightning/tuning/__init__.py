"""Fine-tuning strategies: a plugin kind of their own (``register_tunings``), chosen with ``--model.tuning``.

See :class:`~mmlightning.tuning.base.Tuning` for the contract and ``docs/finetuning.md`` for the built-in ones.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Adversarial",
    "AuxiliaryHeads",
    "Continual",
    "Distillation",
    "Freeze",
    "GradualUnfreeze",
    "InitFrom",
    "LayerwiseLRDecay",
    "LoRA",
    "ModalityDropout",
    "PromptTuning",
    "Tuning",
    "TuningError",
]
_WHERE = {  # loaded on first use: `mmlightning plugins` imports this package and must not pay for torch
    "Tuning": "base",
    "TuningError": "base",
    "Freeze": "freeze",
    "GradualUnfreeze": "freeze",
    "LayerwiseLRDecay": "freeze",
    "LoRA": "lora",
    "PromptTuning": "prompts",
    "Distillation": "distill",
    "Adversarial": "adversarial",
    "InitFrom": "initialise",
    "Continual": "initialise",
    "ModalityDropout": "robust",
    "AuxiliaryHeads": "robust",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"mmlightning.tuning.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'mmlightning.tuning' has no attribute {name!r}")
