"""The JSON API under /api/: health, search, batch, documents (list, one, upload, delete), the 回收站 and jobs.

Errors are ``{"error": {"code", "message_zh", "message_en"}}`` with an HTTP status (see :mod:`webui.errors`)."""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from flask import Blueprint, Response, jsonify, request, url_for

from indexer.fsutil import checkpoint
from indexer.index.sync import file_sha1
from indexer.search.query import K_MAX
from indexer.types import PartyQAError

from .auth import audit, require
from .common import State, corpus_root, download, public_doc, state as _state, stats as _stats
from .doclist import MAX_DOC_LIMIT, records
from .errors import ApiError, split_bilingual
from .export import answer_items
from .jobs import public_job
from .params import (MAX_BATCH, MAX_NAME_QUERY, MODES, check_question, json_body, parse_count, parse_docs,
                     parse_format, parse_k, parse_mode, parse_share, parse_wait)
from .trash import removed_path, restore
from .uploads import (UploadNameError, accepted_dir, allowed_extensions, check_extension, sanitize_filename,
                      save_upload)

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")

DEFAULT_JOBS, MAX_JOBS = 20, 100  # GET /api/jobs: newest first


def knobs(args: dict[str, Any]) -> dict[str, float]:
    """The retrieval-test knobs a request gives (``semantic_weight``, ``min_confidence``: numbers from 0 to 1),
    checked; absent ones are left out, so the configured defaults apply."""
    found = {name: parse_share(args.get(name), name) for name in ("semantic_weight", "min_confidence")}
    return {name: value for name, value in found.items() if value is not None}


def settings(results: Any, cfg: Any, tried: dict[str, float]) -> dict[str, Any]:
    """The ranking settings one question was answered with: ``semantic_share`` (the semantic half's share of the
    fusion, null outside hybrid convex fusion) and ``min_confidence`` (the answer threshold)."""
    share = getattr(results, "semantic_share", None)
    used = getattr(results, "min_confidence", None)  # what the engine judged answer_found with
    return {"semantic_share": None if share is None else round(float(share), 4),
            "min_confidence": used if used is not None else tried.get("min_confidence", cfg.min_confidence)}


def doc_counts(engine: Any, q: str) -> dict[str, int]:
    """Passages per document that contain the question's words: what a keyword search filtered to that document
    finds (up to K_MAX); the document picker shows them as "N 段含问题词语"."""
    try:
        hits = engine.search(q, k=K_MAX, mode="keyword")
    except PartyQAError:
        return {}
    out: dict[str, int] = {}
    for h in hits:
        # A copy folded into a hit of another document is a result of its own when its document is selected; a
        # copy folded within one document is not.
        docs = {str(h.get("doc_id") or "")} | {str(a.get("doc_id") or "") for a in h.get("also_in") or []}
        for d in docs - {""}:
            out[d] = out.get(d, 0) + 1
    return out


@bp.get("/health")
def api_health() -> Response:
    """Counts, pending vectors and the model, as JSON."""
    state = _state()
    s = state.engine.stats()
    return jsonify({"status": "ok", "documents": s.get("documents", 0), "passages": s.get("passages", 0),
                    "pending_vectors": s.get("pending_vectors", 0), "model": s.get("model", "")})


