"""Freed memory is kept for reuse (`mmlightning.memory`): measured as page faults, in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mmlightning.memory import keep_freed_memory

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt is Linux-only")

# A training step's pattern: a 64 MiB block filled, freed, allocated again; minor page faults per repetition.
CHILD = """
import json, resource
from mmlightning.memory import keep_freed_memory
kept = keep_freed_memory()
blocks = [bytearray(64 << 20) for _ in range(2)]
del blocks
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    block = bytearray(64 << 20)
    del block
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
print(json.dumps({"kept": kept, "faults": faults}))
"""


def faults_per_repetition(**env: str) -> dict[str, float]:
    clean = {k: v for k, v in os.environ.items() if k not in ("MMLIGHTNING_ALLOCATOR", "MALLOC_MMAP_MAX_")}
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_a_freed_block_is_reused_without_faulting_its_pages_in_again():
    kept = faults_per_repetition()
    system = faults_per_repetition(MMLIGHTNING_ALLOCATOR="system")
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert kept["kept"] is True and kept["faults"] < pages / 100
    assert system["kept"] is False and system["faults"] > pages / 2  # glibc's default: every page faulted again


def test_allocator_settings_of_your_own_are_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "65536")
    assert keep_freed_memory() is False
    assert faults_per_repetition(MALLOC_MMAP_MAX_="65536")["kept"] is False
