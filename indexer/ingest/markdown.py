"""Plain text and Markdown files (YAML front matter: title, version fields, issuer, dates, status, category)."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from indexer.ingest.decode import decode_text
from indexer.types import IngestError, RawDocument

logger = logging.getLogger(__name__)


# =========================================================================== txt / md

_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\n(.*?)\n?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_YAML_LINE_RE = re.compile(r"^(?:[\w\-\u4e00-\u9fff ]+:(?:\s|$)|\s|-\s|#)")


def load_text(data: bytes, name: str, doc_id: str, p: Path, problems: list[str]) -> list[RawDocument]:
    text, enc = decode_text(data, name)
    if not text.strip():
        raise IngestError(name, "文档中没有可索引的文字 / empty document: only whitespace")
    return [RawDocument(doc_id=doc_id, text=text, title=None, source=name, kind="txt", meta={"encoding": enc})]


def load_markdown(data: bytes, name: str, doc_id: str, p: Path, problems: list[str]) -> list[RawDocument]:
    text, enc = decode_text(data, name)
    meta: dict[str, Any] = {"encoding": enc, **front_matter_fields(text)}
    text, title = split_front_matter(text)
    if not text.strip():
        raise IngestError(name, "文档中没有可索引的文字 / empty document: only whitespace or front matter")
    return [RawDocument(doc_id=doc_id, text=text, title=title, source=name, kind="md", meta=meta)]


# Front-matter keys kept in a document's metadata (``title`` is read by split_front_matter): the version fields
# order regulation versions; the others are shown in the document list and in hits (indexer/index/metadata.py).
FRONT_MATTER_KEYS = ("version", "effective", "effective_date", "published", "issuer", "status", "category",
                     "official_title", "superseded_by", "source")


def front_matter_fields(text: str) -> dict[str, str]:
    """The scalar :data:`FRONT_MATTER_KEYS` of a leading YAML front matter block (empty values left out)."""
    m = _FRONT_MATTER_RE.match(text)
    if not m:
        return {}
    lines = m.group(1).split("\n")
    if not all(_YAML_LINE_RE.match(ln) for ln in lines if ln.strip()):
        return {}  # a horizontal rule, not front matter
    out = {}
    for ln in lines:
        km = re.match(r"^([A-Za-z_]+)\s*:\s*(.*?)\s*$", ln)
        if not km or km.group(1).lower() not in FRONT_MATTER_KEYS:
            continue
        value = km.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()  # a YAML comment after a plain value
        if value and value not in ("|", ">", "|-", ">-", "~", "null"):
            out[km.group(1).lower()] = value.strip()
    return out


def split_front_matter(text: str) -> tuple[str, str | None]:
    """Remove a leading YAML front matter block; return (body, its `title:` value or None)."""
    m = _FRONT_MATTER_RE.match(text)
    if not m:
        return text, None
    lines = m.group(1).split("\n")
    if not any(ln.strip() for ln in lines) or not all(_YAML_LINE_RE.match(ln) for ln in lines if ln.strip()):
        return text, None  # a horizontal rule, not front matter
    title = None
    for i, ln in enumerate(lines):
        km = re.match(r"^title\s*:\s*(.*)$", ln, re.I)
        if not km:
            continue
        value = km.group(1).strip()
        if value in ("|", ">", "|-", ">-", ""):
            cont = []
            for nxt in lines[i + 1 :]:
                if nxt[:1] not in (" ", "\t"):
                    break
                cont.append(nxt.strip())
            value = " ".join(c for c in cont if c)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        title = value.strip() or None
        break
    return text[m.end() :], title
