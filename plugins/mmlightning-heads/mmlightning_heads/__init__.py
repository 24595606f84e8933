"""Task heads for mmlightning.

The names load on first use, so loading the plugin (its entry point) stays cheap.
"""

import importlib

__version__ = "0.1.0"
__all__ = [
    "ClassificationHead",
    "ContrastiveHead",
    "EntityF1",
    "MatchingHead",
    "MultiLabelHead",
    "RegressionHead",
    "RetrievalRecall",
    "TokenClassificationHead",
]
_WHERE = {
    "ClassificationHead": "mmlightning_heads.classification",
    "ContrastiveHead": "mmlightning_heads.contrastive",
    "MatchingHead": "mmlightning_heads.matching",
    "MultiLabelHead": "mmlightning_heads.multilabel",
    "RegressionHead": "mmlightning_heads.regression",
    "RetrievalRecall": "mmlightning_heads.retrieval",
    "TokenClassificationHead": "mmlightning_heads.token_classification",
    "EntityF1": "mmlightning_heads.entities",
}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
