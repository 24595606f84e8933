"""Packages a user can install: one version per release, written once per distribution, a licence in every wheel."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

import mmlightning

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())


def version_in(package: Path) -> str:
    found = re.search(r'^__version__ = "([^"]+)"', (package / "__init__.py").read_text(), re.M)
    assert found, f"{package}/__init__.py has no __version__"
    return found.group(1)


def test_every_distribution_reads_its_version_from_its_package_and_all_agree():
    for folder in [ROOT, *PLUGINS]:
        project = tomllib.loads((folder / "pyproject.toml").read_text())
        assert project["project"]["dynamic"] == ["version"] and "version" not in project["project"], folder
        assert project["project"]["license"] == "Apache-2.0" and (folder / "LICENSE").is_file(), folder
        attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
        assert version_in(folder / attr.split(".")[0]) == mmlightning.__version__, folder


def test_the_changelog_has_this_version_and_an_unreleased_section():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog and f"## [{mmlightning.__version__}] - " in changelog
    assert "Apache License" in (ROOT / "LICENSE").read_text()


def test_a_plugin_builds_into_a_wheel_with_its_licence_version_and_entry_point(tmp_path):
    folder = ROOT / "plugins" / "mmlightning-fusions"
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(folder)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert f"Version: {mmlightning.__version__}" in meta and "License-Expression: Apache-2.0" in meta
    assert any(n.endswith("LICENSE") for n in names), names
    assert "fusions = mmlightning_fusions.plugin" in entry_points
