"""mmlightning: multimodal models on PyTorch Lightning, built from plugins.

The stable API is the names in ``__all__``. They load on first use, so ``import mmlightning`` (and with it
``mmlightning --help``) does not pay for importing torch or Lightning; type checkers see the real classes through
the ``TYPE_CHECKING`` imports below (the pattern of transformers' lazy modules).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mmlightning.hookspecs import hookimpl

if TYPE_CHECKING:
    from mmlightning.api import Run, fit, load
    from mmlightning.auto.predictor import Predictor
    from mmlightning.bundle import ProcessorBundle
    from mmlightning.contracts import Batch, Chart, Encoder, Fusion, Head, HeadContext, HeadOutput
    from mmlightning.data.datamodule import MultimodalDataModule
    from mmlightning.features import Features
    from mmlightning.model import MultimodalModel
    from mmlightning.module import MultimodalModule
    from mmlightning.processing import Processor, TargetCodec
    from mmlightning.trained import TrainedRun

__version__ = "0.1.0"
__all__ = [
    "Batch",
    "Chart",
    "Encoder",
    "Features",
    "Fusion",
    "Head",
    "HeadContext",
    "HeadOutput",
    "MultimodalDataModule",
    "MultimodalModel",
    "MultimodalModule",
    "Predictor",
    "Processor",
    "ProcessorBundle",
    "Run",
    "TargetCodec",
    "TrainedRun",
    "fit",
    "hookimpl",
    "load",
]
_LAZY = {
    "Batch": "mmlightning.contracts",
    "Chart": "mmlightning.contracts",
    "Encoder": "mmlightning.contracts",
    "Fusion": "mmlightning.contracts",
    "Head": "mmlightning.contracts",
    "HeadContext": "mmlightning.contracts",
    "HeadOutput": "mmlightning.contracts",
    "Predictor": "mmlightning.auto.predictor",
    "Processor": "mmlightning.processing",
    "TargetCodec": "mmlightning.processing",
    "ProcessorBundle": "mmlightning.bundle",
    "fit": "mmlightning.api",
    "load": "mmlightning.api",
    "Run": "mmlightning.api",
    "Features": "mmlightning.features",
    "MultimodalModel": "mmlightning.model",
    "MultimodalModule": "mmlightning.module",
    "MultimodalDataModule": "mmlightning.data.datamodule",
    "TrainedRun": "mmlightning.trained",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmlightning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
