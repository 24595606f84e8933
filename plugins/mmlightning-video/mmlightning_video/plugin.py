"""The entry point: registers the video encoder by import path, so torch and PyAV load only when it is used."""

from mmlightning import hookimpl


@hookimpl
def register_encoders(register):
    register("mmlightning_video.encoder:VideoEncoder")


@hookimpl
def register_roles(register):
    register("mmlightning_video.roles:VideoRole")
