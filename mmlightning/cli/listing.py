"""`mmlightning plugins` and `mmlightning components`."""

from __future__ import annotations

import argparse
import inspect
import json
import re
from typing import Any

from mmlightning.plugins import loaded
from mmlightning.registry import KINDS, UnknownComponentError, _closest


def plugins(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mmlightning plugins", description="List installed plugins.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    _, infos = loaded()
    if args.json:
        rows = [
            {
                "name": i.name,
                "distribution": i.distribution,
                "version": i.version,
                "skipped": i.skipped,
                "registers": {k: [c.name for c in i.registered if c.kind == k] for k in KINDS},
                "commands": [c.name for c in i.commands],
            }
            for i in infos
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not infos:
        print(
            "No plugins installed. First-party ones: pip install -e plugins/mmlightning-text (and -vision, -audio, -fusions, -heads)."
        )
    for info in infos:
        what = ", ".join(
            [*(f"{c.kind} {c.name}" for c in info.registered), *(f"command {c.name}" for c in info.commands)]
        )
        status = f"SKIPPED: {info.skipped}" if info.skipped else what or "(registers nothing)"
        print(f"{info.name:<12} {info.distribution + ' ' + info.version:<28} {status}")
    return 0


def components(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mmlightning components", description="List components.")
    parser.add_argument(
        "kind", nargs="?", help=f"only this kind ({', '.join(KINDS)}), or a component's name for its settings"
    )
    args = parser.parse_args(argv)
    registry, _ = loaded()
    if args.kind and args.kind not in KINDS:
        return settings(registry, args.kind)
    found = registry.components(args.kind)
    if not found:
        print(f"No {args.kind or 'component'}s installed (see `mmlightning plugins`).")
        return 0
    rows = [("KIND", "NAME", "MODALITY", "PLUGIN", "SUMMARY")]
    for c in found:
        try:
            modality, summary = c.modality, c.summary
        except (TypeError, LookupError) as err:  # registered by a path that does not import, or a wrong class
            modality, summary = "?", f"UNUSABLE: {err}"
        rows.append((c.kind, c.name, modality, c.plugin, summary))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    return 0


def settings(registry: Any, name: str) -> int:
    """A component's summary and its settings: name, type, default and what its docstring says of each."""
    component = next(
        (registry.resolve(kind, name) for kind in KINDS if name in registry.names(kind) or "." in name), None
    )
    if component is None:
        names = sorted({n for kind in KINDS for n in registry.names(kind)})
        close = _closest(name, names)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise UnknownComponentError(f"No component named '{name}'.{hint} See `mmlightning components` for them all.")
    cls = component.cls
    print(
        f"{component.kind} {component.name} ({component.path}, plugin {component.plugin})\n\n{inspect.getdoc(cls) or ''}\n"
    )
    docs = _arg_docs(inspect.getdoc(cls.__init__) or "") | _arg_docs(inspect.getdoc(cls) or "")
    rows = [("SETTING", "TYPE", "DEFAULT", "")]
    for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if param.name in ("dims", "dim") and component.kind in ("fusion", "head") and param.default is param.empty:
            continue  # given by the model: the encoders' widths, the fused width
        kind = (
            param.annotation
            if isinstance(param.annotation, str)
            else getattr(param.annotation, "__name__", str(param.annotation))
        )
        default = "(required)" if param.default is param.empty else repr(param.default)
        rows.append((param.name, str(kind).replace("typing.", ""), default, docs.get(param.name, "")))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    print(
        "\nSet them as --model.encoders.KEY.init_args.NAME=VALUE (or init_args in YAML); the full config: mmlightning fit --print_config"
    )
    return 0


def _arg_docs(doc: str) -> dict[str, str]:
    """``name: text`` entries of a Google-style docstring's Args section (continuation lines joined)."""
    found: dict[str, str] = {}
    current = None
    for line in doc.splitlines():
        entry = re.match(r"^\s{2,8}``?(\w+)``?(?: \([^)]*\))?:\s*(.*)$", line) or re.match(
            r"^\s{4}(\w+)(?: \([^)]*\))?:\s*(.*)$", line
        )
        if entry:
            current = entry.group(1)
            found[current] = entry.group(2).strip()
        elif current and line.startswith("        ") and line.strip():
            found[current] += " " + line.strip()
        elif not line.strip():
            current = None
    return found
