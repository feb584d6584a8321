"""PDF files: page text via pypdf, encrypted and corrupt files refused with a reason."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from indexer.ingest.decode import NEWLINES_RE, short_error
from indexer.types import IngestError, RawDocument

logger = logging.getLogger(__name__)


# =========================================================================== pdf

_pypdf_quieted = False


class _ToDebug(logging.Handler):
    """Re-log pypdf's robustness warnings at DEBUG under this module's logger."""

    def emit(self, record: logging.LogRecord) -> None:
        """Forward one pypdf record at DEBUG."""
        try:
            logger.debug("pypdf: %s", record.getMessage())
        except Exception:  # never let logging break ingestion
            pass


def _quiet_pypdf() -> None:
    """pypdf warns loudly about harmless quirks of real-world PDFs; send that to DEBUG (once per process)."""
    global _pypdf_quieted
    if not _pypdf_quieted:
        plog = logging.getLogger("pypdf")
        plog.addHandler(_ToDebug())
        plog.propagate = False
        _pypdf_quieted = True


def load_pdf(data: bytes, name: str, doc_id: str, p: Path, problems: list[str]) -> list[RawDocument]:
    import io

    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError

    _quiet_pypdf()
    if b"%PDF" not in data[:1024]:
        raise IngestError(name, "文件已损坏，或不是 PDF 文件 / corrupt or not a PDF file: no %PDF header")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
    except Exception as e:
        raise IngestError(name, f"PDF 文件已损坏 / corrupt PDF: {short_error(e)}") from e
    try:
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except DependencyError as e:
                raise IngestError(name, f"PDF 已加密，无法打开 / PDF is encrypted and cannot be opened: {short_error(e)}") from e
            if not ok:
                raise IngestError(
                    name, "PDF 设有密码，请去掉密码后再上传 / PDF is password-protected; remove the password (e.g. print it to a new PDF) and add it again"
                )
        pages = list(reader.pages)
    except IngestError:
        raise
    except FileNotDecryptedError as e:
        raise IngestError(name, "PDF 设有密码，请去掉密码后再上传 / PDF is password-protected; remove the password and add it again") from e
    except Exception as e:
        raise IngestError(name, f"PDF 文件已损坏 / corrupt PDF: {short_error(e)}") from e
    texts: list[str] = []
    for i, page in enumerate(pages, 1):
        try:
            texts.append(page.extract_text() or "")
        except Exception as e:
            raise IngestError(name, f"无法提取第 {i} 页的文字 / cannot extract text from page {i}: {short_error(e)}") from e
    text = NEWLINES_RE.sub("\n", "\n".join(t.strip("\n") for t in texts)).replace("\x00", "")
    if len(re.sub(r"\s", "", text)) == 0:
        raise IngestError(name, "PDF 没有文字层（可能是扫描件），请先做文字识别（OCR） / PDF has no text layer (scanned image?); run OCR first and add the text")
    return [RawDocument(doc_id=doc_id, text=text, title=_pdf_title(reader), source=name, kind="pdf", meta={"pages": len(pages)})]


def _pdf_title(reader: Any) -> str | None:
    """The PDF metadata title, minus "Microsoft Word - " and file extensions; None if absent or a placeholder."""
    try:
        meta = reader.metadata
        title = str(meta.title).strip() if meta is not None and meta.title else ""
    except Exception:
        return None
    title = re.sub(r"^Microsoft (?:Word|PowerPoint) - ", "", title)
    title = re.sub(r"\.(?:docx?|wps|pdf|txt)$", "", title, flags=re.I).strip()
    if not title or title.lower() in {"untitled", "无标题", "title"}:
        return None
    return title
