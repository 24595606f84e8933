"""Records for mmlightning: a row's many columns, numbers and categories, as a token per column.

The names load on first use, so loading the plugin (its entry point) stays cheap.
"""

import importlib

__version__ = "0.1.0"
__all__ = ["RecordProcessor", "TabularEncoder", "fit_columns"]
_WHERE = {
    "RecordProcessor": "mmlightning_tabular.processor",
    "TabularEncoder": "mmlightning_tabular.encoder",
    "fit_columns": "mmlightning_tabular.columns",
}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
