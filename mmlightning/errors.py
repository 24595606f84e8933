"""The errors mmlightning raises for its users: the command line prints their message alone (no traceback).

Exit codes of ``mmlightning``: 0 done; 1 a run that stopped on a fault (a non-finite loss, a crash); 2 bad input
or configuration (these errors; the message says what was wrong, where, and how to fix it). ``--debug`` or
``MMLIGHTNING_DEBUG=1`` shows the full traceback too.
"""

from __future__ import annotations


class MMLightningError(Exception):
    """An error whose message is complete for a user: what was wrong, where, what was expected, the fix."""

    exit_code = 2


class ConfigError(MMLightningError, ValueError):
    """A configuration that cannot work (a column no manifest has, a manifest of an unknown format, ...)."""


class NonFiniteLossError(MMLightningError, FloatingPointError):
    """Training met a NaN or infinite loss (or weights): the run stops rather than train on garbage."""

    exit_code = 1


class MissingFileError(MMLightningError, FileNotFoundError):
    """A file the user named is not there."""


class TooLargeError(MMLightningError, ValueError):
    """A value over a size limit (a picture's pixels, a decompression bomb, a file's bytes): a bad row in training,
    a 413 from ``serve``. Processors raise it from ``check`` and ``__call__``."""


class OverLimit(str):
    """A bad row's reason that is a :class:`TooLargeError` (``ProcessorBundle.check`` gives it; ``serve`` answers
    it with 413 rather than 400)."""
