"""问答对 (FAQ entries, issue 26) in the web UI: the API and the 问答对 page (``/faq``), over :mod:`indexer.faq`.

=================================================================  ======  ===========================================
route                                                              role    answer
=================================================================  ======  ===========================================
``GET /api/faq?import=``                                           reader  ``{"count", "entries"}``: doc_id, import, n,
                                                                           question, answer, source, state, linked
``GET /api/faq/<entry>``                                           reader  one entry (404 when unknown)
``POST /api/faq`` (multipart ``file``: csv / xlsx / jsonl)          editor  ``{"file", "import", "entries", "linked",
                                                                           "report"}`` (201)
``PATCH /api/faq/<entry>`` ``{"question", "answer", "source"}``     editor  the entry after the edit
``DELETE /api/faq/<entry>``                                        admin   ``{"removed": [ids]}``
``DELETE /api/faq?import=<name>``                                  admin   ``{"removed": [ids]}``: every entry of the
                                                                           import
``GET /faq`` (page 问答对, ``?import=&page=``)                       reader  the entries, 50 a page; import, edit and
                                                                           delete for editors / admins
=================================================================  ======  ===========================================

``<entry>`` is an entry's id ``问答/<import>/<n>`` (or ``<import>/<n>``), URL-encoded. Deleting is an admin's, as
for documents; importing and editing an editor's. Each write is in the audit log with its user.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, render_template, request

from indexer import faq

from .auth import current_user, tokens
from .common import state
from .curation import json_object, write_as_user
from .doclist import page_bounds
from .errors import ApiError

bp = Blueprint("faq", __name__)

FAQ_PAGE = 50  # entries per page of the 问答对 page


def _engine() -> Any:
    return state().engine


@bp.get("/api/faq")
def api_faq_list() -> Response:
    """The FAQ entries (of ``?import=``, or all) with their question, answer, source and state."""
    return write_as_user("reader", lambda name: _listing(request.args.get("import") or None), "bad_faq")


def _listing(name: str | None) -> dict[str, Any]:
    found = faq.list_entries(_engine(), name)
    return {"count": len(found), "entries": found}


@bp.get("/api/faq/<path:entry>")
def api_faq_entry(entry: str) -> Response:
    """One FAQ entry."""
    return write_as_user("reader", lambda name: faq.get_entry(_engine(), entry), "bad_faq", not_found="unknown_faq")


@bp.post("/api/faq")
def api_faq_import() -> Response:
    """Import a 问答对 file (multipart ``file``): each pair becomes a searchable entry, its question a standard
    question; importing a file of the same name again replaces its entries."""
    def run(name: str) -> dict[str, Any]:
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            raise ApiError(400, "请选择问答对文件（csv、xlsx 或 jsonl）。", "upload the question-answer file (csv, xlsx "
                           "or jsonl) as 'file'", code="no_file")
        filename = Path(upload.filename.replace("\\", "/")).name
        with tempfile.TemporaryDirectory(prefix="partyqa-faq-upload-") as tmp:
            path = Path(tmp) / f"{faq.entry_name(filename)}{Path(filename).suffix.lower()}"  # never outside tmp
            upload.save(path)
            return faq.import_faq(_engine(), path, wait=False, who=name, filename=filename)

    return write_as_user("editor", run, "bad_faq", created=True)


@bp.patch("/api/faq/<path:entry>")
def api_faq_edit(entry: str) -> Response:
    """Edit an entry's question, answer and / or source (fields left out stay); re-indexed at once by keyword."""
    def edit(name: str) -> dict[str, Any]:
        body = json_object()
        fields = {k: body.get(k) for k in ("question", "answer", "source")}
        if any(v is not None and not isinstance(v, str) for v in fields.values()):
            raise ApiError(400, "question、answer、source 须为文本。", "question, answer and source must be strings",
                           code="bad_request")
        return faq.edit_entry(_engine(), entry, **fields, who=name)

    return write_as_user("editor", edit, "bad_faq", not_found="unknown_faq")


@bp.delete("/api/faq/<path:entry>")
def api_faq_delete(entry: str) -> Response:
    """Delete one entry (with its standard question)."""
    return write_as_user("admin", lambda name: {"removed": faq.remove_entries(_engine(), [entry], who=name)}, "bad_faq",
                  not_found="unknown_faq")


@bp.delete("/api/faq")
def api_faq_delete_import() -> Response:
    """Delete every entry of an import: ``?import=<name>``."""
    def remove(name: str) -> dict[str, Any]:
        imported = request.args.get("import", "")
        if not imported:
            raise ApiError(400, "需要 import（导入名称）。", "give import (the import's name)", code="bad_request")
        return {"removed": faq.remove_entries(_engine(), name=imported, who=name)}

    return write_as_user("admin", remove, "bad_faq", not_found="unknown_faq")


@bp.get("/faq")
def faq_page() -> str:
    """问答对: the entries (50 a page, by import), with import, edit and delete for editors and admins (a page
    opened without a token shows them once its script's /api/me says the kept token may)."""
    user = current_user()
    imports: dict[str, int] = {}
    entries = faq.list_entries(_engine())
    for e in entries:
        imports[e["import"]] = imports.get(e["import"], 0) + 1
    chosen = request.args.get("import") or ""
    if chosen:
        entries = [e for e in entries if e["import"] == chosen]
    try:
        wanted = int(request.args.get("page", "1"))
    except ValueError:
        wanted = 1
    page, pages, offset = page_bounds(len(entries), wanted, FAQ_PAGE)
    return render_template("faq.html", entries=entries[offset:offset + FAQ_PAGE], total=len(entries), page=page,
                           pages=pages, offset=offset, imports=imports, chosen=chosen,
                           editor=user.can("editor"), admin=user.can("admin"), tokens=tokens().configured())
