"""Upload rules: allowed extensions, file-name sanitising (keeps Chinese), the upload name behind an engine path,
and the spooled body: an uploaded file is written once, into the index folder, and renamed from there."""
from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import secrets
import shutil
import tempfile
import unicodedata
import weakref
from pathlib import Path, PurePosixPath
from typing import IO, Any, Iterable

from flask import Request, current_app
from werkzeug.datastructures import FileStorage

from indexer.ingest.files import SUPPORTED_EXTENSIONS
from indexer.jobs import JOBS_DIR

logger = logging.getLogger(__name__)

MAX_NAME_BYTES = 200  # well under the usual 255-byte file-name limit, with room for the engine's staging prefix
_FORBIDDEN = set('<>:"|?*\\/')


def allowed_extensions() -> frozenset[str]:
    """Lower-case extensions (with the dot) that the ingest layer can read."""
    return SUPPORTED_EXTENSIONS


class UploadNameError(ValueError):
    """A file name that cannot be accepted (empty after sanitising, or a disallowed extension)."""

    def __init__(self, code: str, message_zh: str, message_en: str):
        super().__init__(message_en)
        self.code = code
        self.message_zh = message_zh
        self.message_en = message_en


def sanitize_filename(name: str) -> str:
    """A safe base name: no directories, '..', control or reserved characters, or leading dots; Chinese is kept."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").split("/")[-1]  # basename, whatever the client's path separator
    name = "".join(ch for ch in name if ch not in _FORBIDDEN and not unicodedata.category(ch).startswith("C"))
    name = re.sub(r"\s+", " ", name).strip()
    name = name.replace("..", ".")
    while ".." in name:
        name = name.replace("..", ".")
    name = name.lstrip(". ").rstrip(". ")
    if not name:
        raise UploadNameError("bad_filename", "文件名为空或无效。", "The file name is empty or invalid.")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ext_part = f".{ext}" if dot else ""
    while len((stem + ext_part).encode("utf-8")) > MAX_NAME_BYTES and stem:
        stem = stem[:-1]
    name = (stem.rstrip(". ") + ext_part) if stem.rstrip(". ") else ""
    if not name or name.startswith("."):
        raise UploadNameError("bad_filename", "文件名为空或无效。", "The file name is empty or invalid.")
    return name


def check_extension(name: str, allowed: Iterable[str]) -> None:
    """Raise UploadNameError unless ``name`` ends with one of the allowed extensions."""
    allowed = sorted(allowed)
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in allowed:
        listed = "、".join(e.lstrip(".") for e in allowed)
        raise UploadNameError(
            "unsupported_type",
            f"不支持的文件类型“{suffix or '无扩展名'}”，可上传：{listed}。",
            f"Unsupported file type '{suffix or '(none)'}'; allowed: {', '.join(allowed)}.",
        )


def uploaded_name(path: str) -> str:
    """The uploaded file name an engine error path refers to (a corpus-relative name, a temp path, a staged copy)."""
    base = PurePosixPath(path.replace("\\", "/")).name
    staged = re.match(r"^\.partyqa-staged-\d+-\d+-(.+)$", base)
    return staged.group(1) if staged else base


# --------------------------------------------------------------------------------------------- the spooled body
INCOMING = "incoming"  # <index>/jobs/incoming/: upload bodies as they are received, and the accepted files
_PART = re.compile(r"^(\d+)-[0-9a-f]+\.part$|^upload-(\d+)-")


class SpooledUpload(io.RawIOBase):
    """One uploaded file's body, written once into ``<index>/jobs/incoming/`` as the request is parsed.

    The multipart parser writes the body here in chunks (never whole in memory) while the SHA-1 is computed; an
    accepted upload is then *renamed* (:meth:`claim`) into the job's spool and hard-linked into the data folder on
    commit, so its bytes are written once. A body nobody claims is deleted when the request closes.
    """

    def __init__(self, folder: Path):
        super().__init__()
        self._claimed = True  # nothing to delete until the file exists
        folder.mkdir(parents=True, exist_ok=True)
        while True:
            self.path = folder / f"{os.getpid()}-{secrets.token_hex(8)}.part"
            try:  # mode 0o666 less the umask, as a file the user saved would have
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
                break
            except FileExistsError:  # pragma: no cover - 64 random bits
                continue
        self._file = os.fdopen(fd, "w+b")
        self._sha1: Any = hashlib.sha1()
        self._hashed = 0
        self._claimed = False
        self._finalizer = weakref.finalize(self, _discard, self._file, self.path)

    def readable(self) -> bool:
        """Yes: the FAQ import and ``FileStorage.save`` read it back."""
        return True

    def writable(self) -> bool:
        """Yes: the multipart parser writes the body."""
        return True

    def seekable(self) -> bool:
        """Yes."""
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        """Append a chunk of the body (and hash it while it is in memory anyway)."""
        if self._sha1 is not None:
            if self._file.tell() == self._hashed:
                self._sha1.update(data)
                self._hashed += len(data)
            else:  # written out of order: hash the file when asked
                self._sha1 = None
        return self._file.write(data)

    def read(self, size: int = -1) -> bytes:
        """Read like a file."""
        return self._file.read(size)

    def readinto(self, buffer: Any) -> int:
        """Read like a file."""
        return self._file.readinto(buffer)

    def readline(self, size: int | None = -1) -> bytes:
        """Read like a file."""
        return self._file.readline(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Seek like a file."""
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        """The position, like a file."""
        return self._file.tell()

    def fileno(self) -> int:
        """The open file's descriptor."""
        return self._file.fileno()

    def flush(self) -> None:
        """Flush the written chunks to the file."""
        fh = getattr(self, "_file", None)  # None when __init__ failed before the file existed
        if fh is not None and not fh.closed:
            fh.flush()

    def size(self) -> int:
        """Bytes received."""
        self.flush()
        return os.fstat(self._file.fileno()).st_size

    def claim(self, dest: Path) -> str:
        """Move the body to ``dest`` (a rename: ``dest`` is on the index's filesystem) and return its SHA-1."""
        size = self.size()
        if self._sha1 is None or self._hashed != size:
            self._file.seek(0)
            self._sha1, self._hashed = hashlib.sha1(), 0
            for block in iter(lambda: self._file.read(1 << 20), b""):
                self._sha1.update(block)
                self._hashed += len(block)
        os.replace(self.path, dest)
        self._claimed = True
        self._finalizer.detach()
        self._file.close()
        return self._sha1.hexdigest()

    def close(self) -> None:
        """Close the body; delete it unless it was claimed."""
        if not self._claimed:
            self._finalizer()
        super().close()