@bp.route("/search", methods=["GET", "POST"])
def api_search() -> Response:
    """One question (GET ?q= or POST JSON): results with answer_found, or a CSV / Excel / Word file.

    Parameters: ``q`` (or ``question``), ``k``, ``mode``, ``doc`` and ``category`` (repeatable), ``format``, and the
    retrieval-test knobs for this request only (the configured defaults stay): ``semantic_weight`` (0-1, the
    semantic half's share of hybrid fusion for every question: each hit's score is ``(1 - w) * keyword_score + w
    * semantic_score`` before the demotions and bonuses its ``why`` names; by default it is chosen per question)
    and ``min_confidence`` (0-1, the confidence below which ``answer_found`` is false). A value that is not a
    number from 0 to 1 is 400 (``bad_semantic_weight`` / ``bad_min_confidence``). The answer reports the
    ``semantic_share`` and ``min_confidence`` used, and each hit its ``keyword_score`` and ``semantic_score``.
    """
    state = _state()
    engine, cfg = state.engine, state.config
    if request.method == "POST":
        body = json_body()
        if not isinstance(body, dict):
            raise ApiError(400, "请求体必须是 JSON 对象，例如 {\"question\": \"…\"}。",
                           "the body must be a JSON object such as {\"question\": \"...\"}", code="bad_json")
        args: dict[str, Any] = body
    else:
        args = request.args.to_dict()
    question = args.get("question", args.get("q"))
    if question is None:
        raise ApiError(400, "缺少问题参数 q（或 question）。", "missing the question (q or question)",
                       code="missing_question")
    mode = parse_mode(args.get("mode"), cfg.mode if cfg.mode in MODES else "hybrid")
    k = parse_k(args.get("k"), cfg.k)
    fmt = parse_format(args.get("format"))
    raw_docs = request.args.getlist("doc") if request.method == "GET" else args.get("doc", args.get("docs"))
    docs = parse_docs(raw_docs, engine.doc_ids)
    q = check_question(question, cfg.max_query_chars)
    category = request.args.getlist("category") if request.method == "GET" else args.get("category")
    tried = knobs(args)
    t0 = time.perf_counter()
    hits = engine.search(q, k=k, mode=mode, docs=docs, category=category or None, **tried)
    took = round((time.perf_counter() - t0) * 1000, 1)
    if fmt != "json":
        return download(answer_items([q], [hits]), fmt, "问答结果",
                        {"mode": mode, "k": k, "docs": docs, "category": category})
    body = {"question": q, "mode": mode, "k": k, "took_ms": took, **hits.envelope(), **settings(hits, cfg, tried),
            "docs": docs, "results": hits}
    if getattr(hits, "doc_counts", None) is not None:
        body["doc_counts"] = hits.doc_counts
    return jsonify(body)


@bp.get("/doc_counts")
def api_doc_counts() -> Response:
    """Per document, the passages that contain the question's words (?q=): what a keyword search restricted to
    that document returns; the search page's 限定文档 list shows them."""
    state = _state()
    engine, cfg = state.engine, state.config
    question = request.args.get("q", request.args.get("question"))
    if question is None:
        raise ApiError(400, "缺少问题参数 q（或 question）。", "missing the question (q or question)",
                       code="missing_question")
    q = check_question(question, cfg.max_query_chars)
    return jsonify({"question": q, "counts": doc_counts(engine, q),
                    "counted": "passages containing the question's words (a keyword search per document)"})


@bp.post("/batch")
def api_batch() -> Response:
    """Up to MAX_BATCH questions at once (POST JSON), as JSON or a file; ``semantic_weight`` and ``min_confidence``
    as for /api/search."""
    state = _state()
    engine, cfg = state.engine, state.config
    body = json_body()
    opts: dict[str, Any] = {}
    if isinstance(body, dict):
        questions, opts = body.get("questions"), body
    else:
        questions = body
    if not isinstance(questions, list) or not questions:
        raise ApiError(400, "请提供问题列表，例如 {\"questions\": [\"…\", \"…\"]} 或 [\"…\", \"…\"]。",
                       "send a non-empty list of questions: {\"questions\": [...]} or [...]",
                       code="bad_batch")
    if len(questions) > MAX_BATCH:
        raise ApiError(400, f"一次最多 {MAX_BATCH} 个问题（收到 {len(questions)} 个）。",
                       f"at most {MAX_BATCH} questions per batch (got {len(questions)})", code="batch_too_large")
    mode = parse_mode(opts.get("mode"), cfg.mode if cfg.mode in MODES else "hybrid")
    k = parse_k(opts.get("k"), cfg.k)
    fmt = parse_format(opts.get("format") or request.args.get("format"))
    raw_docs = opts.get("doc", opts.get("docs")) if opts else request.args.getlist("doc")
    docs = parse_docs(raw_docs, engine.doc_ids)
    qs = [check_question(q, cfg.max_query_chars, label=f"第 {i} 个") for i, q in enumerate(questions, start=1)]
    category = opts.get("category") if opts else request.args.getlist("category")
    tried = knobs(opts or request.args.to_dict())
    t0 = time.perf_counter()
    results = engine.search_many(qs, k=k, mode=mode, docs=docs, category=category or None, **tried)
    took = round((time.perf_counter() - t0) * 1000, 1)
    if fmt != "json":
        return download(answer_items(qs, results), fmt, "批量问答结果",
                        {"mode": mode, "k": k, "docs": docs, "category": category})
    answers = [{"question": q, **r.envelope(), **settings(r, cfg, tried)} for q, r in zip(qs, results)]
    return jsonify({"questions": qs, "mode": mode, "k": k, "took_ms": took, "docs": docs, "answers": answers,
                    "results": results})


