"""Fusion methods for mmlightning.

The names load on first use, so loading the plugin (its entry point) stays cheap.
"""

import importlib

__all__ = ["ConcatFusion", "CrossAttentionFusion", "SingleStreamFusion"]
_WHERE = {"ConcatFusion": "mmlightning_fusions.concat", "CrossAttentionFusion": "mmlightning_fusions.cross_attention", "SingleStreamFusion": "mmlightning_fusions.single_stream"}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
