"""Word .docx files: paragraphs and tables in order, heading styles as Markdown headings."""
from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path
from typing import Any

from indexer.ingest.decode import short_error
from indexer.types import IngestError, RawDocument

logger = logging.getLogger(__name__)


# =========================================================================== docx

_HEADING_STYLE_RE = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.I)
_TITLE_STYLES = {"title", "标题"}


def load_docx(data: bytes, name: str, doc_id: str, p: Path, problems: list[str]) -> list[RawDocument]:
    import io

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    if not data.startswith(b"PK"):
        hint = " (a legacy .doc renamed to .docx? save it as .docx in Word/WPS)" if data.startswith(b"\xd0\xcf\x11\xe0") else ""
        raise IngestError(name, f"文件已损坏，或不是 Word .docx 文件 / corrupt or not a Word .docx file: not a zip archive{hint}")
    try:
        document = docx.Document(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise IngestError(name, f"文件已损坏，或不是 Word .docx 文件 / corrupt or not a Word .docx file: broken zip archive ({short_error(e)})") from e
    except PackageNotFoundError as e:
        raise IngestError(name, f"文件已损坏，或不是 Word .docx 文件 / corrupt or not a Word .docx file: {short_error(e)}") from e
    except KeyError as e:
        raise IngestError(name, "文件已损坏，或不是 Word .docx 文件 / corrupt or not a Word .docx file: the main part word/document.xml is missing") from e
    except Exception as e:  # python-docx raises ValueError/lxml errors/... for broken packages
        raise IngestError(name, f"文件已损坏，或不是 Word .docx 文件 / corrupt or not a Word .docx file: {short_error(e)}") from e
    try:
        lines, title = _docx_lines(document)
    except Exception as e:
        raise IngestError(name, f"文件已损坏，或不是 Word .docx 文件 / corrupt or not a Word .docx file: {short_error(e)}") from e
    if not title:
        try:
            title = (document.core_properties.title or "").strip() or None
        except Exception:  # a broken core.xml does not matter for the text
            title = None
    text = "\n".join(lines)
    if not text.strip():
        raise IngestError(name, "Word 文件中没有文字 / empty document: the Word file contains no text")
    return [RawDocument(doc_id=doc_id, text=text, title=title, source=name, kind="docx")]


def _docx_lines(document: Any) -> tuple[list[str], str | None]:
    """Walk the body in order: paragraphs (headings as "#" lines) and table rows ("a | b | c")."""
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    lines: list[str] = []
    title: str | None = None
    body = document.element.body

    def walk(container: Any) -> None:
        nonlocal title
        for child in container.iterchildren():
            if child.tag == qn("w:p"):
                para = Paragraph(child, document)
                text = para.text.strip()
                if not text:
                    continue
                style = _style_name(para)
                level = _docx_heading_level(para, style)
                if style.lower() in _TITLE_STYLES and title is None:
                    title = " ".join(text.split())
                    lines.append(text)
                elif level:
                    lines.append("#" * level + " " + " ".join(text.split()))
                else:
                    lines.append(text)
            elif child.tag == qn("w:tbl"):
                for row in Table(child, document).rows:
                    cells: list[str] = []
                    seen: list[Any] = []
                    for cell in row.cells:
                        if any(cell._tc is tc for tc in seen):  # a merged cell python-docx repeats per grid column
                            continue
                        seen.append(cell._tc)
                        cells.append(" ".join(cell.text.split()))
                    if any(cells):
                        lines.append(" | ".join(cells))
            elif child.tag == qn("w:sdt"):  # content control wrapping body paragraphs
                content = child.find(qn("w:sdtContent"))
                if content is not None:
                    walk(content)

    walk(body)
    return lines, title


def _style_name(para: Any) -> str:
    try:
        return (para.style.name or "") if para.style is not None else ""
    except Exception:
        return ""


def _docx_heading_level(para: Any, style: str) -> int:
    """Heading level 1-6 from the style name ("Heading 2", "标题 2") or an outline level; 0 for body text."""
    m = _HEADING_STYLE_RE.match(style.strip())
    if m:
        return min(int(m.group(1)), 6)
    from docx.oxml.ns import qn

    def outline(el: Any) -> int:
        ppr = el.find(qn("w:pPr")) if el is not None else None
        lvl = ppr.find(qn("w:outlineLvl")) if ppr is not None else None
        if lvl is None:
            return -1
        try:
            v = int(lvl.get(qn("w:val")))
        except (TypeError, ValueError):
            return -1
        return v + 1 if 0 <= v <= 8 else 0

    lvl = outline(para._p)
    if lvl < 0:
        try:
            st, depth = para.style, 0
            while st is not None and depth < 10 and lvl < 0:
                lvl = outline(st.element)
                st, depth = st.base_style, depth + 1
        except Exception:
            lvl = -1
    return min(lvl, 6) if lvl > 0 else 0
