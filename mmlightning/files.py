"""Writing files so that none is ever half-written under its final name, and a full or read-only disk is one clear
message.

Everything a run or a command leaves behind (checkpoints, ``bundle.json``, exports, results, reports) is written
to a temporary name in the same folder, flushed, then renamed over the final name: a kill, a crash or a full disk
leaves the previous file (or none), never a truncated one. :class:`DiskError` says which folder could not be
written, why, and which checkpoint is the last good one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from mmlightning.errors import MMLightningError

DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EFBIG}


class DiskError(MMLightningError):
    """A file could not be written: the disk is full or read-only, or the folder is not writable."""

    exit_code = 1


@contextlib.contextmanager
def replacing(path: str | Path, last_good: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block has written it, it becomes ``path`` (one rename).
    If the block fails, the temporary file is removed and ``path`` is as it was; a disk fault is a
    :class:`DiskError` (naming ``last_good``, the checkpoint to resume from, when given)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        if temporary.is_file():
            with open(temporary, "rb+") as written:
                os.fsync(written.fileno())
        os.replace(temporary, path)
    except OSError as err:
        raise disk_error(err, path, last_good) from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def staged(folder: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``folder``; once the block has filled it, each of its files is renamed into
    ``folder`` (other files already there are kept). If the block fails, nothing of it reaches ``folder``."""
    import shutil

    folder = Path(folder)
    staging = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        staging.mkdir(parents=True)
        yield staging
        folder.mkdir(parents=True, exist_ok=True)
        for found in sorted(staging.rglob("*")):
            if found.is_file():
                target = folder / found.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(found, target)
    except OSError as err:
        raise disk_error(err, folder / "export.json") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text(path: str | Path, text: str) -> Path:
    """``Path.write_text`` (UTF-8), never half-written."""
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with replacing(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def disk_error(err: OSError, path: str | Path, last_good: str | Path | None = None) -> OSError | DiskError:
    """A disk fault (full, read-only, no permission) as one message naming the folder; any other error as it was."""
    if not isinstance(err, OSError) or err.errno not in DISK_ERRNOS:
        return err
    folder = Path(path).parent
    why = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
        errno.EROFS: "the disk is read-only",
        errno.EFBIG: "the file is over the file system's size limit",
    }.get(err.errno or 0, "the folder is not writable (permission denied)")
    last = f"; the last good checkpoint is {last_good}" if last_good else ""
    return DiskError(
        f"could not write {Path(path).name} in {folder}: {why} ({err.strerror}){last}. Nothing was left half-written; "
        "free some space (or point --trainer.default_root_dir / --out elsewhere) and run again"
        + (" (resume with --ckpt_path that checkpoint)" if last_good else "")
    )


def last_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete checkpoint in ``folder`` (temporary files are never ``*.ckpt``)."""
    found = [p for p in Path(folder).glob("*.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None
