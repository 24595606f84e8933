"""Where mmlightning's log messages go: stderr, one line each, prefixed ``mmlightning:``."""

from __future__ import annotations

import logging
import sys
from typing import Any


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (a notebook or a test may have replaced it since)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging() -> None:
    """mmlightning's messages on stderr, each prefixed ``mmlightning:`` (once per process)."""
    logger = logging.getLogger("mmlightning")
    if not logger.handlers:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("mmlightning: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
