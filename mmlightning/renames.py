"""Renamed or moved classes keep loading, in the manner of timm's ``register_model_deprecations``.

A component, processor or codec that had another import path lists it in ``renamed_from``::

    class WordEncoder(Encoder):
        renamed_from = ("my_plugin.text.TextEncoder",)  # where configs, checkpoints and bundles saved it

Once the plugins are imported (``Registry.import_all``, which every command and the loader call), each earlier path
imports the class again, so a config, a checkpoint's hyperparameters or a ``bundle.json`` written before the rename
still loads. The earlier module is made if it no longer exists.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types
from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)


def subclasses(base: type) -> Iterator[type]:
    """Every subclass of ``base`` imported so far, at any depth."""
    child: type
    for child in base.__subclasses__():
        yield child
        yield from subclasses(child)


def install(classes: Iterable[type]) -> list[str]:
    """Make each class importable from the paths in its ``renamed_from``; returns the paths newly set."""
    done = []
    for cls in classes:
        for old in cls.__dict__.get("renamed_from", ()):
            module_name, _, name = old.replace(":", ".").rpartition(".")
            module = sys.modules.get(module_name)
            if module is None:
                try:
                    module = importlib.import_module(module_name)
                except ImportError:
                    module = types.ModuleType(module_name, f"where {cls.__module__}.{cls.__qualname__} used to be")
                    sys.modules[module_name] = module
            if getattr(module, name, None) is not cls:
                setattr(module, name, cls)
                done.append(old)
                log.debug("%s loads as %s.%s (renamed)", old, cls.__module__, cls.__qualname__)
    return done


def install_all() -> list[str]:
    """Aliases for every imported component, processor and codec that declares earlier paths."""
    from mmlightning.contracts import Encoder, Fusion, Head, Reader
    from mmlightning.processing import Processor, TargetCodec
    from mmlightning.strategy import Tuning

    bases = (Encoder, Fusion, Head, Reader, Tuning, Processor, TargetCodec)
    return install(cls for base in bases for cls in subclasses(base))
