"""Corrections of a document's title, category, 发布/施行 dates and status (issue 23): ``PATCH /api/documents/<id>``
(JSON) and the documents page's form (``POST /documents/meta``); both need an admin (webui.auth.require).

Register with ``app.register_blueprint(metadata.bp)``; the page's form is ``templates/_meta_form.html``.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, redirect, request, url_for

from indexer.index.journal import acting_as
from indexer.index.metadata import EDITABLE, MetadataError

from .auth import current_user, require
from .common import state
from .errors import ApiError, split_bilingual
from .params import json_body

bp = Blueprint("metadata", __name__)


def _correct(doc_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Store the correction (audited by the engine under the request's user); the document's metadata after it.
    ApiError 404 / 400 in both languages."""
    try:
        with acting_as(current_user().name):
            return {"doc_id": doc_id, **state().engine.set_metadata(doc_id, **changes)}
    except KeyError:
        raise ApiError(404, f"找不到文档“{doc_id}”。", f"unknown document {doc_id!r}",
                       code="unknown_document") from None
    except MetadataError as exc:
        zh, en = split_bilingual(str(exc))
        raise ApiError(400, zh, en, code="bad_metadata") from None


@bp.patch("/api/documents/<path:doc_id>")
def api_patch_document(doc_id: str) -> Response:
    """Correct fields of one document from a JSON object of title, category, published, effective and status (null
    reverts a field to the file's own value); answers the document's metadata."""
    require("admin")
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "请求体必须是 JSON 对象，例如 {\"status\": \"已废止\"}。",
                       "the body must be a JSON object such as {\"status\": \"已废止\"}", code="bad_json")
    return jsonify(_correct(doc_id, body))


@bp.post("/documents/meta")
def form_patch_document() -> Any:
    """The documents page's form: fields left empty stay as they are; then back to the document's row."""
    token = request.form.get("admin_token", "")
    if token and not request.headers.get("X-Admin-Token"):
        request.environ["HTTP_X_ADMIN_TOKEN"] = token  # the form's token field stands in for the header
    require("admin")
    doc_id = request.form.get("doc_id", "")
    changes: dict[str, Any] = {f: request.form[f] for f in EDITABLE if request.form.get(f, "").strip()}
    changes.update({f: None for f in request.form.getlist("reset") if f in EDITABLE})
    _correct(doc_id, changes)
    return redirect(url_for("pages.documents_page", q=doc_id), code=303)
