"""Docs that cannot rot: the hooks page matches hookspecs.py, the README's plugin works, configs parse."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from mmlightning import hookspecs
from mmlightning.cli.main import main
from mmlightning.testing import check_fusion

ROOT = Path(__file__).resolve().parents[1]


def test_every_hook_is_documented_with_its_signature():
    guide = (ROOT / "docs" / "plugin-guide.md").read_text()
    hooks = [name for name, fn in vars(hookspecs).items() if inspect.isfunction(fn) and name.startswith("register_")]
    assert len(hooks) == 8
    for name in hooks:
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"`{name}({params})`" in guide, name
    documented = set(re.findall(r"`(register_\w+)\(", guide))
    assert documented == set(hooks)


def test_readme_plugin_passes_the_contract_checks():
    readme = (ROOT / "README.md").read_text()
    source = next(block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "hookimpl" in block)
    assert len(source.strip().splitlines()) <= 25
    namespace: dict = {}
    exec(compile(source, "README.md", "exec"), namespace)
    check_fusion(namespace["MaxFusion"], {"text": 12, "image": 20}, dim=8)
    registered = []
    namespace["register_fusions"](registered.append)
    assert registered == [namespace["MaxFusion"]]


@pytest.mark.parametrize(
    "config",
    sorted((ROOT / "docs" / "configs").glob("*.yaml")) + sorted((ROOT / "examples").glob("*/config.yaml")),
    ids=lambda p: p.parent.name if p.name == "config.yaml" else p.name,
)
def test_shipped_configs_parse(config, capsys):
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(config), "--print_config"])
    assert done.value.code == 0
    assert "class_path: mmlightning_" in capsys.readouterr().out


def test_the_encoder_tutorial_shows_the_tested_example():
    guide = (ROOT / "docs" / "plugin-guide.md").read_text()
    example = (ROOT / "docs" / "examples" / "tabular" / "tabular_example.py").read_text()
    assert f"```python\n{example}```" in guide
    assert len([line for line in example.splitlines() if line.strip()]) <= 40
