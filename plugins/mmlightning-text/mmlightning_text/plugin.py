"""The entry point: registers the text encoder."""

from mmlightning import hookimpl


@hookimpl
def register_encoders(register):
    from mmlightning_text.encoder import TextEncoder

    register(TextEncoder)
