"""The plugin API: one hook per kind of component, each given a ``register`` callback.

A plugin is a module named by an entry point in the group ``mmlightning``::

    from mmlightning import hookimpl

    @hookimpl
    def register_encoders(register):
        register(MyEncoder)
"""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("mmlightning")
hookimpl = pluggy.HookimplMarker("mmlightning")

Register = Callable[[type], None]


@hookspec
def register_encoders(register: Register) -> None:
    """Register :class:`~mmlightning.Encoder` subclasses: ``register(MyEncoder)``.

    .. versionadded:: 0.1
    """


@hookspec
def register_fusions(register: Register) -> None:
    """Register :class:`~mmlightning.Fusion` subclasses: ``register(MyFusion)``.

    .. versionadded:: 0.1
    """


@hookspec
def register_heads(register: Register) -> None:
    """Register :class:`~mmlightning.Head` subclasses: ``register(MyHead)``.

    .. versionadded:: 0.1
    """


@hookspec
def register_datamodules(register: Register) -> None:
    """Register ``LightningDataModule`` subclasses: ``register(MyDataModule)``.

    .. versionadded:: 0.1
    """
