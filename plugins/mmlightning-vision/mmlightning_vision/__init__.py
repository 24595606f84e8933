"""Image encoders for mmlightning.

The names load on first use, so loading the plugin (its entry point) stays cheap.
"""

import importlib

__version__ = "0.1.0"
__all__ = [
    "ImageGenerationHead",
    "ImageProcessor",
    "MaskedPatchHead",
    "PixelProcessor",
    "ReconstructionHead",
    "TimmEncoder",
    "VQVAEEncoder",
]
_WHERE = {
    "TimmEncoder": "mmlightning_vision.encoder",
    "ImageProcessor": "mmlightning_vision.processor",
    "MaskedPatchHead": "mmlightning_vision.masked",
    "VQVAEEncoder": "mmlightning_vision.vqvae",
    "ReconstructionHead": "mmlightning_vision.vqvae",
    "ImageGenerationHead": "mmlightning_vision.generation",
    "PixelProcessor": "mmlightning_vision.pictures",
}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
