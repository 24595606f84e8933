"""The entry point: registers the text encoder and the CoNLL reader by import path, so torch loads only when used."""

from mmlightning import hookimpl


@hookimpl
def register_encoders(register):
    register("mmlightning_text.encoder:TextEncoder")


@hookimpl
def register_readers(register):
    register("mmlightning_text.conll:ConllReader")