@bp.get("/documents")
def api_documents() -> Response:
    """The documents (natural order), filtered by name (?q=) and paged (?offset=, ?limit=)."""
    state = _state()
    engine = state.engine
    q = request.args.get("q", "")
    if len(q) > MAX_NAME_QUERY:
        raise ApiError(400, f"筛选词 q 过长（{len(q)} 字），请控制在 {MAX_NAME_QUERY} 字以内。",
                       f"q is too long ({len(q)} characters, max {MAX_NAME_QUERY})", code="bad_q")
    limit = parse_count(request.args.get("limit"), "limit", 1, MAX_DOC_LIMIT)
    offset = parse_count(request.args.get("offset"), "offset", 0)
    catalog = state.catalog.get(engine)
    ids = catalog.matching(q)
    start = offset or 0
    shown = ids[start:] if limit is None else ids[start:start + limit]
    root = corpus_root(_stats(state).get("corpus_dir"))
    docs = [public_doc(d, root) for d in records(engine, catalog, shown)]
    body: dict[str, Any] = {"count": len(docs), "total": len(ids), "documents": docs}
    if limit is not None or offset is not None:
        body.update(offset=start, limit=limit)
    return jsonify(body)


@bp.get("/documents/<path:doc_id>")
def api_document(doc_id: str) -> Response:
    """One document's record (no server paths)."""
    state = _state()
    engine = state.engine
    try:
        return jsonify(public_doc(engine.document(doc_id), corpus_root(_stats(state).get("corpus_dir"))))
    except KeyError:
        raise ApiError(404, f"找不到文档“{doc_id}”。", f"unknown document {doc_id!r}",
                       code="unknown_document") from None


@bp.delete("/documents/<path:doc_id>")
def api_delete(doc_id: str) -> Response:
    """Delete a document through a job: 200 when it ends within ?wait=, else 202 with the job."""
    state = _state()
    engine = state.engine
    require("admin")  # named users (issue 26): deleting is an admin's
    if doc_id not in set(engine.doc_ids()):
        raise ApiError(404, f"找不到文档“{doc_id}”。", f"unknown document {doc_id!r}", code="unknown_document")
    wait = parse_wait(request.args.get("wait"))
    job = engine.jobs.submit_remove([doc_id])
    audit("delete", [doc_id], job=job.id)
    logger.info("delete via web: %s (job %s)", doc_id, job.id)
    try:  # a removal writes no vectors: it ends within the wait unless queued behind another job's reading
        if not wait:
            raise TimeoutError
        job = engine.jobs.wait(job.id, "done", timeout=wait)
    except TimeoutError:
        return _job_response(engine.jobs.get(job.id) or job, {"removed": []})
    view = public_job(job.to_dict())
    removed = [d for f in view["files"] if f["state"] == "done" for d in f.get("doc_ids") or [f["name"]]]
    if view["state"] == "failed" or not removed:
        if doc_id not in set(engine.doc_ids()):  # removed by another request meanwhile
            raise ApiError(404, f"找不到文档“{doc_id}”。", f"unknown document {doc_id!r}",
                           code="unknown_document", extra={"job": view})
        zh, en = split_bilingual(view.get("error") or next(
            (f["reason"] for f in view["files"] if f.get("reason")), "删除失败 / the removal failed"))
        raise ApiError(500, zh, en, code="remove_failed", extra={"job": view})
    return jsonify({"removed": removed, "job": view})


