"""The entry point: registers the timm image encoder (timm itself loads only when one is built)."""

from mmlightning import hookimpl


@hookimpl
def register_encoders(register):
    from mmlightning_vision.encoder import TimmEncoder

    register(TimmEncoder)
