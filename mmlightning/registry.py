"""The registry: every component the plugins registered, by kind and class name.

It does not instantiate anything (jsonargparse does); it validates names and explains mistakes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from mmlightning.contracts import Encoder, Fusion, Head


# Datamodules are checked only for being classes: Lightning is not imported here, to keep start-up fast.
KINDS: dict[str, type] = {"encoder": Encoder, "fusion": Fusion, "head": Head, "datamodule": object}


class UnknownComponentError(LookupError):
    """A component name that no installed plugin provides, or that several provide."""


@dataclass(frozen=True)
class Component:
    kind: str
    cls: type
    plugin: str

    @property
    def name(self) -> str:
        return self.cls.__name__

    @property
    def path(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"

    @property
    def summary(self) -> str:
        doc = (self.cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @property
    def modality(self) -> str:
        return getattr(self.cls, "modality", "any")


class Registry:
    """Components by kind and name; a name two plugins share stays ambiguous and is never overwritten."""

    def __init__(self) -> None:
        self._by_kind: dict[str, dict[str, list[Component]]] = {kind: {} for kind in KINDS}

    def add(self, component: Component) -> None:
        entries = self._by_kind[component.kind].setdefault(component.name, [])
        if all(entry.path != component.path for entry in entries):
            entries.append(component)

    def components(self, kind: str | None = None) -> list[Component]:
        kinds = [kind] if kind else list(KINDS)
        return [c for k in kinds for name in sorted(self._by_kind[k]) for c in self._by_kind[k][name]]

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind])

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
            raise UnknownComponentError(f"The {kind} name '{name}' is provided by several plugins:\n{paths}\nUse the full path of the one you mean.")
        raise UnknownComponentError(self._unknown(kind, name))

    def _unknown(self, kind: str, name: str) -> str:
        names = self.names(kind)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.75)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"No {kind} named '{name}'.{hint} Installed: {', '.join(names) or 'none'} (see `mmlightning components {kind}`)."


def _import(path: str, kind: str) -> type:
    import importlib

    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise UnknownComponentError(f"Cannot import {kind} '{path}': {err}") from err