@bp.post("/documents")
def api_upload() -> Response:
    """Upload files (multipart ``files``): 202 with the job that indexes them."""
    state = _state()
    require("editor")  # named users (issue 26): uploading is an editor's
    job, files = _upload(state)
    audit("upload", [f["saved_as"] for f in files if f.get("saved_as")], job=job.id)
    return _job_response(job, {"files": files})


@bp.post("/removed/<path:entry_id>")
def api_restore(entry_id: str) -> Response:
    """Restore a 回收站 file: 202 with the job that adds it back."""
    state = _state()
    engine = state.engine
    require("editor")  # restoring a 回收站 file is an upload's write
    path = removed_path(_stats(state).get("index_dir"), entry_id)
    if path is None:
        raise ApiError(404, "回收站中没有这个文件。", f"no such file in the recycle bin: {entry_id!r}",
                       code="unknown_removed")
    job = restore(engine, path)
    audit("restore", [path.name], job=job.id)
    logger.info("restore via web: %s (job %s)", entry_id, job.id)
    return _job_response(job, {"restored": path.name})


@bp.get("/jobs")
def api_jobs() -> Response:
    """Recent jobs, newest first (?active=1: running ones only; ?limit=)."""
    state = _state()
    engine = state.engine
    active = request.args.get("active", "").strip().lower() in ("1", "true", "yes")
    try:
        limit = max(1, min(MAX_JOBS, int(request.args.get("limit", "") or DEFAULT_JOBS)))
    except ValueError:
        raise ApiError(400, f"limit 必须是 1 到 {MAX_JOBS} 之间的整数。",
                       f"limit must be an integer between 1 and {MAX_JOBS}", code="bad_limit") from None
    jobs = [public_job(j.to_dict()) for j in engine.jobs.list(active_only=active, limit=limit)]
    return jsonify({"count": len(jobs), "active": sum(1 for j in jobs if j["active"]), "jobs": jobs})


@bp.get("/jobs/<job_id>")
def api_job(job_id: str) -> Response:
    """One job's progress and per-file outcome."""
    state = _state()
    engine = state.engine
    job = engine.jobs.get(job_id)
    if job is None:
        raise ApiError(404, f"找不到任务“{job_id}”（只保留最近结束的任务）。",
                       f"unknown job {job_id!r} (only the most recent finished jobs are kept)", code="unknown_job")
    return jsonify(public_job(job.to_dict()))


def _job_response(job: Any, extra: dict[str, Any]) -> Response:
    """202 Accepted with the job and ``Location: /api/jobs/<id>`` (where its progress is polled)."""
    resp = jsonify({**extra, "job": public_job(job.to_dict())})
    resp.status_code = 202
    resp.headers["Location"] = url_for("api.api_job", job_id=job.id)
    return resp


def _identical(state: State, paths: Sequence[Path], sums: dict[Path, str]) -> list[tuple[str, str, str]]:
    """(upload name, doc id, title) for each uploaded file whose bytes equal an indexed document's file under another
    name (the same name is an update, which the index sees as unchanged). Only files of equal size are read, and
    an upload only when ``sums`` (its SHA-1, taken as it was received) lacks it."""
    sizes = {p: p.stat().st_size for p in paths}
    catalog = state.catalog.get(state.engine)
    found: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    sums = dict(sums)
    for d in records(state.engine, catalog, catalog.ids):
        src = Path(str(d.get("source") or ""))
        try:
            if not d.get("source") or not src.is_file():
                continue
            size = src.stat().st_size
        except OSError:
            continue
        for p in paths:
            if p.name in seen or sizes[p] != size or src.name == p.name:
                continue
            if src not in sums:
                sums[src] = file_sha1(src)
            if p not in sums:
                sums[p] = file_sha1(p)
            if sums[p] == sums[src]:
                seen.add(p.name)
                found.append((p.name, str(d["doc_id"]), str(d.get("title") or d["doc_id"])))
    return found


