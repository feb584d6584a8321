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
``GET /api/audit?limit=&offset=``                          admin     ``{"count", "total", "offset", "entries"}``, newest
                                                                     first
``GET /audit`` (page 操作记录, ``?page=``)                    admin     the audit log, 50 entries a page
``GET /api/me``                                            --        ``{"name", "role", "tokens"}``
=========================================================  ========  =============================================

The 问答对 routes are in :mod:`webui.faq`. A pid is ``doc_id#ordinal``: put it in a URL encoded (``#`` as ``%23``). *Feedback needs no token: an anonymous
reader's is recorded as "anonymous". Without any token configured every route is open and acts as "local".
"""
from __future__ import annotations

import io
from typing import Any, Callable

from flask import Blueprint, Response, jsonify, request, send_file

from indexer.index.journal import acting_as, eval_pairs
from indexer.types import PartyQAError

from .auth import ANONYMOUS, current_user, require, tokens
from .common import state
from .doclist import page_bounds
from .errors import ApiError, split_bilingual
from .params import json_body

bp = Blueprint("curation", __name__)


def _curator() -> Any:
    return state().engine.curator


def json_object() -> dict[str, Any]:
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


def write_as_user(role: str, call: Callable[[str], Any], code: str, not_found: str | None = None,
           created: bool = False) -> Response:
    """Run a write as the request's user (``role`` or above; audited under their name): ``call(name)``'s result as
    JSON, 201 when ``created``. A refused request (a bilingual PartyQAError) answers 400 ``code`` -- 404
    ``not_found`` when it names something unknown."""
    name = require(role)
    try:
        with acting_as(name):
            out = call(name)
    except PartyQAError as exc:
        zh, en = split_bilingual(str(exc))
        if not_found and "unknown" in en:
            raise ApiError(404, zh, en, code=not_found) from None
        raise ApiError(400, zh, en, code=code) from None
    resp = jsonify(out)
    if created:
        resp.status_code = 201
    return resp


def _set_state(pids: list[str], enabled: bool) -> Response:
    def call(name: str) -> dict[str, Any]:
        out = _curator().set_passage_enabled(pids, enabled, who=name)
        return {**out, "state": "enabled" if enabled else "disabled"}

    return write_as_user("editor", call, "bad_passage", not_found="unknown_passage")


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
    body = json_object()
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
    def link(name: str) -> dict[str, Any]:
        body = json_object()
        question, pid = body.get("question"), body.get("pid")
        if not isinstance(pid, str) or not pid:
            raise ApiError(400, "需要 pid（段落编号）。", "give pid (the passage id)", code="bad_request")
        return _curator().link_question(question, pid, who=name)

    return write_as_user("editor", link, "bad_link", created=True)


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
    def give(name: str) -> dict[str, Any]:
        body = json_object()
        return _curator().add_feedback(body.get("question"), body.get("pid"), body.get("useful"), body.get("mode"),
                                       who=name)

    return write_as_user("reader", give, "bad_feedback", created=True)


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


AUDIT_PAGE = 50  # entries per page of the 操作记录 page
ACTIONS = {"upload": "上传", "add": "添加文件", "delete": "删除", "remove": "删除文档", "restore": "恢复", "index": "同步索引",
           "rebuild": "重建索引", "import": "导入", "metadata": "修改文档信息", "disable": "停用段落", "enable": "启用段落",
           "link": "关联标准问题", "unlink": "取消标准问题", "edit": "编辑问答对"}
RESULTS = {"ok": "成功", "failed": "失败", "queued": "已排队", "unfinished": "未完成"}


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, str(default))
    try:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError
    except ValueError:
        raise ApiError(400, f"{name} 须为 {low}–{high} 的整数。", f"{name} must be an integer from {low} to {high}",
                       code=f"bad_{name}") from None
    return value


@bp.get("/api/audit")
def api_audit() -> Response:
    """The audit log, newest first: who, action, target, job, when, result (admin); ``limit`` entries from
    ``offset``, ``total`` in the log."""
    require("admin")
    limit = _int_arg("limit", 200, 1, 10000)
    offset = _int_arg("offset", 0, 0, 10**9)
    entries = _curator().audit()
    page = entries[offset:offset + limit]
    return jsonify({"count": len(page), "total": len(entries), "offset": offset, "entries": page})


def target_text(target: Any) -> str:
    """What an audit entry's target names, in one line (a list joined, a dict's values)."""
    if isinstance(target, dict):
        return " · ".join(target_text(v) for v in target.values() if v not in (None, "", []))
    if isinstance(target, list):
        shown = "、".join(target_text(v) for v in target[:5])
        return shown + (f" 等 {len(target)} 项" if len(target) > 5 else "")
    return "" if target is None else str(target)


@bp.get("/audit")
def audit_page() -> Any:
    """操作记录: who did what, when, in which job, newest first, 50 a page (admins). Opened without a token on a
    server with tokens, the page asks for an admin's token and its script loads it again with the kept one; a
    user who is not an admin gets 403."""
    from flask import render_template

    user = current_user()
    if tokens().configured() and user.name != ANONYMOUS and not user.can("admin"):
        require("admin")  # 403, with the page's message
    ctx: dict[str, Any] = {"entries": None, "actions": ACTIONS, "results": RESULTS, "target_text": target_text}
    if user.can("admin"):
        try:
            wanted = int(request.args.get("page", "1"))
        except ValueError:
            wanted = 1
        entries = _curator().audit()
        page, pages, offset = page_bounds(len(entries), wanted, AUDIT_PAGE)
        ctx.update(entries=entries[offset:offset + AUDIT_PAGE], page=page, pages=pages, offset=offset,
                   total=len(entries))
    return render_template("audit.html", **ctx)
