"""The entry point: registers the audio encoder by import path, so torch loads only when it is used."""

from mmlightning import hookimpl


@hookimpl
def register_encoders(register):
    register("mmlightning_audio.encoder:AudioEncoder")


@hookimpl
def register_roles(register):
    register("mmlightning_audio.roles:AudioRole")
