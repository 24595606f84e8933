"""Audio encoders for mmlightning.

The names load on first use, so loading the plugin (its entry point) stays cheap.
"""

import importlib

__version__ = "0.1.0"
__all__ = ["AudioEncoder", "AudioProcessor"]
_WHERE = {"AudioEncoder": "mmlightning_audio.encoder", "AudioProcessor": "mmlightning_audio.processor"}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
