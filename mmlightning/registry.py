"""The registry: every component the plugins registered, by kind and class name.

It does not instantiate anything (jsonargparse does); it validates names and explains mistakes. A component
registered by import path (``"pkg.module:Class"``) is imported only when something needs the class, so listing
plugins does not pay for importing torch.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any

from mmlightning.errors import MMLightningError

KINDS: dict[str, str] = {
    "encoder": "Encoder",
    "fusion": "Fusion",
    "head": "Head",
    "datamodule": "",
    "reader": "Reader",
    "tuning": "Tuning",
    "role": "Role",
}


class UnknownComponentError(MMLightningError, LookupError):
    """A component name that no installed plugin provides, or that several provide."""


def base_class(kind: str) -> type:
    """The class a component of this kind must subclass (datamodules: any class; Lightning stays unimported)."""
    if not KINDS[kind]:
        return object
    from mmlightning import contracts

    return getattr(contracts, KINDS[kind])


@dataclass(eq=False)
class Component:
    """One registered component: its kind, its class (or where to import it from) and its plugin."""

    kind: str
    target: type | str
    plugin: str
    _cls: type | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return (
            self.target.__name__ if isinstance(self.target, type) else self.target.replace(":", ".").rsplit(".", 1)[-1]
        )

    @property
    def path(self) -> str:
        if isinstance(self.target, type):
            return f"{self.target.__module__}.{self.target.__qualname__}"
        return self.target.replace(":", ".")

    @property
    def cls(self) -> type:
        """The class, imported on first use and checked against its kind's base class."""
        if self._cls is None:
            cls = self.target if isinstance(self.target, type) else _import(self.path, self.kind)
            check_class(cls, self.kind, f"plugin {self.plugin}")
            self._cls = cls
        return self._cls

    @property
    def summary(self) -> str:
        """The docstring's first paragraph, on one line."""
        doc = (self.cls.__doc__ or "").strip()
        return " ".join(doc.split("\n\n")[0].split())

    @property
    def modality(self) -> str:
        return getattr(self.cls, "modality", "any")


def check_class(cls: Any, kind: str, where: str) -> None:
    base = base_class(kind)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(
            f"{where} registered {cls!r} as a {kind}; expected a subclass of {base.__module__}.{base.__name__}"
        )


@dataclass(eq=False)
class Command:
    """A command of ``mmlightning`` a plugin added (``register_commands``): its function, or where to import it."""

    name: str
    target: Any  # Callable[[list[str]], int] | "pkg.module:function"
    summary: str
    plugin: str

    def __call__(self, argv: list[str]) -> int:
        function = self.target
        if isinstance(function, str):
            module, _, attribute = function.partition(":")
            function = getattr(importlib.import_module(module), attribute)
        return int(function(argv))


class Registry:
    """Components by kind and name; a name two plugins share stays ambiguous and is never overwritten."""

    def __init__(self) -> None:
        self._by_kind: dict[str, dict[str, list[Component]]] = {kind: {} for kind in KINDS}
        self.commands: dict[str, Command] = {}

    def add(self, component: Component) -> None:
        entries = self._by_kind[component.kind].setdefault(component.name, [])
        if all(entry.path != component.path for entry in entries):
            entries.append(component)

    def components(self, kind: str | None = None) -> list[Component]:
        kinds = [kind] if kind else list(KINDS)
        return [c for k in kinds for name in sorted(self._by_kind[k]) for c in self._by_kind[k][name]]

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind])

    def import_all(self) -> list[tuple[Component, Exception]]:
        """Import every component (so jsonargparse can find them by name); returns those that failed."""
        failed: list[tuple[Component, Exception]] = []
        for component in self.components():
            try:
                _ = component.cls  # imports it
            except (TypeError, UnknownComponentError) as err:
                failed.append((component, err))
        from mmlightning.renames import install_all

        install_all()  # earlier import paths of renamed classes load them (configs, checkpoints, bundles)
        return failed

    def resolve(self, kind: str, name: str) -> Component:
        """The component a name means: a class name, or a full import path."""
        if "." in name:
            for component in self.components(kind):
                if component.path == name:
                    return component
            return Component(kind, _import(name, kind), "(import path)")
        entries = self._by_kind[kind].get(name, [])
        if len(entries) == 1:
            return entries[0]
        if len(entries) > 1:
            paths = "\n".join(f"  {c.path}  (plugin {c.plugin})" for c in entries)
            raise UnknownComponentError(
                f"The {kind} name '{name}' is provided by several plugins:\n{paths}\nUse the full path of the one you mean."
            )
        raise UnknownComponentError(self._unknown(kind, name))

    def _unknown(self, kind: str, name: str) -> str:
        names = self.names(kind)
        close = _closest(name, names)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"No {kind} named '{name}'.{hint} Installed: {', '.join(names) or 'none'} (see `mmlightning components {kind}`)."


def _closest(name: str, names: list[str], cutoff: float = 0.75) -> list[str]:
    """The names nearly as close to ``name`` as the closest one (so one clear typo gets one suggestion)."""
    scores = {n: difflib.SequenceMatcher(None, name.lower(), n.lower()).ratio() for n in names}
    best = max(scores.values(), default=0.0)
    return sorted((n for n, s in scores.items() if s >= cutoff and s >= best - 0.05), key=lambda n: -scores[n])[:3]


def _import(path: str, kind: str) -> type:
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise UnknownComponentError(f"Cannot import {kind} '{path}': {err}") from err
