"""Document metadata: the fields a file declares (front matter), a person's corrections kept in the manifest, and
what the document list and every hit show of them.

A correction is stored in the manifest under ``metadata_edits`` (doc id -> {field: value}), apart from the
document's own record, so re-reading the file (a changed file, a re-import, a re-tokenization) keeps it: the
file's values are read afresh and the correction is laid over them. Removing the document drops its correction.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import re
from typing import Any, Iterable, Mapping

from indexer.index.curation import DISABLED_KEY, STANDARD_KEY
from indexer.index.generations import ManifestCommitter, Snapshot, now
from indexer.text.cite import citation
from indexer.types import PartyQAError, Passage, QueryError

EDITS_KEY = "metadata_edits"  # manifest key: doc id -> {field: value} a person set
EDITABLE = ("title", "category", "published", "effective", "status")
# Front-matter fields the document list, the document view and /api/documents show (besides the title).
SHOWN = ("official_title", "issuer", "published", "effective", "version", "status", "category", "superseded_by")
STATUSES = ("现行", "已修订", "已废止")
_STATUS_ALIASES = {"current": "现行", "in force": "现行", "有效": "现行", "revised": "已修订", "amended": "已修订",
                   "superseded": "已修订", "修订": "已修订", "repealed": "已废止", "abolished": "已废止",
                   "废止": "已废止", "失效": "已废止", "已失效": "已废止"}
_MAX_CHARS = {"title": 200, "category": 40}
_DATE_RE = re.compile(r"^\s*(\d{4})(?:\s*[-/.年]\s*(\d{1,2})(?:\s*[-/.月]\s*(\d{1,2})\s*日?)?\s*月?)?\s*年?\s*$")


class MetadataError(PartyQAError):
    """A metadata correction that cannot be stored (unknown field, bad status or date, empty title)."""


def check_changes(changes: Mapping[str, Any]) -> dict[str, str | None]:
    """Validate and normalise a correction: ``{field: value}``; None (or "" for title/status) reverts a field to
    the file's own value. Raises MetadataError with a bilingual message."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise MetadataError(f"不能修改的字段：{'、'.join(unknown)}（可改：{'、'.join(EDITABLE)}） / fields that cannot "
                            f"be edited: {', '.join(unknown)} (editable: {', '.join(EDITABLE)})")
    if not changes:
        raise MetadataError(f"没有要修改的字段（可改：{'、'.join(EDITABLE)}） / nothing to change (editable: "
                            f"{', '.join(EDITABLE)})")
    out: dict[str, str | None] = {}
    for field, raw in changes.items():
        if raw is None:
            out[field] = None
            continue
        if not isinstance(raw, str):
            raise MetadataError(f"{field} 必须是文字 / {field} must be a string, got {type(raw).__name__}")
        value = " ".join(raw.split())
        if field in ("title", "status") and not value:
            out[field] = None  # an empty title or status means: back to the file's own
        elif field == "status":
            out[field] = _status(value)
        elif field in ("published", "effective"):
            out[field] = _date(field, value) if value else ""
        else:
            if len(value) > _MAX_CHARS[field]:
                raise MetadataError(f"{field} 过长（最多 {_MAX_CHARS[field]} 字） / {field} is too long (at most "
                                    f"{_MAX_CHARS[field]} characters)")
            out[field] = value
    return out


def _status(value: str) -> str:
    if value in STATUSES:
        return value
    mapped = _STATUS_ALIASES.get(value.lower())
    if mapped is None:
        raise MetadataError(f"状态只能是 {' / '.join(STATUSES)}，收到 {value!r} / status must be one of "
                            f"{', '.join(STATUSES)} (current, revised, repealed), got {value!r}")
    return mapped


def _date(field: str, value: str) -> str:
    """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` (also 2018年10月1日, 2018/10/01), checked as a calendar date."""
    m = _DATE_RE.match(value)
    if m:
        year, month, day = (int(g) if g else None for g in m.groups())
        try:
            _dt.date(year, month or 1, day or 1)
            if 1900 <= year <= 2100:
                return f"{year:04d}" + (f"-{month:02d}" if month else "") + (f"-{day:02d}" if day else "")
        except ValueError:
            pass
    name = {"published": "发布日期", "effective": "施行日期"}[field]
    raise MetadataError(f"{name}格式不对：{value!r}（写作 2018-10-01、2018-10 或 2018） / {field} must be a date such as "
                        f"2018-10-01, 2018-10 or 2018, got {value!r}")


