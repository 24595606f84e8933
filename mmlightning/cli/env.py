"""`mmlightning env`: what this machine computes fast, and the precision ``precision: auto`` picks on it."""

from __future__ import annotations

import argparse
import json

from mmlightning import __version__


def env(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mmlightning env",
        description="Print the machine's capability (torch, CPU instructions, bf16, threads, GPU) and what "
        "precision: auto chooses here. Quote it beside every timing you report.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    from mmlightning.machine import choose_precision, machine

    found = machine()
    cpu, cpu_reason = choose_precision("cpu", found)
    rows = {
        "mmlightning": __version__,
        "torch": found.torch,
        "CPU": found.cpu,
        "kernels": f"{found.isa} (ATen's CPU capability)",
        "avx512_bf16": "yes" if found.avx512_bf16 else "no",
        "AMX": "yes" if found.amx else "no",
        "bf16": "native" if found.bf16 else "emulated (slower than fp32)",
        "threads": str(found.threads),
        "GPU": f"{found.gpu} ({'bf16' if found.gpu_bf16 else 'no bf16'})" if found.gpu else "none",
        "precision auto": f"{cpu} on the CPU: {cpu_reason}",
    }
    if found.gpu:
        gpu, gpu_reason = choose_precision("gpu", found)
        rows["precision auto"] += f"; {gpu} on the GPU: {gpu_reason}"
    if found.onednn_cap:
        rows["oneDNN cap"] = f"{found.onednn_cap} (ONEDNN_MAX_CPU_ISA)"
    if args.json:
        print(json.dumps({**found.as_dict(), "precision_auto": {"cpu": cpu, "reason": cpu_reason}}, indent=2))
        return 0
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        print(f"{key:<{width}}  {value}")
    print(f"\nline: {found.line()}")
    return 0
