"""The entry point: registers the tabular encoder by import path, so torch loads only when it is used."""

from mmlightning import hookimpl


@hookimpl
def register_encoders(register):
    register("mmlightning_tabular.encoder:TabularEncoder")


@hookimpl
def register_roles(register):
    register("mmlightning_tabular.roles:CategoricalRole")
    register("mmlightning_tabular.roles:NumericRole")
