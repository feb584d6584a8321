"""Read whoosh's memory-mapped segment files in place instead of copying them into the heap.

whoosh-reloaded 2.7.5 opens each file inside a compound segment (``MAIN_….seg``: the postings, the term table, the
field lengths) as a ``BufferFile`` over a ``memoryview`` of the segment's ``mmap`` -- and that class hands the view to
``io.BytesIO``, which copies it. So a searcher held the whole segment twice: the copy (anonymous memory) and the
mapped pages the copy had read (file-backed). At 100k passages that was ~110 MB of each in a serving process
(bench/NOTES.md, "Serving memory: whoosh's segment copy").

:class:`ViewFile` is the same file read through the view: its own position, so readers on several threads stay
independent as they were with one ``BytesIO`` each, and only the pages a question reads are brought in. It is
installed where ``whoosh.filedb.compound`` builds its ``BufferFile`` (:func:`install`, idempotent), before any index
is opened. Every other whoosh path is unchanged; writes never go through it (a compound segment is read-only).
"""
from __future__ import annotations

import logging
import os
from typing import Any

from whoosh.filedb import compound
from whoosh.filedb.structfile import BufferFile

logger = logging.getLogger(__name__)
_LINE_BLOCK = 4096  # bytes looked at per step by readline


class _ViewReader:
    """The read side of a binary file over a memoryview, without copying it (what ``BufferFile.file`` is used for)."""

    __slots__ = ("_view", "_pos", "closed")

    def __init__(self, view: memoryview):
        self._view = view
        self._pos = 0
        self.closed = False

    def read(self, n: int | None = -1) -> bytes:
        """Up to ``n`` bytes from the position (all the rest when ``n`` is None or negative)."""
        start = self._pos
        end = len(self._view) if n is None or n < 0 else min(len(self._view), start + n)
        self._pos = max(start, end)
        return bytes(self._view[start:end])

    def readline(self, limit: int = -1) -> bytes:
        """Bytes up to and including the next newline, at most ``limit`` (whoosh reads no lines from a segment; kept
        for the file API). Scans a block at a time: the rest of a large file is never copied whole."""
        end = len(self._view) if limit is None or limit < 0 else min(len(self._view), self._pos + limit)
        start = pos = min(self._pos, end)
        while pos < end:
            block = bytes(self._view[pos:min(end, pos + _LINE_BLOCK)])
            cut = block.find(b"\n")
            if cut >= 0:
                pos += cut + 1
                break
            pos += len(block)
        self._pos = max(self._pos, pos)
        return bytes(self._view[start:pos])

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (``whence`` as for any file); returns it."""
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self) -> int:
        """The position."""
        return self._pos

    def flush(self) -> None:
        """Nothing to flush (read-only)."""

    def close(self) -> None:
        """Let go of the view (the mapping itself belongs to the compound storage)."""
        self.closed = True
        self._view = memoryview(b"")


class ViewFile(BufferFile):
    """whoosh's ``BufferFile`` reading its buffer in place (see the module docstring)."""

    def __init__(self, buf: Any, name: str | None = None, onclose: Any = None):
        self._buf = buf
        self._name = name
        self.file = _ViewReader(memoryview(buf))
        self.onclose = onclose
        self.is_real = False
        self.is_closed = False

    def subset(self, position: int, length: int, name: str | None = None) -> "ViewFile":
        """A part of this file, still without a copy."""
        return ViewFile(memoryview(self._buf)[position:position + length], name=name or self._name)


def install() -> None:
    """Make whoosh's compound storage open its files as :class:`ViewFile` (once per process)."""
    if compound.BufferFile is not ViewFile:
        compound.BufferFile = ViewFile
        logger.debug("whoosh compound segments are read in place")
