"""Citations: name the regulation or sub-document a passage belongs to, then its chapter and article.

A compiled handbook (one file holding 支部工作条例, 党费规定, 发展党员工作细则 …) puts the real regulation in the
first component of each section path, while the passage title is the handbook's. A citation names that
regulation: ``《中国共产党支部工作条例（试行）》第五章 组织生活 第十九条``.
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ["citation", "cited_document", "is_document_name"]

SECTION_SEP = re.compile(r"\s*[>›»]\s*")

# Names of party rules end with one of these (before an optional （试行）-style note).
_RULE_SUFFIXES = ("条例", "规定", "细则", "办法", "准则", "规则", "章程", "守则", "规程", "法规")
# Genre words that also end form labels (审批意见, 特此通知): a name only with 关于… or a 中国共产党/中共 lead.
_GENRE_SUFFIXES = ("意见", "通知", "决定", "决议", "报告", "纲要", "规划", "方案", "公报", "手册")
_NOTE = r"(?:[（(][^（）()]{1,16}[)）])*"  # （试行） （2023年修订） (2018年版)
_NAME = r"[^\s，,。；;：:！？!?]{2,60}?"
_RULE_RE = re.compile(rf"^{_NAME}(?:{'|'.join(_RULE_SUFFIXES)}){_NOTE}$")
_GENRE_RE = re.compile(rf"^(?:关于|中国共产党|中共){_NAME}(?:{'|'.join(_GENRE_SUFFIXES)}){_NOTE}$")
# A heading that starts with numbering is a part of a document, never a document's name.
_NUMBERED_RE = re.compile(r"^(?:第[一二三四五六七八九十百千零〇两\d]+[编章节条部分款项阶段]|[一二三四五六七八九十百]+[、.．]"
                          r"|[（(][一二三四五六七八九十\d]+[)）]|\d+(?:\.\d+)*[、.．\s])")
_QUOTED_RE = re.compile(r"^《([^《》]{1,80})》" + _NOTE + "$")


def _field(p: Any, name: str) -> str:
    value = p.get(name) if isinstance(p, dict) else getattr(p, name, "")
    return str(value or "").strip()


def _strip_quotes(name: str) -> str:
    name = name.strip()
    m = re.fullmatch(r"《([^《》]+)》(.*)", name)
    return m.group(1) + m.group(2) if m else name


def is_document_name(heading: str) -> bool:
    """True when a section heading names a document (``中国共产党支部工作条例（试行）``, ``《…》``), not a part of one."""
    h = heading.strip()
    if not h or len(h) > 80 or _NUMBERED_RE.match(h) or h.count("《") != h.count("》"):
        return False
    return bool(_QUOTED_RE.match(h) or _RULE_RE.match(h) or _GENRE_RE.match(h))


def cited_document(p: Any) -> tuple[str, list[str]]:
    """(document name without 《》, remaining section parts) a passage-like object (title, section) is cited by."""
    title = _strip_quotes(_field(p, "title"))
    parts = [s for s in SECTION_SEP.split(_field(p, "section")) if s.strip()]
    if parts and (_strip_quotes(parts[0]) == title or is_document_name(parts[0])):
        return _strip_quotes(parts[0]), parts[1:]
    return title, parts


def citation(p: Any) -> str:
    """``《文件名》章 节 条`` for a passage (a Passage, or a dict with ``title`` and ``section``)."""
    name, parts = cited_document(p)
    name = name.replace("《", "〈").replace("》", "〉")  # a title quoted inside a title takes 〈〉
    head = f"《{name}》" if name else ""
    return head + " ".join(parts)
