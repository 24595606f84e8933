"""The registry's answers: suggestions for typos, both paths for a shared name, full paths always work."""

from __future__ import annotations

import gc
import sys

import pytest

from mmlightning import Encoder
from mmlightning.registry import Component, Registry, UnknownComponentError


@pytest.fixture()
def clash(monkeypatch):
    """A second TextEncoder, as another plugin would bring; gone after the test (jsonargparse sees subclasses)."""

    class TextEncoder(Encoder):
        """A second TextEncoder, from another plugin."""

    TextEncoder.__module__, TextEncoder.__qualname__ = __name__, "TextEncoder"
    monkeypatch.setattr(sys.modules[__name__], "TextEncoder", TextEncoder, raising=False)
    yield TextEncoder
    # something may still hold the class (jsonargparse finds classes through __subclasses__): rename it out of the way
    TextEncoder.__name__ = TextEncoder.__qualname__ = "RetiredTestEncoder"
    del TextEncoder
    monkeypatch.undo()
    gc.collect()


def test_unknown_name_suggests(tmp_path):
    from mmlightning.plugins import get_registry

    with pytest.raises(UnknownComponentError) as err:
        get_registry().resolve("encoder", "TextEncodr")
    assert "Did you mean 'TextEncoder'?" in str(err.value)
    assert "Installed: AudioEncoder, PretrainedTextEncoder, TabularEncoder, TextEncoder, TimmEncoder" in str(err.value)


def test_shared_name_lists_both_paths(clash):
    from mmlightning.plugins import load_plugins

    registry, _ = load_plugins()
    registry.add(Component("encoder", clash, "other"))
    with pytest.raises(UnknownComponentError) as err:
        registry.resolve("encoder", "TextEncoder")
    message = str(err.value)
    assert "mmlightning_text.encoder.TextEncoder  (plugin text)" in message
    assert "test_registry.TextEncoder  (plugin other)" in message
    assert registry.resolve("encoder", "mmlightning_text.encoder.TextEncoder").plugin == "text"
    assert registry.resolve("encoder", "test_registry.TextEncoder").plugin == "other"


def test_full_import_path_of_unregistered_class(clash):
    registry = Registry()
    assert registry.resolve("encoder", "test_registry.TextEncoder").cls is clash
    with pytest.raises(UnknownComponentError, match="Cannot import"):
        registry.resolve("encoder", "no_such_module.Thing")
