"""The entry point: registers the timm image encoder and the masked-patch head by import path (torch loads only when used)."""

from mmlightning import hookimpl


@hookimpl
def register_encoders(register):
    register("mmlightning_vision.encoder:TimmEncoder")


@hookimpl
def register_heads(register):
    register("mmlightning_vision.masked:MaskedPatchHead")


@hookimpl
def register_roles(register):
    register("mmlightning_vision.roles:ImageRole")
