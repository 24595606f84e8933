"""Finding and loading plugins: entry points in group ``mmlightning``, one at a time, in sorted order.

``MMLIGHTNING_PLUGINS=a,b`` loads only the named plugins; ``MMLIGHTNING_STRICT_PLUGINS=1`` turns a broken
plugin into an error instead of a skipped line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from mmlightning import hookspecs
from mmlightning.errors import MMLightningError
from mmlightning.registry import KINDS, Command, Component, Registry, check_class

log = logging.getLogger(__name__)
GROUP = "mmlightning"
RESERVED = (
    *("fit", "validate", "test", "predict", "plugins", "components", "help"),
    *("export", "prune", "serve", "sweep", "robustness", "ensemble"),  # mmlightning.cli.commands
)


class PluginError(MMLightningError, RuntimeError):
    """A plugin failed to load in strict mode."""


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    registered: list[Component] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    skipped: str | None = None  # the reason, when it was skipped


def _strict() -> bool:
    return os.environ.get("MMLIGHTNING_STRICT_PLUGINS", "").lower() in {"1", "true", "yes"}


def _allowed() -> set[str] | None:
    value = os.environ.get("MMLIGHTNING_PLUGINS")
    return None if value is None else {name.strip() for name in value.split(",") if name.strip()}


def _info(ep: EntryPoint) -> PluginInfo:
    dist = ep.dist
    return PluginInfo(ep.name, dist.name if dist else "?", dist.version if dist else "?")


def _collect(pm: pluggy.PluginManager, module: object, plugin: str) -> list[Component]:
    """Call the plugin's own hooks. A class is checked at once, in the plugin's frame; an import path
    (``"pkg.module:Class"``) is checked when it is first imported, so listing plugins stays fast."""
    found: list[Component] = []
    for kind in KINDS:

        def register(target: type | str, kind: str = kind) -> None:
            if isinstance(target, str):
                if ":" not in target:
                    raise TypeError(
                        f"register_{kind}s got {target!r}; an import path looks like 'package.module:ClassName'"
                    )
            else:
                check_class(target, kind, f"register_{kind}s")
            found.append(Component(kind, target, plugin))

        for impl in getattr(pm.hook, f"register_{kind}s").get_hookimpls():
            if impl.plugin is module:
                impl.function(register=register)
    return found


def collect_commands(hooks: Iterable[Any], plugin: str, taken: set[str]) -> list[Command]:
    """The commands a plugin's ``register_commands`` hooks register; a name in ``taken`` is refused."""
    found: list[Command] = []

    def register(name: str, target: Any, summary: str = "") -> None:
        if not isinstance(name, str) or not name or name.startswith("-"):
            raise TypeError(f"register_commands got the name {name!r}; a command's name is a word like 'evaluate'")
        if isinstance(target, str) and ":" not in target:
            raise TypeError(f"register_commands got {target!r}; an import path looks like 'package.module:function'")
        if name in taken or any(c.name == name for c in found):
            raise TypeError(f"register_commands: the command '{name}' exists already; choose another name")
        found.append(Command(name, target, summary, plugin))

    for hook in hooks:
        hook(register=register)
    return found


def load_plugins(
    registry: Registry | None = None, reserved: Iterable[str] = RESERVED
) -> tuple[Registry, list[PluginInfo]]:
    """Load every allowed plugin into a registry; broken ones are skipped with their reason. ``reserved``: command
    names no plugin may take (the built-in ones)."""
    registry = registry or Registry()
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    allowed, strict, infos = _allowed(), _strict(), []
    for ep in sorted(entry_points(group=GROUP), key=lambda ep: (ep.name, ep.value)):
        if allowed is not None and ep.name not in allowed:
            continue
        info = _info(ep)
        infos.append(info)
        module = None
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
            pm.check_pending()
            info.registered = _collect(pm, module, ep.name)
            hooks = [i.function for i in pm.hook.register_commands.get_hookimpls() if i.plugin is module]
            info.commands = collect_commands(hooks, ep.name, set(registry.commands) | set(reserved))
        except (Exception, SystemExit) as err:  # a broken plugin (even one calling sys.exit) never takes the CLI down
            info.skipped = f"{type(err).__name__}: {err}"
            if module is not None and pm.is_registered(module):
                pm.unregister(module)
            if strict:
                raise PluginError(
                    f"plugin {info.name} ({info.distribution} {info.version}) failed: {info.skipped}"
                ) from err
            log.warning("skipped plugin %s (%s %s): %s", info.name, info.distribution, info.version, info.skipped)
            continue
        for component in info.registered:
            registry.add(component)
        registry.commands.update({command.name: command for command in info.commands})
    return registry, infos


_loaded: tuple[Registry, list[PluginInfo]] | None = None


def get_registry() -> Registry:
    """The registry of installed plugins, loaded once per process."""
    return loaded()[0]


def loaded() -> tuple[Registry, list[PluginInfo]]:
    global _loaded
    if _loaded is None:
        _loaded = load_plugins()
    return _loaded


def plugin_versions() -> dict[str, str]:
    """``{plugin name: "distribution version"}`` for every loaded plugin (saved with configs and runs)."""
    return {i.name: f"{i.distribution} {i.version}" for i in loaded()[1] if i.skipped is None}
