"""mmlightning: multimodal models on PyTorch Lightning, built from plugins.

The stable API is the names in ``__all__``. They load on first use, so ``import mmlightning`` (and with it
``mmlightning --help``) does not pay for importing torch or Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

from mmlightning.hookspecs import hookimpl

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
    "MultimodalModule",
    "Processor",
    "ProcessorBundle",
    "Run",
    "TargetCodec",
    "fit",
    "hookimpl",
]
_LAZY = {
    "Batch": "mmlightning.contracts",
    "Chart": "mmlightning.contracts",
    "Encoder": "mmlightning.contracts",
    "Fusion": "mmlightning.contracts",
    "Head": "mmlightning.contracts",
    "HeadContext": "mmlightning.contracts",
    "HeadOutput": "mmlightning.contracts",
    "Processor": "mmlightning.processing",
    "TargetCodec": "mmlightning.processing",
    "ProcessorBundle": "mmlightning.bundle",
    "fit": "mmlightning.api",
    "Run": "mmlightning.api",
    "Features": "mmlightning.features",
    "MultimodalModule": "mmlightning.module",
    "MultimodalDataModule": "mmlightning.data.datamodule",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmlightning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
