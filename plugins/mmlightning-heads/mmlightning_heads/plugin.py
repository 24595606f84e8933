"""The entry point: registers the heads."""

from mmlightning import hookimpl


@hookimpl
def register_heads(register):
    from mmlightning_heads.classification import ClassificationHead

    register(ClassificationHead)
