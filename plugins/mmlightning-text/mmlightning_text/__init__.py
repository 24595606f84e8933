"""Text encoders for mmlightning.

The names load on first use, so loading the plugin (its entry point) stays cheap.
"""

import importlib

__version__ = "0.1.0"
__all__ = [
    "CaptionHead",
    "ConllReader",
    "MaskedLanguageHead",
    "PretrainedTextEncoder",
    "ReplacedTokenHead",
    "TextEncoder",
    "TextProcessor",
]
_WHERE = {
    "CaptionHead": "mmlightning_text.caption",
    "ConllReader": "mmlightning_text.conll",
    "MaskedLanguageHead": "mmlightning_text.masked",
    "PretrainedTextEncoder": "mmlightning_text.pretrained",
    "ReplacedTokenHead": "mmlightning_text.replaced",
    "TextEncoder": "mmlightning_text.encoder",
    "TextProcessor": "mmlightning_text.processor",
}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
