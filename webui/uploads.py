"""Upload rules: allowed extensions, file-name sanitising (keeps Chinese), and the upload name behind an engine path."""
from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import PurePosixPath
from typing import Iterable

from indexer.ingest.files import SUPPORTED_EXTENSIONS

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