def apply_changes(edits: Mapping[str, Mapping[str, Any]], doc_id: str, changes: Mapping[str, str | None],
                  stamp: str) -> dict[str, dict[str, Any]]:
    """A new ``metadata_edits`` mapping with ``changes`` (from :func:`check_changes`) laid over ``doc_id``'s."""
    out = {d: dict(e) for d, e in edits.items()}
    mine = out.get(doc_id, {})
    for field, value in changes.items():
        if value is None:
            mine.pop(field, None)
        else:
            mine[field] = value
    if any(f in mine for f in EDITABLE):
        mine["edited_at"] = stamp
        out[doc_id] = mine
    else:
        out.pop(doc_id, None)
    return out


def store_correction(writer: ManifestCommitter, doc_id: str, changes: Mapping[str, Any]) -> None:
    """Check a correction and commit it as the next generation through the one commit path (a kill at any point
    leaves the previous state; the kill tests pause at ``metadata``). KeyError for an unknown document,
    MetadataError for a field or value that cannot be stored."""
    checked = check_changes(changes)

    def change(gen: Snapshot, manifest: dict[str, Any]) -> bool:
        if doc_id not in manifest["documents"]:
            raise KeyError(doc_id)
        manifest[EDITS_KEY] = apply_changes(manifest.get(EDITS_KEY) or {}, doc_id, checked, now())
        return True

    writer.commit_manifest(change, point="metadata")


def corrected_titles(manifest: Mapping[str, Any]) -> dict[str, str]:
    """doc id -> the title a person set, for the documents of a manifest that have one."""
    edits = manifest.get(EDITS_KEY) or {}
    return {d: e["title"] for d, e in edits.items() if e.get("title") and d in manifest["documents"]}


def keyword_passages(passages: Iterable[Passage], manifest: Mapping[str, Any]) -> list[Passage]:
    """Passages as the keyword half indexes them: under their document's corrected title where a person set one
    (the passage store keeps the file's title, which the embeddings and the content hashes were made with)."""
    titles = corrected_titles(manifest)
    return [dataclasses.replace(p, title=titles[p.doc_id]) if titles.get(p.doc_id, p.title) != p.title else p
            for p in passages]


