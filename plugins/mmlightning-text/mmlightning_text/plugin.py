"""The entry point: registers the text encoder by import path, so torch and friends load only when it is used."""

from mmlightning import hookimpl


@hookimpl
def register_encoders(register):
    register("mmlightning_text.encoder:TextEncoder")
