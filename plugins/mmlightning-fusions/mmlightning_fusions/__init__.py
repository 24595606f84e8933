"""Fusion methods for mmlightning.

The names load on first use, so loading the plugin (its entry point) stays cheap.
"""

import importlib

__version__ = "0.1.0"
__all__ = [
    "AttentionPoolFusion",
    "BottleneckFusion",
    "CoAttentionFusion",
    "ConcatFusion",
    "CrossAttentionFusion",
    "CrossModalEncoderFusion",
    "GatedCrossAttentionFusion",
    "GatedFusion",
    "LateFusion",
    "LowRankTensorFusion",
    "SingleStreamFusion",
    "TensorFusion",
]
_WHERE = {
    "ConcatFusion": "mmlightning_fusions.concat",
    "GatedFusion": "mmlightning_fusions.gated",
    "AttentionPoolFusion": "mmlightning_fusions.gated",
    "TensorFusion": "mmlightning_fusions.tensor",
    "LowRankTensorFusion": "mmlightning_fusions.tensor",
    "SingleStreamFusion": "mmlightning_fusions.single_stream",
    "CrossAttentionFusion": "mmlightning_fusions.cross_attention",
    "CoAttentionFusion": "mmlightning_fusions.co_attention",
    "CrossModalEncoderFusion": "mmlightning_fusions.co_attention",
    "GatedCrossAttentionFusion": "mmlightning_fusions.gated_cross_attention",
    "BottleneckFusion": "mmlightning_fusions.bottleneck",
    "LateFusion": "mmlightning_fusions.late",
}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