def retitled(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """Documents of ``after`` whose corrected title differs from ``before``'s (set, changed or reverted): their
    keyword entries must be written again."""
    old, new = corrected_titles(before), corrected_titles(after)
    return {d for d in set(old) | set(new) if old.get(d) != new.get(d) and d in after["documents"]}


# What people curated in a manifest (corrections, disabled passages, standard questions, documents removed from a
# bulk file): none of it can be read again from the corpus, so a rebuild carries it into the new index.
CURATED_KEYS = (EDITS_KEY, DISABLED_KEY, STANDARD_KEY, "excluded")


def curated_state(manifest: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :data:`CURATED_KEYS` a manifest holds (empty ones left out)."""
    return {key: manifest[key] for key in CURATED_KEYS if manifest and manifest.get(key)}


def drop_corrections(manifest: dict[str, Any], doc_ids: Any) -> None:
    """Forget the corrections of removed documents (in a manifest being written)."""
    edits = manifest.get(EDITS_KEY) or {}
    if any(d in edits for d in doc_ids):
        manifest[EDITS_KEY] = {d: e for d, e in edits.items() if d not in set(doc_ids)}


def forget_absent_corrections(_gen: Any, manifest: dict[str, Any]) -> bool:
    """Drop the corrections of documents a manifest no longer holds (a rebuild from a corpus without them), as a
    removal drops them; True when there were any (a ``commit_manifest`` change)."""
    absent = [d for d in manifest.get(EDITS_KEY) or {} if d not in manifest["documents"]]
    drop_corrections(manifest, absent)
    return bool(absent)


def document_fields(record: Mapping[str, Any], edit: Mapping[str, Any] | None) -> dict[str, Any]:
    """One document's metadata as shown: ``title`` plus :data:`SHOWN` (None where unknown) and ``edited`` (the
    fields a person corrected), the correction laid over the file's values."""
    meta = record.get("meta") or {}
    out: dict[str, Any] = {"title": record.get("title") or ""}
    for field in SHOWN:
        value = meta.get(field)
        out[field] = str(value).strip() or None if value not in (None, "") else None
    if out["status"] is not None and out["status"] not in STATUSES:
        out["status"] = _STATUS_ALIASES.get(out["status"].lower(), out["status"])
    edit = edit or {}
    edited = [f for f in EDITABLE if f in edit]
    for field in edited:
        out[field] = edit[field] if edit[field] != "" else None
    out["edited"] = edited
    return out


def all_fields(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """:func:`document_fields` of every document of a manifest."""
    edits = manifest.get(EDITS_KEY) or {}
    return {d: document_fields(rec, edits.get(d)) for d, rec in manifest["documents"].items()}


def version_input(record: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The ``meta`` that version ordering reads for a document: the file's fields with the corrections over them."""
    meta = dict(record.get("meta") or {})
    for field in ("effective", "status"):
        if field in fields.get("edited", ()):
            meta[field] = fields[field] or ""
    return meta


def shown_status(fields: Mapping[str, Any], version_status: str | None) -> str | None:
    """The status to show: the declared or corrected one, else what the version ordering says (现行 / 已修订)."""
    if fields.get("status"):
        return fields["status"]
    return {"current": "现行", "historical": "已修订"}.get(version_status or "")


def listing_fields(fields: Mapping[str, Any], version_status: str | None) -> dict[str, Any]:
    """The metadata keys a document record gains (:data:`SHOWN`, ``status`` as :func:`shown_status` and ``edited``);
    the title is the record's own ``title`` key."""
    out = {field: fields.get(field) for field in SHOWN}
    out["status"] = shown_status(fields, version_status)
    out["edited"] = list(fields.get("edited") or [])
    return out


def annotate_hits(hits: list[dict[str, Any]], fields: Mapping[str, Mapping[str, Any]]) -> None:
    """Add ``status`` and ``category`` to every hit and its ``also_in`` entries, and a corrected title (with its
    citation) where a person changed one."""
    for hit in hits:
        _annotate(hit, fields.get(hit.get("doc_id", "")), cite=True)
        for other in hit.get("also_in") or ():
            _annotate(other, fields.get(other.get("doc_id", "")), cite=False)


def _annotate(hit: dict[str, Any], f: Mapping[str, Any] | None, cite: bool) -> None:
    f = f or {}
    hit["status"] = shown_status(f, hit.get("version_status"))
    hit["category"] = f.get("category")
    if "title" in f.get("edited", ()) and f["title"] != hit.get("title"):
        hit["title"] = f["title"]
        if cite and "citation" in hit:
            hit["citation"] = citation({"title": f["title"], "section": hit.get("section", "")})


def category_counts(fields: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Category -> number of documents (documents without one are not counted)."""
    out: dict[str, int] = {}
    for f in fields.values():
        if f.get("category"):
            out[f["category"]] = out.get(f["category"], 0) + 1
    return dict(sorted(out.items()))


def category_names(category: Any) -> list[str]:
    """A category filter as a list of names (empty: no filter); QueryError unless text or a list of texts."""
    if category is None:
        return []
    values = [category] if isinstance(category, str) else category
    if not isinstance(values, (list, tuple, set, frozenset)) or not all(isinstance(c, str) for c in values):
        raise QueryError("类别筛选 category 必须是文字或文字列表 / category must be a string or a list of strings")
    return [c.strip() for c in values if c.strip()]


def docs_in_categories(fields: Mapping[str, Mapping[str, Any]], wanted: list[str]) -> set[str]:
    """The doc ids in any of the ``wanted`` categories; a category no document has is a QueryError naming those
    that exist."""
    known = category_counts(fields)
    unknown = [c for c in wanted if c not in known]
    if unknown:
        listed = "、".join(known) or "（无）"
        raise QueryError(f"没有类别为“{'、'.join(unknown)}”的文档（现有类别：{listed}） / no document has the "
                            f"category {', '.join(unknown)} (categories: {', '.join(known) or 'none'})")
    return {d for d, f in fields.items() if f.get("category") in wanted}
