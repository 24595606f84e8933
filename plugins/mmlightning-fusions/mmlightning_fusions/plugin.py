"""The entry point: registers the fusions (by import path, so torch loads only when one is used)."""

from mmlightning import hookimpl


@hookimpl
def register_fusions(register):
    register("mmlightning_fusions.concat:ConcatFusion")
    register("mmlightning_fusions.cross_attention:CrossAttentionFusion")
    register("mmlightning_fusions.single_stream:SingleStreamFusion")
