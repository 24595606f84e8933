"""`mmlightning plugins` and `mmlightning components`."""

from __future__ import annotations

import argparse
import json

from mmlightning.plugins import loaded
from mmlightning.registry import KINDS


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
        what = ", ".join(f"{c.kind} {c.name}" for c in info.registered)
        status = f"SKIPPED: {info.skipped}" if info.skipped else what or "(registers nothing)"
        print(f"{info.name:<12} {info.distribution + ' ' + info.version:<28} {status}")
    return 0


def components(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mmlightning components", description="List components.")
    parser.add_argument("kind", nargs="?", choices=list(KINDS), help="only this kind")
    args = parser.parse_args(argv)
    registry, _ = loaded()
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
