"""Versions of one regulation: documents whose titles differ only by a year or a 修订/修正/试行 marker.

The newest of a family is 现行 (current), the others 历史版本 (historical); a version whose metadata says 已修订
or 已废止 (front matter, or a person's correction laid over it) is never the current one. The year comes, in this
order, from a ``version``/``effective`` metadata field (jsonl fields or front matter), a year in the title, or the
latest year in the document's preamble (the dated lines between the title and the first chapter or article, e.g.
"（2003年12月23日…发布 2023年12月19日…修订）").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

_YEAR = re.compile(r"(?<![0-9])(19[4-9][0-9]|20[0-9]{2})(?![0-9])")
_CN_DIGITS = str.maketrans("〇○零一二三四五六七八九", "00012345678" + "9")
_CN_YEAR = re.compile(r"([一二三四五六七八九〇○零]{4})年")
# What may differ between two versions' titles: years, edition words, brackets around them, spaces.
_MARKERS = re.compile(r"[（(]?\s*(?:19|20)[0-9]{2}\s*(?:年)?\s*(?:版|修订|修正|修订版)?\s*[）)]?"
                      r"|[（(]?\s*(?:试行|修订|修正|修订版|暂行|草案)\s*[）)]?|[《》\s·\-—_]")
_PREAMBLE_END = re.compile(r"第[一二三四五六七八九十百零〇]+[编章条]|^\s*[一二三四五六七八九十]+、", re.M)
_MIN_FAMILY_CHARS = 4
OUTDATED = frozenset({"已修订", "已废止"})  # statuses that rule a version out of being 现行
# A family must be named like a regulation: scraped articles share headers such as 【典型案例】 or 基本案情 and
# copies share whole titles, and neither are versions of anything.
_REGULATION = re.compile(r"(条例|规定|准则|细则|办法|章程|规则|决定|意见|通知|制度|纲要|规划|法)$")


@dataclass
class VersionInfo:
    """Where a document stands among the versions of its regulation."""

    family: str
    year: int | None
    status: str  # "current" | "historical"
    label: str  # e.g. "2023年版"


def family_key(title: str) -> str:
    """The title with years and edition markers removed: equal keys mean versions of one regulation."""
    return _MARKERS.sub("", title or "")


def _year_from(value: Any) -> int | None:
    years = [int(y) for y in _YEAR.findall(str(value or "").translate(_CN_DIGITS))]
    return max(years) if years else None


def document_year(title: str, text: str = "", meta: Mapping[str, Any] | None = None) -> int | None:
    """The version year of one document (see the module docstring for the order of sources)."""
    meta = meta or {}
    for key in ("version", "effective", "effective_date", "year"):
        year = _year_from(meta.get(key))
        if year:
            return year
    year = _year_from(title)
    if year:
        return year
    head = (text or "")[:600]
    m = _PREAMBLE_END.search(head)
    preamble = head[: m.start()] if m else head[:200]
    preamble = _CN_YEAR.sub(lambda mm: mm.group(1).translate(_CN_DIGITS) + "年", preamble)
    return _year_from(preamble)


def version_families(docs: Mapping[str, Mapping[str, Any]]) -> dict[str, VersionInfo]:
    """Version facts for every document that has at least one other version; ``docs`` maps doc_id to a dict with
    ``title`` and optionally ``text`` and ``meta``."""
    families: dict[str, list[tuple[str, int | None]]] = {}
    titles: dict[str, set[str]] = {}
    declared: set[str] = set()
    for doc_id, d in docs.items():
        title = d.get("title", "")
        key = family_key(title)
        if len(key) < _MIN_FAMILY_CHARS:
            continue
        families.setdefault(key, []).append((doc_id, document_year(title, d.get("text", ""), d.get("meta"))))
        titles.setdefault(key, set()).add(title.strip())
        if any((d.get("meta") or {}).get(f) for f in ("version", "effective", "effective_date")):
            declared.add(key)
    out: dict[str, VersionInfo] = {}
    for key, members in families.items():
        years = {y for _, y in members if y}
        if len(members) < 2 or len(years) < 2:
            continue  # one document, or copies we cannot order: not versions
        if key not in declared and (len(titles[key]) < 2 or not _REGULATION.search(key)):
            continue  # same header on different articles, or plain copies
        # A version declared 已修订 / 已废止 (front matter or a person's correction) is never the current one.
        live = {y for d, y in members if y and str((docs[d].get("meta") or {}).get("status") or "") not in OUTDATED}
        newest = max(live) if live else None
        for doc_id, year in members:
            status = "current" if year == newest else "historical"
            out[doc_id] = VersionInfo(family=key, year=year, status=status,
                                      label=f"{year}年版" if year else "年份不详")
    return out
