"""The entry point: registers the fusions by import path, so torch loads only when one is used."""

from mmlightning import hookimpl

FUSIONS = [
    "mmlightning_fusions.concat:ConcatFusion",
    "mmlightning_fusions.gated:GatedFusion",
    "mmlightning_fusions.gated:AttentionPoolFusion",
    "mmlightning_fusions.tensor:TensorFusion",
    "mmlightning_fusions.tensor:LowRankTensorFusion",
    "mmlightning_fusions.single_stream:SingleStreamFusion",
    "mmlightning_fusions.cross_attention:CrossAttentionFusion",
    "mmlightning_fusions.co_attention:CoAttentionFusion",
    "mmlightning_fusions.co_attention:CrossModalEncoderFusion",
    "mmlightning_fusions.gated_cross_attention:GatedCrossAttentionFusion",
    "mmlightning_fusions.bottleneck:BottleneckFusion",
    "mmlightning_fusions.late:LateFusion",
]


@hookimpl
def register_fusions(register):
    for path in FUSIONS:
        register(path)
