"""The floors of the house as a test: no import cycles anywhere in the core, and `lint-imports`' contracts kept
(the map is in docs/architecture.md, the contracts in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")
ROOT = Path(__file__).resolve().parents[1]


def cycles(graph) -> list[list[str]]:
    """Every module that reaches itself through the imports of the core, each with one such path."""
    found = []
    for start in sorted(graph.modules):
        stack, seen = [(start, [start])], set()
        while stack:
            module, path = stack.pop()
            for target in sorted(graph.find_modules_directly_imported_by(module)):
                if target == start:
                    found.append(path + [start])
                    stack.clear()
                    break
                if target not in seen:
                    seen.add(target)
                    stack.append((target, path + [target]))
    return found


def test_no_module_of_the_core_imports_itself_round_a_cycle():
    graph = grimp.build_graph("mmlightning", include_external_packages=False, exclude_type_checking_imports=True)
    assert cycles(graph) == []


def test_the_finder_sees_a_cycle_when_there_is_one():
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    assert cycles(graph) == [["a.x", "a.y", "a.x"], ["a.y", "a.x", "a.y"]]


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed")
def test_the_layer_contracts_are_kept():
    done = subprocess.run(["lint-imports"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout
