"""Reading files into RawDocuments: the supported types, size limits, dispatch to one loader per format, corpus folders."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from indexer.ingest.decode import short_error, strip_invisible
from indexer.ingest.docx import load_docx
from indexer.ingest.html import load_html
from indexer.ingest.jsonl import load_jsonl
from indexer.ingest.markdown import load_markdown, load_text
from indexer.ingest.pdf import load_pdf
from indexer.types import IngestError, RawDocument

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".txt", ".md", ".markdown", ".docx", ".pdf", ".html", ".htm", ".jsonl"}
)


MAX_FILE_BYTES = 50 * 1024 * 1024
"""Files larger than this are refused before reading (override: PARTYQA_MAX_FILE_MB, or ``max_bytes``)."""
MAX_FILE_ENV = "PARTYQA_MAX_FILE_MB"

# =========================================================================== entry points


def max_file_bytes() -> int:
    """The size limit for one file: PARTYQA_MAX_FILE_MB (megabytes, may be fractional; 0 = no limit) or 50 MB."""
    raw = os.environ.get(MAX_FILE_ENV, "").strip()
    if not raw:
        return MAX_FILE_BYTES
    try:
        mb = float(raw)
    except ValueError:
        logger.warning("%s=%r is not a number of megabytes; using %d MB", MAX_FILE_ENV, raw, MAX_FILE_BYTES >> 20)
        return MAX_FILE_BYTES
    return int(mb * 1024 * 1024) if mb > 0 else 0


def _mb(n: int) -> str:
    """A byte count in megabytes for messages: 76758016 -> "73.2", 52428800 -> "50"."""
    return f"{n / 1024 / 1024:.1f}".removesuffix(".0")


def _too_big(name: str, size: int, limit: int) -> IngestError:
    return IngestError(name, f"文件超过大小上限 / file is {_mb(size)} MB, over the {_mb(limit)} MB limit ({MAX_FILE_ENV})")


def load_file(path: str | Path, doc_id: str | None = None, max_bytes: int | None = None) -> list[RawDocument]:
    """Load one file into RawDocuments (one, or one per valid line for .jsonl); raise IngestError naming the file.

    Invalid .jsonl lines are skipped and logged as warnings; use :func:`load_file_checked` to get them.
    """
    docs, problems = load_file_checked(path, doc_id=doc_id, max_bytes=max_bytes)
    for problem in problems:
        logger.warning("%s: %s (line skipped)", path, problem)
    return docs


def load_file_checked(
    path: str | Path, doc_id: str | None = None, max_bytes: int | None = None
) -> tuple[list[RawDocument], list[str]]:
    """Load one file; return (documents, problems), problems being skipped .jsonl lines ("line 7: invalid JSON (...)").

    Raise IngestError(path, reason) when nothing usable can be read: unsupported type, missing, over the size
    limit (``max_bytes``, default :func:`max_file_bytes`; checked before reading), empty, undecodable, corrupt,
    no text, or a .jsonl with no valid line. Texts and titles come back without control and zero-width characters.
    """
    p = Path(path)
    name = str(path)
    ext = p.suffix.lower()
    loader = _LOADERS.get(ext)
    if loader is None:
        raise IngestError(name, _unsupported_reason(ext))
    limit = max_file_bytes() if max_bytes is None else max_bytes
    try:
        st = p.stat()
    except FileNotFoundError as e:
        raise IngestError(name, "无法读取该文件 / file not found") from e
    except OSError as e:
        raise IngestError(name, f"无法读取该文件 / cannot read file: {e.strerror or e}") from e
    if p.is_dir():
        raise IngestError(name, "无法读取该文件 / is a directory, not a file")
    if not p.is_file():
        raise IngestError(name, "无法读取该文件 / not a regular file")
    if limit > 0 and st.st_size > limit:
        raise _too_big(name, st.st_size, limit)
    try:
        with open(p, "rb") as f:
            data = f.read(limit + 1) if limit > 0 else f.read()
    except OSError as e:
        raise IngestError(name, f"无法读取该文件 / cannot read file: {e.strerror or e}") from e
    if limit > 0 and len(data) > limit:  # the file grew after stat()
        raise _too_big(name, os.path.getsize(p), limit)
    if not data or data.isspace():
        raise IngestError(name, "文件为空 / file is empty")
    if not data.rstrip(b"\x00"):
        raise IngestError(name, "文件内容全是空字节（可能没有下载完整） / file is empty (only NUL bytes: an incomplete download?)")
    problems: list[str] = []
    try:
        docs = loader(data, name, doc_id or p.name, p, problems)
    except IngestError:
        raise
    except MemoryError as e:
        raise IngestError(name, f"内存不足，无法读取该文件 / not enough memory to read this {_mb(len(data))} MB file") from e
    except RecursionError as e:
        raise IngestError(name, "文档嵌套层级过深，无法读取 / document is nested too deeply to read") from e
    except Exception as e:  # a loader bug or library quirk must still name the file
        logger.warning("unexpected error reading %s", name, exc_info=True)
        raise IngestError(name, f"无法读取该文件 / cannot read {ext} file: {type(e).__name__}: {short_error(e)}") from e
    del data
    for d in docs:
        d.text = strip_invisible(d.text)
        if d.title is not None:
            d.title = " ".join(strip_invisible(d.title).split()) or None
        if not d.text.strip():
            raise IngestError(name, "文档中没有可索引的文字 / empty document: no text left after removing whitespace and control/zero-width characters")
    logger.debug("%s: loaded %d document(s), %d problem(s)", name, len(docs), len(problems))
    return docs, problems


def _unsupported_reason(ext: str) -> str:
    supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
    if ext == ".doc":
        return f"不支持旧版 Word .doc 文件，请在 Word/WPS 中另存为 .docx 后再上传 / legacy Word .doc is not supported; save it as .docx in Word/WPS (另存为 .docx) and add that; supported: {supported}"
    shown = f"'{ext}'" if ext else "(no extension)"
    return f"不支持的文件类型 / unsupported file type {shown}; supported: {supported}"


def iter_corpus_files(corpus_dir: str | Path) -> list[Path]:
    """All supported files under corpus_dir (recursive, sorted), skipping hidden files/dirs and Office "~$" lock files."""
    root = Path(corpus_dir)
    if not root.exists():
        raise IngestError(str(corpus_dir), "找不到文档目录 / corpus directory not found")
    if not root.is_dir():
        raise IngestError(str(corpus_dir), "不是目录 / not a directory")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in filenames:
            if fn.startswith((".", "~$")):
                continue
            fp = Path(dirpath) / fn
            if fp.suffix.lower() in SUPPORTED_EXTENSIONS:
                found.append(fp)
            else:
                logger.info("skipping %s: unsupported file type", fp)
    found.sort(key=lambda f: f.relative_to(root).as_posix())
    return found


def load_directory(corpus_dir: str | Path) -> tuple[list[RawDocument], list[IngestError]]:
    """Load every supported file under corpus_dir; continue past failures and return (documents, errors).

    errors holds one IngestError per failed file and one per skipped .jsonl line (its reason "line N: ...").
    """
    root = Path(corpus_dir)
    docs: list[RawDocument] = []
    errors: list[IngestError] = []
    seen: dict[str, str] = {}
    for fp in iter_corpus_files(root):
        rel = fp.relative_to(root).as_posix()
        try:
            file_docs, problems = load_file_checked(fp, doc_id=rel)
            for d in file_docs:
                if d.doc_id in seen:
                    raise IngestError(str(fp), f"文档编号与已有文档重复 / document id '{d.doc_id}' is already used by {seen[d.doc_id]}")
        except IngestError as e:
            logger.warning("skipping %s", e)
            errors.append(e)
            continue
        for d in file_docs:
            seen[d.doc_id] = str(fp)
        docs.extend(file_docs)
        for problem in problems:
            logger.warning("%s: %s (line skipped)", fp, problem)
            errors.append(IngestError(str(fp), problem))
    logger.info("%s: loaded %d document(s), %d file(s) failed", root, len(docs), len(errors))
    return docs, errors


_LOADERS: dict[str, Callable[[bytes, str, str, Path, list[str]], list[RawDocument]]] = {
    ".txt": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".docx": load_docx,
    ".pdf": load_pdf,
    ".html": load_html,
    ".htm": load_html,
    ".jsonl": load_jsonl,
}
