"""Video encoders for mmlightning.

The names load on first use, so loading the plugin (its entry point) stays cheap.
"""

import importlib

__version__ = "0.1.0"
__all__ = ["VideoEncoder", "VideoProcessor", "read_clip", "write_clip"]
_WHERE = {
    "VideoEncoder": "mmlightning_video.encoder",
    "VideoProcessor": "mmlightning_video.processor",
    "read_clip": "mmlightning_video.decode",
    "write_clip": "mmlightning_video.clips",
}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
