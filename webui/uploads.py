"""Upload rules: allowed extensions, file-name sanitising (keeps Chinese), and bilingual reasons for ingest errors."""
from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import PurePosixPath
from typing import Iterable

logger = logging.getLogger(__name__)

FALLBACK_EXTENSIONS = frozenset({".txt", ".md", ".docx", ".pdf", ".html", ".htm", ".jsonl"})
MAX_NAME_BYTES = 200  # well under the usual 255-byte file-name limit, with room for the engine's staging prefix
_FORBIDDEN = set('<>:"|?*\\/')


def allowed_extensions() -> frozenset[str]:
    """Lower-case extensions (with the dot) that the ingest layer can read."""
    try:
        from indexer.ingest import SUPPORTED_EXTENSIONS  # type: ignore[attr-defined]

        exts = frozenset(e.lower() if e.startswith(".") else f".{e.lower()}" for e in SUPPORTED_EXTENSIONS)
        return exts or FALLBACK_EXTENSIONS
    except Exception:
        logger.debug("indexer.ingest.SUPPORTED_EXTENSIONS unavailable; using the fallback set", exc_info=True)
        return FALLBACK_EXTENSIONS


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


# Chinese for the ingest layer's English reasons (matched by phrase), so every upload error reads "中文 / English".
_REASONS_ZH: tuple[tuple[str, str], ...] = (
    ("legacy Word .doc", "不支持旧版 Word .doc 文件，请在 Word/WPS 中另存为 .docx 后再上传"),
    ("unsupported file type", "不支持的文件类型"),
    ("corrupt or not a Word .docx", "文件已损坏，或不是 Word .docx 文件"),
    ("the Word file contains no text", "Word 文件中没有文字"),
    ("password", "PDF 设有密码，请去掉密码后再上传"),
    ("encrypted", "PDF 已加密，无法打开"),
    ("no text layer", "PDF 没有文字层（可能是扫描件），请先做文字识别（OCR）"),
    ("corrupt or not a PDF", "文件已损坏，或不是 PDF 文件"),
    ("corrupt PDF", "PDF 文件已损坏"),
    ("over the", "文件超过大小上限"),
    ("only NUL bytes", "文件内容全是空字节（可能没有下载完整）"),
    ("file is empty", "文件为空"),
    ("empty document", "文档中没有可索引的文字"),
    ("cannot decode", "无法识别文字编码（可能是二进制文件）"),
    ("byte-order mark", "文件编码标记与内容不符，无法解码"),
    ("not enough memory", "内存不足，无法读取该文件"),
    ("nested too deeply", "文档嵌套层级过深，无法读取"),
    ("no valid line", "文件中没有有效的记录行"),
    ("no documents", "文件中没有文档（每行都是空的）"),
    ("invalid JSON", "不是有效的 JSON"),
    ("repeats", "文档编号与前面的行重复"),
    ("text", "缺少非空的 text 文本字段"),
    ("already used by", "文档编号与已有文档重复"),
    ("no indexable text", "文件中没有可索引的文本"),
)
_HAN = re.compile(r"[\u4e00-\u9fff]")


def bilingual_reason(reason: str) -> str:
    """An ingest error reason in the "中文 / English" form (reasons that already start in Chinese are kept)."""
    text = str(reason or "").strip()
    if not text or (" / " in text and _HAN.search(text.split(" / ")[0])):
        return text
    parts = []
    for piece in text.split("; line "):  # a .jsonl's skipped lines are joined into one reason
        line = re.match(r"^(?:line )?(\d+): ", piece) if parts or piece.startswith("line ") else None
        prefix = f"第 {line.group(1)} 行：" if line else ""
        zh = next((z for key, z in _REASONS_ZH if key in piece), "该行无效，已跳过" if prefix else "无法读取该文件")
        parts.append(prefix + zh)
    return "；".join(parts) + " / " + text


def uploaded_name(path: str) -> str:
    """The uploaded file name an engine error path refers to (a corpus-relative name, a temp path, a staged copy)."""
    base = PurePosixPath(path.replace("\\", "/")).name
    staged = re.match(r"^\.partyqa-staged-\d+-\d+-(.+)$", base)
    return staged.group(1) if staged else base
