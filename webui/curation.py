"""Curation API (issue 26): a document's passages, disabling and enabling passages, standard questions (标准问题),
feedback (有用 / 没用) and the audit log, with named users and roles (:mod:`webui.auth`).

=========================================================  ========  =============================================
route                                                      role      answer
=========================================================  ========  =============================================
``GET /api/documents/<doc_id>/passages``                   reader    ``{"doc_id", "count", "disabled", "passages"}``
``POST /api/passages/<pid>/disable`` / ``.../enable``      editor    ``{"changed", "unchanged", "state"}``
``POST /api/passages/state`` ``{"pids": [...], "enabled"}`` editor    the same, for several passages
``GET /api/passages/disabled``                             reader    ``{"count", "passages"}`` (by content key)
``GET /api/standard_questions``                            reader    ``{"count", "questions"}``
``POST /api/standard_questions`` ``{"question", "pid"}``    editor    the stored link (201)
``DELETE /api/standard_questions`` ``{"question"}``         editor    ``{"removed": true}`` (404 when not linked)
``POST /api/feedback`` ``{"question", "pid", "useful", "mode"}``  reader*  the stored record (201)
``GET /api/feedback``                                      editor    ``{"negative", "useful", "counts"}``
``GET /api/feedback/export``                               editor    the useful pairs as a `partyqa eval` jsonl file
``GET /api/audit?limit=``                                  admin     ``{"count", "entries"}``, newest first
``GET /api/faq``                                           reader    ``{"count", "entries": [{"doc_id", "question"}]}``
``POST /api/faq`` (multipart ``file``: csv / xlsx / jsonl)  editor    ``{"file", "entries", "linked", "report"}`` (201)
``GET /api/me``                                            --        ``{"name", "role", "tokens"}``
=========================================================  ========  =============================================

A pid is ``doc_id#ordinal``: put it in a URL encoded (``#`` as ``%23``). *Feedback needs no token: an anonymous
reader's is recorded as "anonymous". Without any token configured every route is open and acts as "local".
"""
from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file

from indexer.index.curation import CurationError
from indexer.index.journal import FeedbackError, acting_as, eval_pairs

from .auth import current_user, require, tokens
from .common import state
from .errors import ApiError, split_bilingual
from .params import json_body

bp = Blueprint("curation", __name__)


def _curator() -> Any:
    return state().engine.curator


def _bad(exc: Exception, code: str) -> ApiError:
    zh, en = split_bilingual(str(exc))
    return ApiError(400, zh, en, code=code)


def _object() -> dict[str, Any]:
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "请求体必须是 JSON 对象。", "the body must be a JSON object", code="bad_json")
    return body


@bp.get("/api/me")
def api_me() -> Response:
    """Who the request acts as and with which role (a page can show or hide editing controls)."""
    user = current_user()
    return jsonify({"name": user.name, "role": user.role, "tokens": tokens().configured()})


@bp.get("/api/documents/<path:doc_id>/passages")
def api_passages(doc_id: str) -> Response:
    """A document's passages in order, each with section, citation, state and linked standard questions."""
    require("reader")
    try:
        passages = _curator().passages(doc_id)
    except KeyError:
        raise ApiError(404, f"找不到文档“{doc_id}”。", f"unknown document {doc_id!r}", code="unknown_document") from None
    return jsonify({"doc_id": doc_id, "count": len(passages),
                    "disabled": sum(1 for p in passages if p["state"] == "disabled"), "passages": passages})


def _set_state(pids: list[str], enabled: bool) -> Response:
    name = require("editor")
    try:
        with acting_as(name):
            out = _curator().set_passage_enabled(pids, enabled, who=name)
    except CurationError as exc:
        status = 404 if "unknown passage" in str(exc) else 400
        zh, en = split_bilingual(str(exc))
        raise ApiError(status, zh, en, code="unknown_passage" if status == 404 else "bad_passage") from None
    return jsonify({**out, "state": "enabled" if enabled else "disabled"})


@bp.post("/api/passages/<path:pid>/disable")
def api_disable(pid: str) -> Response:
    """Disable one passage: it is never returned nor an answer sentence (kept by content: survives re-indexing)."""
    return _set_state([pid], False)


@bp.post("/api/passages/<path:pid>/enable")
def api_enable(pid: str) -> Response:
    """Enable a disabled passage again."""
    return _set_state([pid], True)


@bp.post("/api/passages/state")
def api_passages_state() -> Response:
    """Disable or enable several passages at once: ``{"pids": [...], "enabled": false}``."""
    body = _object()
    pids, enabled = body.get("pids"), body.get("enabled")
    if not isinstance(pids, list) or not pids or not all(isinstance(p, str) for p in pids) \
            or not isinstance(enabled, bool):
        raise ApiError(400, "需要 pids（段落编号列表）和 enabled（true 或 false）。",
                       "give pids (a list of passage ids) and enabled (true or false)", code="bad_request")
    return _set_state(pids, enabled)