def _upload(state: State) -> tuple[Any, list[dict[str, Any]]]:
    """Check the uploaded files and hand them to a queued add job; (job, per-file entries).

    Names, types and empty files are refused here at once (a 4xx when no file is left); what the files contain is
    read by the job, whose per-file outcome ``GET /api/jobs/<id>`` reports. Each body was spooled into the index
    folder as it arrived (:class:`webui.uploads.SpooledUpload`); an accepted one is renamed into a folder of this
    upload, which the job's spool takes over by rename, and a refused one is deleted with the request.
    """
    files = request.files.getlist("files") + request.files.getlist("file")
    files = [f for f in files if f is not None and (f.filename or f.content_length)]
    if not files:
        raise ApiError(400, "没有收到文件，请在表单字段 files 中上传。", "no files received (multipart field 'files')",
                       code="no_files")
    allowed = allowed_extensions()
    tmp = accepted_dir(state.incoming)
    try:
        results: list[dict[str, Any]] = []
        saved: dict[str, str] = {}  # sanitised name -> the client's name
        sums: dict[Path, str] = {}  # accepted file -> SHA-1 taken as it was received
        codes: set[str] = set()
        for storage in files:
            original = storage.filename or ""
            try:
                name = sanitize_filename(original)
                check_extension(name, allowed)
                if name in saved:
                    raise UploadNameError("duplicate", "同一次上传中文件名重复。", "duplicate file name in this upload")
                dest = tmp / name
                digest = save_upload(storage, dest)
                if digest:
                    sums[dest] = digest
                if dest.stat().st_size == 0:
                    dest.unlink()
                    raise UploadNameError("empty_file", "文件为空。", "the file is empty")
            except UploadNameError as err:
                codes.add(err.code)
                results.append({"filename": original, "saved_as": None, "status": "error", "doc_ids": [],
                                "reason": f"{err.message_zh} / {err.message_en}"})
                continue
            saved[name] = original
            results.append({"filename": original, "saved_as": name, "status": "queued", "doc_ids": [],
                            "reason": None})
        if not saved:
            status = 415 if "unsupported_type" in codes else 400
            zh, en = results[0]["reason"].split(" / ", 1)
            raise ApiError(status, zh, en, code="unsupported_type" if status == 415 else "bad_upload",
                           extra={"files": results})
        paths = [tmp / name for name in saved]
        if request.form.get("allow_duplicate", "") not in ("1", "true", "yes"):
            same = _identical(state, paths, sums)
            if same:
                listed = "；".join(f"“{saved[n]}”与已收录的《{t}》（{d}）内容完全相同" for n, d, t in same[:5])
                raise ApiError(409, f"{listed}。确定要再添加一份吗？",
                               f"{len(same)} file(s) identical to indexed documents; send allow_duplicate=1 to add "
                               f"a copy", code="duplicate_upload",
                               extra={"duplicates": [{"filename": saved[n], "doc_id": d, "title": t}
                                                     for n, d, t in same]})
        if isinstance(getattr(state.engine, "root", None), Path):
            checkpoint(state.engine.root, "upload")  # kill test: the files are accepted, no job holds them yet
        # The queue moves the files into its spool under the index (a rename) and deletes ``tmp``.
        job = state.engine.jobs.submit_add(paths, names={str(p): p.name for p in paths}, owned_dir=tmp,
                                           digests={str(p): sums[p] for p in paths if p in sums})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("upload queued as job %s: %s", job.id,
                ", ".join(f"{r['saved_as'] or r['filename']}={r['status']}" for r in results))
    return job, results
