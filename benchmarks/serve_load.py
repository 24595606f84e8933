"""`mmlightning serve` under a mixed load of good and hostile requests: each answer's status, the good requests'
latency, and each server process's memory (resident now, and its peak) idle and after the load.

Used by `benchmarks/deploy.py --part serve` (which trains the quickstart model first, or takes `--ckpt_path`).
The load, sent over 16 threads, repeats this mix: good rows (text and an uploaded picture), a text-only row, a
5 MB text, a picture that does not decode, a PNG declaring 30000 x 30000 pixels (a decompression bomb), a 6000 x
6000 PNG (36 megapixels, under the limit: decoded), JSON cut short, a file uploaded for the text field, a 25 MB body
(over the 20 MB limit) and a request with an unknown field.
"""

from __future__ import annotations

import base64
import io
import json
import statistics
import struct
import subprocess
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from PIL import Image


def upload(data: bytes) -> dict[str, str]:
    return {"base64": base64.b64encode(data).decode()}


def bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def big_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def mix(rows: list[dict[str, Any]], root: Path) -> list[tuple[str, dict[str, Any]]]:
    """(kind, requests.post keyword arguments) for one round of the load."""
    good = [
        ("good", {"json": {"text": r["text"], "image": upload((root / r["image"]).read_bytes())}}) for r in rows[:8]
    ]
    return good + [
        ("text only", {"json": {"text": rows[0]["text"]}}),
        ("5 MB text", {"json": {"text": "a red circle " * 400_000}}),
        ("undecodable picture", {"json": {"text": "x", "image": upload(b"not a picture" * 100)}}),
        ("bomb", {"json": {"text": "x", "image": upload(bomb())}}),
        ("36-megapixel PNG", {"json": {"text": "x", "image": upload(big_png(6000))}}),
        ("JSON cut short", {"data": b'{"text": "a red', "headers": {"content-type": "application/json"}}),
        ("file for text", {"json": {"text": upload(b"hello")}}),
        ("25 MB body", {"data": b"0" * 25_000_000, "headers": {"content-type": "application/json"}}),
        ("unknown field", {"json": {"colour": "red"}}),
    ]


def memory(pgid: int) -> dict[int, dict[str, Any]]:
    """Each process of the server's group: its command, resident and peak resident memory (MB)."""
    listed = subprocess.run(["ps", "-o", "pid=,args=", "-g", str(pgid)], capture_output=True, text=True).stdout
    found = {}
    for line in listed.splitlines():
        pid, _, args = line.strip().partition(" ")
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = {k: v.split()[0] for k, _, v in (x.partition(":") for x in status.splitlines()) if v.strip()}
        found[int(pid)] = {
            "process": "server" if int(pid) == pgid else args[:60],
            "rss_mb": round(int(fields.get("VmRSS", 0)) / 1024, 1),
            "peak_mb": round(int(fields.get("VmHWM", 0)) / 1024, 1),
        }
    return found


def serve_load(ckpt: str, rows_path: Path, count: int = 600) -> dict[str, Any]:
    from mmlightning.deploy.local import served

    rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
    with served("--ckpt_path", ckpt) as url:
        requests.post(f"{url}/predict", json={"text": rows[0]["text"]}, timeout=60)  # warm
        time.sleep(2)
        idle = memory(url.pid)
        plan = mix(rows, rows_path.parent)
        load = [plan[i % len(plan)] for i in range(count)]

        def send(item: tuple[str, dict[str, Any]]) -> tuple[str, int, float]:
            start = time.perf_counter()
            try:
                status = requests.post(f"{url}/predict", timeout=120, **item[1]).status_code
            except requests.ConnectionError:
                status = 0  # the server closed the connection (a body it refused before reading all of it)
            return item[0], status, time.perf_counter() - start

        start = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(send, load))
        elapsed = time.perf_counter() - start
        after = memory(url.pid)
    statuses: dict[str, Counter] = {}
    for kind, status, _ in answers:
        statuses.setdefault(kind, Counter())[status] += 1
    good = sorted(seconds for kind, status, seconds in answers if kind == "good")
    processes = [
        {"process": idle[pid]["process"], "idle_rss_mb": idle[pid]["rss_mb"], "idle_peak_mb": idle[pid]["peak_mb"],
         "after_rss_mb": after.get(pid, {}).get("rss_mb"), "peak_mb": after.get(pid, {}).get("peak_mb")}
        for pid in idle
    ]  # fmt: skip
    result = {
        "requests": count,
        "seconds": round(elapsed, 1),
        "statuses": {kind: dict(c) for kind, c in statuses.items()},
        "answers_500": sum(1 for _, status, _ in answers if status >= 500),
        "good_latency_ms": {
            "p50": round(statistics.median(good) * 1000, 1),
            "p95": round(good[int(0.95 * (len(good) - 1))] * 1000, 1),
        },
        "processes": processes,
    }
    print(f"\nserve: {count} requests over 16 threads in {elapsed:.1f} s; 5xx answers: {result['answers_500']}")
    for kind, found in result["statuses"].items():
        print(f"  {kind:<22} {dict(sorted(found.items()))}")
    print(f"  good requests: p50 {result['good_latency_ms']['p50']} ms, p95 {result['good_latency_ms']['p95']} ms")
    print(f"\n{'process':<62} {'idle MB':>8} {'after MB':>9} {'peak MB':>8}")
    for p in processes:
        print(f"{p['process']:<62} {p['idle_rss_mb']:>8} {p['after_rss_mb']!s:>9} {p['peak_mb']!s:>8}")
    return result