@bp.get("/api/passages/disabled")
def api_disabled() -> Response:
    """Every disabled passage, with the pid it has now (null when its document or text is gone)."""
    require("reader")
    found = _curator().disabled()
    return jsonify({"count": len(found), "passages": found})


@bp.get("/api/standard_questions")
def api_standard_list() -> Response:
    """The standard questions and the passages they are linked to."""
    require("reader")
    found = _curator().standard_questions()
    return jsonify({"count": len(found), "questions": found})


@bp.post("/api/standard_questions")
def api_standard_link() -> Response:
    """Link a question to a passage: it (and close paraphrases) then return that passage first as 标准答案."""
    name = require("editor")
    body = _object()
    question, pid = body.get("question"), body.get("pid")
    if not isinstance(pid, str) or not pid:
        raise ApiError(400, "需要 pid（段落编号）。", "give pid (the passage id)", code="bad_request")
    try:
        with acting_as(name):
            rec = _curator().link_question(question, pid, who=name)
    except CurationError as exc:
        raise _bad(exc, "bad_link") from None
    resp = jsonify(rec)
    resp.status_code = 201
    return resp


@bp.delete("/api/standard_questions")
def api_standard_unlink() -> Response:
    """Remove a standard question: ``{"question": ...}`` (or ``?question=``)."""
    name = require("editor")
    body = request.get_json(silent=True)
    question = body.get("question") if isinstance(body, dict) else request.args.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ApiError(400, "需要 question。", "give the question", code="bad_request")
    with acting_as(name):
        removed = _curator().unlink_question(question, who=name)
    if not removed:
        raise ApiError(404, "没有这个标准问题。", "no such standard question", code="unknown_question")
    return jsonify({"removed": True, "question": question})


@bp.post("/api/feedback")
def api_feedback() -> Response:
    """Store 有用 / 没用 on a result: ``{"question", "pid", "useful": bool, "mode"}``, in the index folder only."""
    name = require("reader")
    body = _object()
    try:
        rec = _curator().add_feedback(body.get("question"), body.get("pid"), body.get("useful"), body.get("mode"),
                                      who=name)
    except FeedbackError as exc:
        raise _bad(exc, "bad_feedback") from None
    resp = jsonify(rec)
    resp.status_code = 201
    return resp


@bp.get("/api/feedback")
def api_feedback_summary() -> Response:
    """The questions with negative feedback (and which passages were 没用), and the passages marked 有用."""
    require("editor")
    return jsonify(_curator().feedback())


@bp.get("/api/feedback/export")
def api_feedback_export() -> Response:
    """The useful (question, passage) pairs as a jsonl file `partyqa eval` reads (question, gold_doc, gold_text)."""
    require("editor")
    import json

    rows = eval_pairs(_curator().root)
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    return send_file(io.BytesIO(body), mimetype="application/jsonl", as_attachment=True,
                     download_name="feedback-eval.jsonl")


@bp.get("/api/faq")
def api_faq_list() -> Response:
    """The FAQ entries (documents 问答/…) with their questions."""
    require("reader")
    from indexer.faq import FAQ_PREFIX

    found = [{"doc_id": d["doc_id"], "question": d["title"]} for d in state().engine.documents()
             if d["doc_id"].startswith(FAQ_PREFIX + "/")]
    return jsonify({"count": len(found), "entries": found})


@bp.post("/api/faq")
def api_faq_import() -> Response:
    """Import a 问答对 file (multipart ``file``): each pair becomes a searchable entry, its question a standard
    question; importing a file of the same name again replaces its entries."""
    name = require("editor")
    import tempfile
    from pathlib import Path

    from indexer.faq import entry_name, import_faq
    from indexer.types import PartyQAError

    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ApiError(400, "请上传问答对文件（csv、xlsx 或 jsonl）。", "upload the question-answer file (csv, xlsx or "
                       "jsonl) as 'file'", code="no_file")
    filename = Path(upload.filename.replace("\\", "/")).name
    with tempfile.TemporaryDirectory(prefix="partyqa-faq-upload-") as tmp:
        path = Path(tmp) / f"{entry_name(filename)}{Path(filename).suffix.lower()}"  # never outside tmp
        upload.save(path)
        try:
            with acting_as(name):
                out = import_faq(state().engine, path, wait=False, who=name)
        except PartyQAError as exc:
            raise _bad(exc, "bad_faq") from None
    resp = jsonify(out)
    resp.status_code = 201
    return resp


@bp.get("/api/audit")
def api_audit() -> Response:
    """The audit log, newest first: who, action, target, job, when, result (admin)."""
    require("admin")
    raw = request.args.get("limit", "200")
    try:
        limit = int(raw)
        if not 1 <= limit <= 10000:
            raise ValueError
    except ValueError:
        raise ApiError(400, "limit 须为 1–10000 的整数。", "limit must be an integer from 1 to 10000",
                       code="bad_limit") from None
    entries = _curator().audit(limit)
    return jsonify({"count": len(entries), "entries": entries})
