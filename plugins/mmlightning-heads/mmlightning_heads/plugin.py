"""The entry point: registers the heads by import path, so torch and friends load only when one is used."""

from mmlightning import hookimpl

HEADS = [
    "mmlightning_heads.classification:ClassificationHead",
    "mmlightning_heads.contrastive:ContrastiveHead",
    "mmlightning_heads.matching:MatchingHead",
    "mmlightning_heads.multilabel:MultiLabelHead",
    "mmlightning_heads.regression:RegressionHead",
    "mmlightning_heads.token_classification:TokenClassificationHead",
]


@hookimpl
def register_heads(register):
    for path in HEADS:
        register(path)


@hookimpl
def register_roles(register):
    register("mmlightning_heads.roles:ClassLabelRole")
    register("mmlightning_heads.roles:ValueLabelRole")
    register("mmlightning_heads.roles:LabelSetRole")
    register("mmlightning_heads.roles:TagsRole")
