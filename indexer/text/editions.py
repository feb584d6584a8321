"""Version facts for the documents list: each document's status, year and its other versions.

:mod:`indexer.versions` decides which documents are versions of one regulation; this module turns that into the
fields ``Engine.documents()`` and ``/api/documents`` give every document.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from indexer.text.versions import VersionInfo, document_year, family_key

__all__ = ["version_fields"]

_REGULATION = re.compile(r"(条例|规定|准则|细则|办法|章程|规则|决定|意见|通知|制度|纲要|规划|法)$")
_NONE: dict[str, Any] = {"version_status": None, "version_label": None, "version_year": None, "versions": []}


def version_fields(docs: Mapping[str, Mapping[str, Any]], infos: Mapping[str, VersionInfo]
                   ) -> dict[str, dict[str, Any]]:
    """doc_id -> ``{version_status, version_label, version_year, versions}``; ``docs`` maps doc_id to a dict with
    ``title`` and optionally ``text``/``meta``. ``versions`` lists the other versions (``doc_id``, ``title``,
    ``year``, ``version_status``, ``version_label``), newest first. A regulation with no other version indexed
    still gets its year; other documents get nulls."""
    families: dict[str, list[str]] = {}
    for doc_id, info in infos.items():
        families.setdefault(info.family, []).append(doc_id)
    out: dict[str, dict[str, Any]] = {}
    for doc_id, d in docs.items():
        info = infos.get(doc_id)
        if info is None:
            title = str(d.get("title") or "")
            year = document_year(title, d.get("text", ""), d.get("meta")) if _REGULATION.search(
                family_key(title)) else None
            out[doc_id] = {**_NONE, "version_year": year, "versions": []}
            continue
        others = sorted((o for o in families[info.family] if o != doc_id),
                        key=lambda o: (-(infos[o].year or 0), o))
        out[doc_id] = {"version_status": info.status, "version_label": info.label, "version_year": info.year,
                       "versions": [{"doc_id": o, "title": str((docs.get(o) or {}).get("title") or ""),
                                     "year": infos[o].year, "version_status": infos[o].status,
                                     "version_label": infos[o].label} for o in others]}
    return out
