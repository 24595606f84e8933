"""The ``mmlightning`` / ``mml`` command line."""
