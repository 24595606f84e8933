"""Plugin discovery: sorted loading, broken plugins skipped with their reason, strict mode, allowlist."""

from __future__ import annotations

import pytest

from mmlightning.plugins import PluginError, load_plugins

from conftest import make_plugin

GOOD = """
from mmlightning import hookimpl, Fusion

class FakeFusion(Fusion):
    '''A fusion for tests.'''

@hookimpl
def register_fusions(register):
    register(FakeFusion)
"""
BROKEN_IMPORT = "import package_that_does_not_exist\n"
WRONG_KIND = """
from mmlightning import hookimpl

@hookimpl
def register_encoders(register):
    register(int)
"""


def by_name(infos):
    return {info.name: info for info in infos}


def test_first_party_plugins_load():
    registry, infos = load_plugins()
    names = by_name(infos)
    assert {"text", "vision", "audio", "fusions", "heads"} <= set(names)
    assert all(
        names[n].skipped is None and names[n].version == "0.1.0"
        for n in ("text", "vision", "audio", "fusions", "heads")
    )
    assert registry.resolve("encoder", "TextEncoder").plugin == "text"
    assert [i.name for i in infos] == sorted(i.name for i in infos)


def test_broken_plugins_are_skipped_with_reason(plugin_site):
    make_plugin(plugin_site, "fake_good", GOOD)
    make_plugin(plugin_site, "fake_broken", BROKEN_IMPORT, version="2.3")
    make_plugin(plugin_site, "fake_wrong", WRONG_KIND)
    registry, infos = load_plugins()
    names = by_name(infos)
    assert "ModuleNotFoundError" in names["fake_broken"].skipped and names["fake_broken"].version == "2.3"
    assert "expected a subclass of mmlightning.contracts.Encoder" in names["fake_wrong"].skipped
    assert names["fake_good"].skipped is None
    assert registry.resolve("fusion", "FakeFusion").plugin == "fake_good"
    assert registry.resolve("encoder", "TextEncoder")  # everything else keeps working


def test_strict_mode_raises(plugin_site, monkeypatch):
    make_plugin(plugin_site, "fake_broken", BROKEN_IMPORT)
    monkeypatch.setenv("MMLIGHTNING_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="fake_broken .*failed: ModuleNotFoundError"):
        load_plugins()


def test_strict_mode_on_the_command_line_says_it_once_without_a_traceback(plugin_site, monkeypatch, capsys):
    from mmlightning.cli.main import main

    make_plugin(plugin_site, "fake_broken", BROKEN_IMPORT)
    monkeypatch.setenv("MMLIGHTNING_STRICT_PLUGINS", "1")
    assert main(["plugins"]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("No module named") == 1
        and "Traceback" not in err
        and err.startswith("mmlightning: error: plugin fake_broken")
    )
    monkeypatch.setattr("mmlightning.plugins._loaded", None)
    with pytest.raises(PluginError):  # --debug: the exception itself, with its traceback
        main(["plugins", "--debug"])


def test_allowlist_selects_plugins(plugin_site, monkeypatch):
    make_plugin(plugin_site, "fake_broken", BROKEN_IMPORT)
    monkeypatch.setenv("MMLIGHTNING_PLUGINS", "text,heads")
    registry, infos = load_plugins()
    assert [i.name for i in infos] == ["heads", "text"]
    assert registry.names("fusion") == []


def test_misspelt_hook_is_skipped(plugin_site):
    make_plugin(
        plugin_site,
        "fake_typo",
        "from mmlightning import hookimpl\n\n@hookimpl\ndef register_encoder(register):\n    pass\n",
    )
    _, infos = load_plugins()
    assert "register_encoder" in by_name(infos)["fake_typo"].skipped


LAZY = """
from mmlightning import hookimpl

@hookimpl
def register_heads(register):
    register("fake_lazy_missing:NoSuchHead")
"""


def test_registration_by_import_path_is_checked_when_used(plugin_site):
    from mmlightning.registry import UnknownComponentError

    make_plugin(plugin_site, "fake_lazy", LAZY)
    make_plugin(
        plugin_site,
        "fake_nocolon",
        "from mmlightning import hookimpl\n\n@hookimpl\ndef register_heads(register):\n    register('just.a.path')\n",
    )
    registry, infos = load_plugins()
    names = by_name(infos)
    assert (
        names["fake_lazy"].skipped is None
        and "import path looks like 'package.module:ClassName'" in names["fake_nocolon"].skipped
    )
    component = registry.resolve("head", "NoSuchHead")
    with pytest.raises(UnknownComponentError, match="Cannot import head 'fake_lazy_missing.NoSuchHead'"):
        _ = component.cls
    assert [c.name for c, _ in registry.import_all()] == ["NoSuchHead"]


def test_a_path_to_the_wrong_kind_of_class_is_refused(plugin_site):
    make_plugin(
        plugin_site,
        "fake_kind",
        "from mmlightning import hookimpl\n\n@hookimpl\ndef register_fusions(register):\n    register('mmlightning_heads.classification:ClassificationHead')\n",
    )
    registry, _ = load_plugins()
    with pytest.raises(TypeError, match="plugin fake_kind registered .*ClassificationHead.* as a fusion"):
        _ = registry.resolve("fusion", "ClassificationHead").cls


COMMAND_PLUGIN = """
from mmlightning import hookimpl


def hello(argv):
    print("hello", *argv)
    return 3


@hookimpl
def register_commands(register):
    register("hello", hello, "says hello")
"""

TAKEN_COMMAND = """
from mmlightning import hookimpl


@hookimpl
def register_commands(register):
    register("export", "fake_taken:nothing", "would shadow the built-in export")
"""


def test_a_plugin_adds_a_command_and_cannot_take_a_built_in_name(plugin_site, capsys):
    from mmlightning.cli.main import main

    make_plugin(plugin_site, "fake_command", COMMAND_PLUGIN)
    make_plugin(plugin_site, "fake_taken", TAKEN_COMMAND)
    registry, infos = load_plugins()
    assert "hello" in registry.commands and "export" not in registry.commands
    taken = next(i for i in infos if i.name == "fake_taken")
    assert taken.skipped and "the command 'export' exists already" in taken.skipped
    assert main(["hello", "there"]) == 3  # the CLI loads the same plugins
    assert "hello there" in capsys.readouterr().out
    main(["--help"])
    assert "hello        says hello (plugin fake_command)" in capsys.readouterr().out
    main(["plugins"])
    assert "command hello" in capsys.readouterr().out
