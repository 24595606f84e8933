"""The entry point: registers the fusions."""

from mmlightning import hookimpl


@hookimpl
def register_fusions(register):
    from mmlightning_fusions import ConcatFusion, CrossAttentionFusion, SingleStreamFusion

    for fusion in (ConcatFusion, CrossAttentionFusion, SingleStreamFusion):
        register(fusion)
