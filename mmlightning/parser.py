"""The commands' argument parsers: a bad option gets one line saying what was wrong and what was meant, not ~70
lines of usage before the error. Every command parses with jsonargparse, so each takes ``--config FILE`` (YAML) and
``--print_config``; the training commands through LightningCLI (``Parser`` in :mod:`mmlightning.training`), the
others through :class:`CommandParser`."""

from __future__ import annotations

import difflib
import re
import sys
from typing import Any, NoReturn

from jsonargparse import ActionConfigFile, ArgumentParser
from jsonargparse._common import debug_mode_active


def report(parser: Any, message: str, ex: Exception | None = None) -> NoReturn:
    """Print a bad option's one-line error (with "did you mean") and exit with 2."""
    parser = getattr(ex, "subcommand_parser", None) or parser
    prog = " ".join(["mmlightning", *parser.prog.replace(" [options]", "").split()[1:]])  # not python's argv[0]
    hint = suggestion(message, options(parser))
    sys.stderr.write(f"error: {message.strip()}\n{hint}hint: `{prog} --help` lists every option\n")
    raise SystemExit(2)


class CommandParser(ArgumentParser):
    """A command's options, with ``--config FILE`` and ``--print_config`` (jsonargparse) and one-line errors."""

    def __init__(self, prog: str, description: str, config: bool = True) -> None:
        super().__init__(prog=prog, description=description, allow_abbrev=False)
        if config:  # sweep's --config is its base fit config, so it has none of its own
            self.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options")

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or debug_mode_active():
            super().error(message, ex)
        report(self, message, ex)


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
    for option in re.findall(r"does not accept option '([\w.\-]+)'", message):  # a key in a YAML config
        close = difflib.get_close_matches(f"--{option}", known, n=1, cutoff=0.75)
        if close:
            lines.append(f"did you mean {close[0][2:]} (for {option})?\n")
    setting = re.search(r"Option '(\w+)' is not accepted.*class_path='[\w.]*?(\w+)'", message, re.S)
    if setting:
        name, component = setting.groups()
        lines.append(f"{component} has no setting '{name}': `mmlightning components {component}` lists its settings\n")
    return "".join(lines)
