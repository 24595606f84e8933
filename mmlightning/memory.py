"""Host memory on Linux: freed memory is kept for reuse, so a training step does not fault its pages in again.

glibc hands every block over 32 MiB back to the kernel when it is freed, and returns the top of its heap past
128 KiB; the next step asks for the same memory again and the kernel zero-fills it page by page. A CPU training
step frees and reallocates its activations every time, so about a fifth of its time went to these page faults
(`benchmarks/allocator.py`). `keep_freed_memory` tells glibc to keep freed memory: the process then holds its
peak memory until it exits, as a GPU caching allocator does.

`mmlightning fit/validate/test/predict` call it; a script of your own can too. `MMLIGHTNING_ALLOCATOR=system`
leaves glibc's defaults alone, as does another allocator in `LD_PRELOAD` (jemalloc, tcmalloc) or a
`MALLOC_MMAP_MAX_`/`MALLOC_TRIM_THRESHOLD_` setting of your own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt's parameters, from glibc's malloc.h
M_MMAP_MAX = -4
YOURS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory (no mmap'd blocks, no trimming); True if it now does."""
    if sys.platform != "linux" or os.environ.get("MMLIGHTNING_ALLOCATOR", "").lower() == "system":
        return False
    if any(name in os.environ for name in YOURS) or "malloc" in os.environ.get("LD_PRELOAD", ""):
        return False  # the user chose their own allocator settings
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    kept = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, -1) == 1  # -1: never trim
    if not kept:
        log.debug("mallopt refused; glibc's allocator keeps its defaults")
    return kept
