"""The plugin API: one hook per kind of component, each given a ``register`` callback.

A plugin is a module named by an entry point in the group ``mmlightning``::

    from mmlightning import hookimpl

    @hookimpl
    def register_encoders(register):
        register(MyEncoder)                         # a class: checked at once
        register("my_plugin.encoders:BigEncoder")   # or an import path: imported when first used

Registering by import path keeps ``mmlightning plugins`` fast when a component's module imports heavy things.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("mmlightning")
hookimpl = pluggy.HookimplMarker("mmlightning")

Register = Callable[[type | str], None]
RegisterCommand = Callable[[str, "Callable[[list[str]], int] | str", str], None]


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


@hookspec
def register_readers(register: Register) -> None:
    """Register :class:`~mmlightning.contracts.Reader` subclasses for manifest formats: ``register(MyReader)``.

    .. versionadded:: 0.1
    """


@hookspec
def register_tunings(register: Register) -> None:
    """Register :class:`~mmlightning.tuning.Tuning` subclasses (fine-tuning strategies): ``register(MyStrategy)``.

    .. versionadded:: 0.2
    """


@hookspec
def register_roles(register: Register) -> None:
    """Register :class:`~mmlightning.roles.Role` subclasses: kinds of column that ``mmlightning auto`` recognises
    from their values, with the encoder or head each gets: ``register(MyRole)``.

    .. versionadded:: 0.3
    """


@hookspec
def register_commands(register: RegisterCommand) -> None:
    """Register commands of ``mmlightning``: ``register("evaluate-x", "my_plugin.cli:main", "one line on it")``.

    The function takes the command's arguments (a list of strings) and returns the exit code; give it as an import
    path to keep ``mmlightning --help`` fast. Parse with :class:`mmlightning.parser.CommandParser` to get
    ``--config`` and ``--print_config`` like the built-in commands, which are registered through this same hook
    (:mod:`mmlightning.cli.commands`). A name already taken is refused: the plugin is skipped, and says why.

    .. versionadded:: 0.2
    """
