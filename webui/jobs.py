"""Index jobs as the web shows them: per-file outcomes, reasons in "中文 / English", no server paths."""
from __future__ import annotations

import re
from typing import Any

from indexer.jobs import ACTIVE_STATES

from .uploads import uploaded_name

DOC_STATE_LABELS = {"keyword": "可检索", "embedding": "语义索引中", "done": "完成"}


def _display_name(name: str) -> str:
    """A file name without server directories: absolute paths (``partyqa add /x/y.txt``) become their base name."""
    text = name.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:/", text) or "/." in text:
        return uploaded_name(text)
    return text


def _file_status(entry: dict[str, Any], report: dict[str, Any], kind: str) -> str:
    """added / updated / unchanged / removed / error once known, else pending."""
    state = entry.get("state")
    if state == "failed":
        return "error"
    if state == "unchanged":
        return "unchanged"
    if state == "removed":  # its documents were removed while their vectors were being made
        return "removed"
    ids = set(entry.get("doc_ids") or [])
    if kind == "remove" and state in ("keyword-ready", "embedding", "done"):
        return "removed"
    if state not in ("keyword-ready", "embedding", "done"):
        return "pending"
    if ids & set(report.get("updated") or []):
        return "updated"
    if ids & set(report.get("added") or []):
        return "added"
    if ids and ids <= set(report.get("unchanged") or []):
        return "unchanged"
    return "added" if ids else "error"


def public_job(job: dict[str, Any]) -> dict[str, Any]:
    """``Job.to_dict()`` for the API: each file gains ``status`` (added/updated/unchanged/removed/error/pending);
    reasons read "中文 / English"; file names and report error paths carry no server directories."""
    out = dict(job)
    report = dict(out.get("report") or {})
    if report.get("errors"):
        report["errors"] = [{**e, "path": uploaded_name(str(e.get("path", ""))),
                             "reason": str(e.get("reason", ""))} for e in report["errors"]]
    out["report"] = report or None
    files = []
    for entry in out.get("files") or []:
        f = dict(entry)
        f["name"] = _display_name(str(f.get("name") or ""))
        f["status"] = _file_status(f, report, str(out.get("kind") or ""))
        if f["status"] == "error" and not f.get("reason"):
            f["reason"] = "文件中没有可索引的文本 / no indexable text in the file"
        files.append(f)
    out["files"] = files
    out["active"] = out.get("state") in ACTIVE_STATES
    return out


def doc_state(doc: dict[str, Any]) -> tuple[str, str]:
    """(state, label) of a document's index state: 可检索 · 语义索引中 62% · 完成 (``done`` when not reported)."""
    state = str(doc.get("state") or "done")
    label = DOC_STATE_LABELS.get(state, DOC_STATE_LABELS["done"])
    if state == "embedding":
        try:
            passages, embedded = int(doc.get("passages") or 0), int(doc.get("embedded") or 0)
        except (TypeError, ValueError):
            passages, embedded = 0, 0
        if passages and embedded >= passages:  # all its vectors are in: done, whatever the rest of the job does
            return "done", DOC_STATE_LABELS["done"]
        if not embedded:  # the encoder has not reached this document yet: searchable by keyword
            return state, DOC_STATE_LABELS["keyword"] + " · 等待语义索引"
        if passages:
            label += f" {min(99, embedded * 100 // passages)}%"
    return state, label
