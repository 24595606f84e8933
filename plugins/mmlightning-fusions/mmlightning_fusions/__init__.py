"""Fusion methods for mmlightning."""

from mmlightning_fusions.concat import ConcatFusion
from mmlightning_fusions.cross_attention import CrossAttentionFusion
from mmlightning_fusions.single_stream import SingleStreamFusion

__all__ = ["ConcatFusion", "CrossAttentionFusion", "SingleStreamFusion"]