def _discard(fh: Any, path: Path) -> None:
    """Close and delete an unclaimed body (on close, or when the object is collected after a failed parse)."""
    try:
        fh.close()
    finally:
        path.unlink(missing_ok=True)


def incoming_dir(index_root: Any) -> Path | None:
    """``<index>/jobs/incoming`` of an engine's index folder (None for an engine without one)."""
    return Path(index_root) / JOBS_DIR / INCOMING if isinstance(index_root, (str, Path)) and index_root else None


def clear_incoming(folder: Path | None) -> int:
    """Delete bodies and accepted-file folders a killed server left in ``folder`` (those of live processes stay);
    returns how many."""
    if folder is None or not folder.is_dir():
        return 0
    cleared = 0
    for entry in folder.iterdir():
        m = _PART.match(entry.name)
        pid = int(m.group(1) or m.group(2)) if m else None
        if pid is not None and _alive(pid):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        cleared += 1
    if cleared:
        logger.warning("removed %d upload(s) left by a stopped server in %s", cleared, folder)
    return cleared


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def accepted_dir(folder: Path | None) -> Path:
    """A new folder for one upload's accepted files: in ``folder`` (the index's, so files are renamed, not copied,
    into the job's spool) or, for an engine without an index folder (or one it cannot write), the system's temp dir."""
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=f"upload-{os.getpid()}-", dir=folder))
        except OSError as exc:
            logger.warning("cannot spool uploads in %s (%s): using the temp dir", folder, exc)
    return Path(tempfile.mkdtemp(prefix="partyqa-upload-"))


def save_upload(storage: FileStorage, dest: Path) -> str | None:
    """Put an uploaded file at ``dest``: rename its spooled body (:class:`SpooledUpload`) and return its SHA-1, or,
    for a body held elsewhere, copy it and return None."""
    if isinstance(storage.stream, SpooledUpload):
        return storage.stream.claim(dest)
    storage.save(dest)
    return None


class UploadRequest(Request):
    """Flask's request, with multipart file bodies spooled into the index folder (:class:`SpooledUpload`)."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        folder = getattr(current_app.extensions.get("partyqa"), "incoming", None)
        try:
            body = SpooledUpload(folder) if folder is not None else None
        except OSError as exc:  # e.g. an index folder this process may not write: the bodies go to the temp dir
            logger.warning("cannot spool uploads in %s (%s): using the temp dir", folder, exc)
            body = None
        if body is None:
            return super()._get_file_stream(total_content_length, content_type, filename, content_length)
        self.__dict__.setdefault("_spooled", []).append(body)
        return body  # type: ignore[return-value]

    def close(self) -> None:
        """Close the files; bodies no route claimed (a refused upload, a broken request) are deleted."""
        try:
            super().close()
        finally:
            for body in self.__dict__.get("_spooled", []):
                body.close()
