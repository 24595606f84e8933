"""`served`: ``mmlightning serve`` in a child process on loopback, for tests and notebooks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence

from mmlightning.errors import MMLightningError


def free_port() -> int:
    """A TCP port nothing on loopback listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerURL(str):
    """The URL of a server :func:`served` started; ``pid`` is its process, the leader of its process group (the
    LitServe workers are in that group too)."""

    pid: int


@contextlib.contextmanager
def served(*args: str, start_seconds: float = 120.0) -> Iterator[ServerURL]:
    """Start ``mmlightning serve ARGS`` (``"--ckpt_path", CKPT`` or ``"--export", DIR``) on a free loopback port
    in its own process group, wait until ``/health`` answers, yield the URL (with the server's ``pid``), then stop
    the server and its workers. A server that does not come up is an error carrying its last output."""
    import requests

    port = free_port()
    command = [sys.executable, "-m", "mmlightning.cli.main", "serve", *args, "--port", str(port)]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, start_new_session=True)
    url = ServerURL(f"http://127.0.0.1:{port}")
    url.pid = server.pid
    try:
        deadline = time.monotonic() + start_seconds
        while True:
            try:
                if requests.get(f"{url}/health", timeout=1).text == "ok":
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                said = server.stderr.read1().decode(errors="replace") if server.stderr else ""  # type: ignore[attr-defined]
                raise MMLightningError(f"the server did not start ({' '.join(_shown(command))}): {said[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(server)


def _shown(command: Sequence[str]) -> list[str]:
    return [os.path.basename(part) if part == sys.executable else part for part in command]


def _stop(server: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)  # the server and its LitServe workers
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    time.sleep(1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)  # anything that outlived SIGTERM
    server.wait(timeout=30)
