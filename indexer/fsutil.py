"""Crash-safe file writes: atomic JSON, directory fsync, and the named checkpoints the kill tests pause at."""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable



logger = logging.getLogger(__name__)


_PAUSED: set[str] = set()


def checkpoint(root: Path, name: str) -> None:
    """Test hook: when PARTYQA_PAUSE_AT names this point, mark it in the index dir and wait to be killed or released.

    Lets the robustness tests SIGKILL a real writer at a known step (reading, keyword, embedding, before/after
    the CURRENT switch), or let it go on by deleting the marker. Pauses once per process, for at most
    PARTYQA_PAUSE_SECONDS. Does nothing unless the variable is set.
    """
    if os.environ.get("PARTYQA_PAUSE_AT") != name or name in _PAUSED:
        return
    _PAUSED.add(name)
    marker = root / f".paused-{name}"
    marker.write_text(str(os.getpid()), "utf-8")
    logger.warning("PARTYQA_PAUSE_AT=%s: pausing for a test", name)
    deadline = time.monotonic() + float(os.environ.get("PARTYQA_PAUSE_SECONDS", "120"))
    while marker.exists() and time.monotonic() < deadline:  # the test deletes the marker to release the writer
        time.sleep(0.05)


def fsync_dir(path: Path) -> None:
    """fsync a directory, so that renames inside it are durable (best effort: not every system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stage_file(path: Path, write: Callable[[BinaryIO], Any]) -> str:
    """Write a temp file beside ``path`` with ``write(fh)`` and fsync it; returns its name for :func:`os.replace`.

    On failure the temp file is removed and ``path`` is untouched.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return tmp


def write_atomic(path: Path, write: Callable[[BinaryIO], Any], mode: int | None = None) -> None:
    """Write a file via a temp file in the same folder, fsync, then os.replace over ``path``; ``mode``: the file's
    permission bits (a temp file is created 0600, right for an index, not for a file others read, like corpus/)."""
    staged = stage_file(path, write)
    if mode is not None:
        os.chmod(staged, mode)
    os.replace(staged, path)


def write_json(path: Path, obj: Any, indent: int | None = None) -> None:
    """Write JSON (UTF-8, not ASCII-escaped; ``indent`` as json.dumps's) atomically over ``path``."""
    # json.dumps, not json.dump: that one always encodes in Python (5x slower)
    data = json.dumps(obj, ensure_ascii=False, indent=indent).encode("utf-8")
    write_atomic(path, lambda fh: fh.write(data))
