"""The entry point: registers the classification head by import path, so torch and friends load only when it is used."""

from mmlightning import hookimpl


@hookimpl
def register_heads(register):
    register("mmlightning_heads.classification:ClassificationHead")
