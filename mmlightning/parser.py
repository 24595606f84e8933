"""The CLI's argument parser: a bad option gets one line saying what was wrong and what was meant, not ~70 lines of
usage before the error."""

from __future__ import annotations

import difflib
import re
import sys
from typing import Any, NoReturn

from jsonargparse._common import debug_mode_active
from lightning.pytorch.cli import LightningArgumentParser


class Parser(LightningArgumentParser):
    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or debug_mode_active():
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = " ".join(["mmlightning", *parser.prog.replace(" [options]", "").split()[1:]])  # not python's argv[0]
        hint = suggestion(message, options(parser))
        sys.stderr.write(f"error: {message.strip()}\n{hint}hint: `{prog} --help` lists every option\n")
        self.exit(2)


def options(parser: Any) -> list[str]:
    """Every long option the parser (and its nested groups) accepts."""
    return [name for action in parser._actions for name in action.option_strings if name.startswith("--")]


def suggestion(message: str, known: list[str]) -> str:
    """``did you mean ...`` for each unrecognised option, from the parser's own options."""
    lines = []
    for option in re.findall(r"(--[\w.\-]+)", message.split("unrecognized arguments:", 1)[-1]):
        if option in known:
            continue
        close = difflib.get_close_matches(option, known, n=1, cutoff=0.75)
        if close:
            lines.append(f"did you mean {close[0]} (for {option})?\n")
    setting = re.search(r"Option '(\w+)' is not accepted.*class_path='[\w.]*?(\w+)'", message, re.S)
    if setting:
        name, component = setting.groups()
        lines.append(f"{component} has no setting '{name}': `mmlightning components {component}` lists its settings\n")
    return "".join(lines)
