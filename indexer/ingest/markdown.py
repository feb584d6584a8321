"""Plain text and Markdown files (YAML front matter: title, version fields)."""
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
        raise IngestError(name, "empty document: only whitespace")
    return [RawDocument(doc_id=doc_id, text=text, title=None, source=name, kind="txt", meta={"encoding": enc})]


def load_markdown(data: bytes, name: str, doc_id: str, p: Path, problems: list[str]) -> list[RawDocument]:
    text, enc = decode_text(data, name)
    meta: dict[str, Any] = {"encoding": enc, **front_matter_versions(text)}
    text, title = split_front_matter(text)
    if not text.strip():
        raise IngestError(name, "empty document: only whitespace or front matter")
    return [RawDocument(doc_id=doc_id, text=text, title=title, source=name, kind="md", meta=meta)]


def front_matter_versions(text: str) -> dict[str, str]:
    """The ``version`` / ``effective`` fields of a leading YAML front matter block (they order regulation versions)."""
    m = _FRONT_MATTER_RE.match(text)
    if not m:
        return {}
    out = {}
    for ln in m.group(1).split("\n"):
        km = re.match(r"^(version|effective|effective_date)\s*:\s*['\"]?([^'\"#]*?)['\"]?\s*$", ln, re.I)
        if km and km.group(2):
            out[km.group(1).lower()] = km.group(2)
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
