"""The entry point: registers the text encoder, the caption head and the CoNLL reader by import path (torch loads only when used)."""

from mmlightning import hookimpl


@hookimpl
def register_encoders(register):
    register("mmlightning_text.encoder:TextEncoder")
    register("mmlightning_text.pretrained:PretrainedTextEncoder")


@hookimpl
def register_readers(register):
    register("mmlightning_text.conll:ConllReader")


@hookimpl
def register_heads(register):
    register("mmlightning_text.caption:CaptionHead")
    register("mmlightning_text.masked:MaskedLanguageHead")
    register("mmlightning_text.replaced:ReplacedTokenHead")


@hookimpl
def register_roles(register):
    register("mmlightning_text.roles:TextRole")
