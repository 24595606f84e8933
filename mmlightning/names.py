"""Checking component names on the command line and in configs before LightningCLI parses them,
so that a typo gets "did you mean" and a name two plugins share gets both full paths."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from mmlightning.registry import Registry

FLAG = re.compile(r"^--model\.(encoders\.[^.=]+|fusion|heads\.[^.=]+)$")
KIND = {"encoders": "encoder", "fusion": "fusion", "heads": "head"}


def check_names(argv: list[str], registry: Registry) -> None:
    """Raise UnknownComponentError for the first name no plugin provides (or several do)."""
    for kind, name in _names(argv):
        registry.resolve(kind, name)


def _names(argv: list[str]) -> Iterator[tuple[str, str]]:
    for i, arg in enumerate(argv):
        key, _, value = arg.partition("=")
        if not value and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value = argv[i + 1]
        if key in {"--config", "-c"} and value:
            yield from _config_names(Path(value))
        elif FLAG.match(key) and re.fullmatch(r"[A-Za-z_][\w.]*", value or ""):
            yield KIND[key.split(".")[1]], value


def check_config_names(config: Mapping[str, Any], registry: Registry) -> None:
    """The same check for a config given as a dict (``mmlightning.fit``)."""
    for kind, name in _names_in(config):
        registry.resolve(kind, name)


def _config_names(path: Path) -> Iterator[tuple[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    yield from _names_in(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


def _names_in(config: Any) -> Iterator[tuple[str, str]]:
    model = config.get("model", {}) if isinstance(config, Mapping) else {}
    for section, kind in KIND.items():
        value = model.get(section)
        entries = [value] if section == "fusion" else list((value or {}).values()) if isinstance(value, dict) else []
        for entry in entries:
            name = _class_name(entry)
            if name:
                yield kind, name


def _class_name(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("class_path"), str):
        return entry["class_path"]
    return None
