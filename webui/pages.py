"""The HTML pages: search (home and results), a document, the documents page, 服务状态 and the batch page."""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any, Sequence

from flask import Blueprint, current_app, render_template, request

from indexer.text.cite import citation
from indexer.questions import QUESTION_SUFFIXES, QuestionLine, SkippedLine, file_lines, pasted_lines, screen
from indexer.types import ModelError, PartyQAError, QueryError

from .common import State, doc_url, download, ordinal_of, state as _state, stats as _stats
from .doclist import Catalog, build_picker, page_bounds, records
from .errors import ApiError, split_bilingual
from .export import answer_items
from .jobs import public_job
from .library import answer_kinds, library, load_examples
from .params import (MAX_BATCH_PAGE, MAX_NAME_QUERY, MODES, PAGE_FORMATS, check_question, doc_values, parse_count,
                     parse_format, parse_k, parse_mode, parse_share, refuse_unknown)
from .render import (covers_passage, document_blocks, document_outline, enumeration_span, example_questions,
                     highlight_html, informative_highlights, outline_groups)
from .trash import removed_files
from .uploads import allowed_extensions
from .versions import compare_href

logger = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)

EXAMPLE_DOCS = 12  # documents read to derive example questions
MAX_JOBS = 100


# Below the top card the answer sentence gets a lighter mark graded by that card's own confidence: the hit's
# ``confidence``, the answer-confidence model (the one behind answer_found) on the signals that passage alone gives
# (indexer.search.rank.hit_signals: its share of the question's terms, its own cosine, both halves' first five).
# ``data-level`` on the mark, style.css draws it: 3 (>= 0.6, likely answers too) a pale fill with an underline,
# 2 (>= 0.4) an underline, 1 (from the search's answer threshold ``min_confidence`` up) a dotted underline; below
# that threshold no mark (the engine would not call that passage an answer on top either). A hit without a
# confidence (one put in by the article look-up) gets level 1. The share of lower cards holding the gold answer
# falls with the level (`python -m bench.hint_levels`, shipped library, 5 hits): bounds chosen on dev + secretary,
# hybrid 3/2/1/none 0.098 / 0.056 / 0.040 / 0.030 (keyword 0.190 / 0.076 / 0.062 / 0.050); held-out 1-3 hybrid
# 0.116 / 0.053 / 0.041 / 0.035 (keyword 0.133 / 0.066 / 0.028 / 0.036).
HINT_LEVELS = ((0.6, 3), (0.4, 2))


def hint_level(confidence: Any, floor: float) -> int | None:
    """The answer mark's level (3 strongest .. 1) of a card below the top for its confidence; None below ``floor``."""
    if confidence is None:
        return 1
    value = float(confidence)
    if value < floor:
        return None
    return next((level for bound, level in HINT_LEVELS if value >= bound), 1)


def _decorate(hit: dict[str, Any], q: str, answer_found: bool, top: bool = True,
              highlights: Sequence[Sequence[int]] | None = None, floor: float = 0.0) -> dict[str, Any]:
    """Add what the results page shows: highlighted HTML, links (with the answer span), citation, folded copies.

    The answer sentence is strongly marked on the ``top`` card only (below it a lighter mark graded by the card's
    confidence, none under ``floor``: :func:`hint_level`), and not at all when it is the whole passage;
    ``highlights`` (the informative terms' spans) replace the hit's own when given."""
    text = hit.get("text", "")
    span = enumeration_span(text, hit.get("best_span"), q) if answer_found else None
    hit["whole_answer"] = covers_passage(text, span)
    level = None if top else hint_level(hit.get("confidence"), floor)
    shown = None if hit["whole_answer"] or (not top and level is None) else span
    hit["html"] = highlight_html(text, hit.get("highlights") if highlights is None else highlights, shown,
                                 "answer" if top else "answer-hint", level)
    hit["citation"] = hit.get("citation") or citation(hit)
    hl = None
    if span:
        hit["answer_text"] = text[span[0]:span[1]].strip()
        try:
            hl = (int(hit["start"]) + int(span[0]), int(hit["start"]) + int(span[1]))
        except (KeyError, TypeError, ValueError, IndexError):
            hl = None
    hit["href"] = doc_url(hit["doc_id"], hit.get("ordinal"), q, hl)
    hit["copy_text"] = f"{hit['citation']}\n{text}"
    hit["also_views"] = [{**a, "citation": a.get("citation") or citation(a),
                          "href": doc_url(a.get("doc_id", ""), ordinal_of(a.get("pid")), q)}
                         for a in hit.get("also_in") or [] if a.get("doc_id")]
    if hit.get("version_status") or any(a.get("version_status") for a in hit.get("also_in") or []):
        hit["compare_href"] = compare_href(hit["doc_id"], hit["citation"], hit.get("section"), text)  # 版本对照
    return hit


_ARTICLE_LEAD = re.compile(r"^第[一二三四五六七八九十百千零〇两\d]+条\s*")
# A question about how versions differ ("2018版和2023版…第七条有什么区别"): the answer box offers the versions side
# by side (/compare) as its own action, beside 查看原文, when the answering article has other versions.
_COMPARE_ASK = re.compile(r"区别|差别|差异|不同|异同|对比|比较|对照|变化|变了|改了|修改了|改动|新旧")


def _decorate_all(hits: Sequence[dict[str, Any]], q: str, answer_found: bool,
                  floor: float | None = None) -> dict[str, Any] | None:
    """Decorate a result list (informative terms only; the strong answer mark on the first card, graded lighter
    ones below down to ``floor``, the answer threshold the search used) and return the answer box for it: the
    first hit's answer sentence and citation, or None when no answer was found."""
    if floor is None:
        used = getattr(hits, "min_confidence", None)  # the threshold the search judged answer_found with
        floor = float(_state().config.min_confidence if used is None else used)
    spans = informative_highlights([h.get("text", "") for h in hits], [h.get("highlights") for h in hits])
    for i, (hit, marks) in enumerate(zip(hits, spans)):
        _decorate(hit, q, answer_found, top=i == 0, highlights=marks, floor=floor)
    if not answer_found or not hits or not hits[0].get("answer_text"):
        return None
    top = hits[0]
    # The citation names the article: the sentence need not start with it again.
    sentence = _ARTICLE_LEAD.sub("", top["answer_text"], count=1) or top["answer_text"]
    return {"sentence": sentence, "citation": top["citation"], "href": top["href"],
            "copy_text": f"{sentence}（{top['citation']}）", "hit": top}


def _examples(state: State) -> list[str]:
    """Example questions from the indexed documents' headings, cached per index generation."""
    try:
        stats = state.engine.stats()
        key = (stats.get("generation"), stats.get("documents"), stats.get("passages"))
        with state.examples_lock:
            if key == state.examples_key:
                return list(state.examples)
        docs = []
        for meta in state.engine.documents()[:EXAMPLE_DOCS]:
            try:
                docs.append(state.engine.document(meta["doc_id"]))
            except KeyError:
                continue
        examples = example_questions(docs)
        with state.examples_lock:
            state.examples_key, state.examples = key, examples
        return list(examples)
    except Exception:
        logger.exception("could not derive example questions")
        return []


def _library(state: State, catalog: Catalog) -> dict[str, Any]:
    """The home page's library: categories with documents, counts and states, and curated examples."""
    try:
        docs = records(state.engine, catalog, catalog.ids)
        return library(docs, load_examples(_stats(state).get("corpus_dir")))
    except Exception:
        logger.exception("could not describe the library")
        return {"categories": [], "documents": 0, "pending": 0, "curated": False, "examples": []}


def _pending_docs(state: State) -> int:
    """Documents whose passages are not all embedded yet (0 without a stats call's pending vectors)."""
    try:
        if not int(_stats(state).get("pending_vectors") or 0):
            return 0
        return sum(1 for d in state.engine.documents() if str(d.get("state") or "done") != "done")
    except Exception:
        logger.exception("could not count documents still being embedded")
        return 0


def _parse_span(value: str) -> tuple[int, int] | None:
    """``"120-168"`` → (120, 168); None when absent or malformed."""
    m = re.fullmatch(r"(\d{1,9})-(\d{1,9})", value or "")
    if not m or int(m.group(1)) >= int(m.group(2)):
        return None
    return int(m.group(1)), int(m.group(2))


def _batch_questions(text: str, upload: Any, max_chars: int) -> tuple[list[QuestionLine], list[SkippedLine]]:
    """Questions pasted one per line plus those of an uploaded txt / csv / xlsx / jsonl file, list numbering
    stripped; (questions to search, lines skipped with their reason). An unreadable file is ApiError 400."""
    lines = pasted_lines(text)
    if upload is not None and upload.filename:
        name = Path(upload.filename.replace("\\", "/")).name
        if Path(name).suffix.lower() not in QUESTION_SUFFIXES:
            raise ApiError(400, "问题文件须为 txt（每行一个问题）、csv 或 xlsx（含“问题”列）、jsonl。",
                           "the question file must be .txt, .csv, .xlsx or .jsonl", code="bad_batch")
        try:
            lines += file_lines(upload.read(), name)
        except PartyQAError as err:
            zh, en = split_bilingual(str(err))
            raise ApiError(400, zh, en, code="bad_batch") from None
    return screen(lines, max_chars)


def _search_batch(engine: Any, qs: Sequence[str], k: int, mode: str, docs: Sequence[str] | None,
                  category: str | None = None) -> tuple[list[Any], list[int]]:
    """Search questions 32 at a time (in one 类别 when ``category``); a question the engine refuses (no searchable
    words) is searched alone and left out. (results of the kept questions, indexes of the refused ones)."""
    results: list[Any] = []
    refused: list[int] = []
    for i in range(0, len(qs), 32):
        chunk = list(qs[i:i + 32])
        try:
            results += engine.search_many(chunk, k=k, mode=mode, docs=docs, category=category)
        except QueryError:
            for j, q in enumerate(chunk, start=i):
                try:
                    results.append(engine.search(q, k=k, mode=mode, docs=docs, category=category))
                except QueryError:
                    refused.append(j)
    return results, refused


def editor_controls() -> dict[str, Any] | None:
    """An editor's controls on a page (停用/启用, 设为标准答案, 关联问题): ``{"shown": True}`` for an editor;
    ``{"shown": False}`` (rendered hidden, shown by the page's script once /api/me says the kept token is an
    editor's) for a request without such rights on a server with tokens; never None without tokens (local)."""
    from .auth import current_user, tokens

    if current_user().can("editor") or tokens().configured():
        return {"shown": current_user().can("editor")}
    return None


@bp.get("/")
def search_page() -> str:
    """The home page (library, examples) or the results of ``?q=`` with the answer box on top."""
    state = _state()
    engine, cfg = state.engine, state.config
    q_raw = request.args.get("q", "")
    notice = ""
    try:
        mode = parse_mode(request.args.get("mode"), cfg.mode if cfg.mode in MODES else "hybrid")
    except ApiError as err:
        mode, notice = (cfg.mode if cfg.mode in MODES else "hybrid"), err.message_zh
    try:
        k = parse_k(request.args.get("k"), cfg.k)
    except ApiError as err:
        k, notice = cfg.k, err.message_zh
    tried: dict[str, float] = {}  # 检索测试: a semantic weight and a confidence threshold for this search only
    for name in ("semantic_weight", "min_confidence"):
        try:
            value = parse_share(request.args.get(name), name)
        except ApiError as err:
            notice = err.message_zh
            continue
        if value is not None:
            tried[name] = value
    categories = engine.categories()  # 类别 (issue 23 item 4): one category, or every document
    category = " ".join(request.args.get("category", "").split())[:MAX_NAME_QUERY] or None
    if category and category not in categories:
        notice, category = f"没有类别为“{category}”的文档，已在全部文档中检索。", None
    catalog = state.catalog.get(engine)
    folders: list[str] = []
    try:
        values = doc_values(request.args.getlist("doc")) or []
        chosen, folders, unknown = catalog.resolve(values)
        refuse_unknown(unknown)
        docs = chosen or None
    except ApiError as err:
        docs, folders, notice = None, [], err.message_zh
    ctx: dict[str, Any] = {"q": q_raw, "mode": mode, "k": k, "notice": notice, "results": None, "error": "",
                           "took_ms": None, "stats": _stats(state), "selected_docs": docs or [],
                           "doc_counts": {}, "answer_found": True, "tried": tried, "curating": editor_controls(),
                           "categories": categories, "category": category,
                           "default_min_confidence": cfg.min_confidence,
                           "min_confidence": tried.get("min_confidence", cfg.min_confidence)}

    def page() -> str:
        # The search's own candidate counts only order a cut list (documents with hits first); the counts shown
        # are fetched when the picker is opened (GET /api/doc_counts): the page runs one search.
        picker = build_picker(catalog, docs or [], folders, ctx["doc_counts"] or None,
                              cap=current_app.config["PICKER_CAP"])
        for option in picker.options:
            option.count = None
        picker.counted = False
        ctx["picker"] = picker
        return render_template("search.html", **ctx)

    if "q" not in request.args:
        ctx["library"] = _library(state, catalog)
        ctx["examples"] = ctx["library"]["examples"] or _examples(state)
        return page()
    try:
        q = check_question(q_raw, cfg.max_query_chars)
        t0 = time.perf_counter()
        # One search; under a document filter it still counts every document's candidates (count_all), which
        # order a cut picker list.
        hits = engine.search(q, k=k, mode=mode, docs=docs, count_all=bool(docs), category=category, **tried)
        ctx["took_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        answer_found = bool(hits.answer_found) and bool(hits)
        ctx["answer"] = _decorate_all(hits, q, answer_found)
        found = getattr(hits, "found", None)
        if ctx["answer"] and ctx["answer"]["hit"].get("compare_href") and _COMPARE_ASK.search(q):
            ctx["answer"]["compare"] = ctx["answer"]["hit"]["compare_href"]
        if ctx["answer"] and found is not None and len(found.articles) > 1:
            # 第七条至第九条: the box quotes the first article; it says the others follow instead of passing as the
            # whole answer
            ctx["answer"]["more"] = found.labels[1:]
        message = getattr(hits, "message", None)  # the article look-up's "该条例共一百五十八条"
        ctx["lookup_message"] = split_bilingual(str(message))[0] if message else ""
        ctx["results"], ctx["answer_found"] = hits, answer_found
        if not answer_found:
            ctx["kinds"] = answer_kinds(q, catalog.titles.values())
        if mode != "keyword":
            ctx["pending_docs"] = _pending_docs(state)
        ctx["doc_counts"] = dict(getattr(hits, "doc_counts", None) or {})
        ctx["export_args"] = {"q": q, "mode": mode, "k": k, "doc": docs or [], **tried,
                              **({"category": category} if category else {})}
        ctx["semantic_share"] = getattr(hits, "semantic_share", None)
        ctx["min_confidence"] = getattr(hits, "min_confidence", ctx["min_confidence"])  # the one the search used
        ctx["confidence"] = float(getattr(hits, "confidence", 0.0) or 0.0)
        if not hits:
            ctx["examples"] = _examples(state)
    except ApiError as err:
        ctx["error"] = err.message_zh
        ctx["examples"] = _examples(state)
    except QueryError as err:
        ctx["error"] = split_bilingual(str(err))[0]
    except ModelError as err:
        logger.error("model error: %s", err)
        ctx["error"] = "语义模型不可用，请改用“关键词”检索。"
    return page()


@bp.get("/doc/<path:doc_id>")
def doc_page(doc_id: str) -> str:
    """One document, scrolled to passage ``?p=`` with the answer span ``?hl=`` marked; outline by 编/章."""
    state = _state()
    engine = state.engine
    try:
        doc = engine.document(doc_id)
    except KeyError:
        raise ApiError(404, "找不到该文档，它可能已被删除。", f"unknown document {doc_id!r}",
                       code="unknown_document") from None
    try:
        chosen = int(request.args.get("p", ""))
    except ValueError:
        chosen = None
    passages = doc.get("passages", [])
    chosen_passage = next((p for p in passages if p.get("ordinal") == chosen), None)
    hl = _parse_span(request.args.get("hl", ""))
    blocks = document_blocks(doc.get("text", ""), passages, highlight=hl)
    outline = document_outline(blocks, chosen=chosen if chosen_passage else None)
    compare = None  # 版本对照 of a versioned regulation: the chosen article, else its first
    if doc.get("version_status"):
        for p in ([chosen_passage] if chosen_passage else []) + passages:
            compare = compare_href(doc_id, p.get("section"), p.get("text"))
            if compare:
                break
    # 停用/启用 and 关联问题 per passage (GET /api/documents/<id>/passages' states and standard questions)
    curated = engine.curator.passages(doc_id)
    editing = editor_controls()
    if editing is not None:
        editing["states"] = {p["ordinal"]: p["state"] for p in curated}
    linked = {p["ordinal"]: p["standard_questions"] for p in curated if p.get("standard_questions")}
    cites = {p["ordinal"]: p["citation"] for p in curated if p.get("citation")}  # each passage's 出处, as the API's
    refs = {}  # cross-references (issue 23 item 3): each passage's links to the articles it names, not to itself
    for p in passages:
        found = [r for r in p.get("references") or [] if r.get("doc_id") and r.get("pid") != f"{doc_id}#{p['ordinal']}"]
        if found:
            refs[p["ordinal"]] = found
    return render_template("doc.html", doc=doc, blocks=blocks, outline=outline, groups=outline_groups(outline),
                           compare_href=compare, editing=editing, linked=linked, refs=refs, cites=cites,
                           chosen=chosen if chosen_passage else None, chosen_passage=chosen_passage,
                           q=request.args.get("q", ""))


@bp.get("/documents")
def documents_page() -> str:
    """Upload, index jobs, one page of the documents list, and the 回收站."""
    state = _state()
    engine, cfg = state.engine, state.config
    exts = sorted(allowed_extensions())
    q = " ".join(request.args.get("q", "").split())[:MAX_NAME_QUERY]
    notice = ""
    try:
        wanted = parse_count(request.args.get("page"), "page", 1) or 1
    except ApiError as err:
        wanted, notice = 1, err.message_zh
    catalog = state.catalog.get(engine)
    ids = catalog.matching(q)
    size = current_app.config["DOCS_PAGE"]
    page, pages, offset = page_bounds(len(ids), wanted, size)
    stats = _stats(state)
    try:
        trash = removed_files(stats.get("index_dir"), catalog.ids)
    except OSError:
        logger.exception("cannot list the removed files")
        trash = []
    return render_template("documents.html", documents=records(engine, catalog, ids[offset:offset + size]),
                           stats=stats, extensions=exts, max_upload_mb=int(cfg.max_upload_mb), q=q,
                           notice=notice, total=len(ids), page=page, pages=pages, offset=offset, page_size=size,
                           trash=trash)


@bp.get("/status")
def status_page() -> str:
    """服务状态: documents, passages, pending vectors, jobs and model, for people."""
    state = _state()
    engine, cfg = state.engine, state.config
    stats = _stats(state)
    try:
        active = [public_job(j.to_dict()) for j in engine.jobs.list(active_only=True, limit=MAX_JOBS)]
    except Exception:
        logger.exception("cannot list jobs")
        active = []
    return render_template("status.html", stats=stats, pending_docs=_pending_docs(state), active=active,
                           mode_label=MODES.get(cfg.mode, cfg.mode))


@bp.route("/batch", methods=["GET", "POST"])
def batch_page() -> Any:
    """Many questions at once (pasted or a file); answers on the page or as Excel, CSV or Word."""
    state = _state()
    engine, cfg = state.engine, state.config
    default_mode = cfg.mode if cfg.mode in MODES else "hybrid"
    ctx: dict[str, Any] = {"mode": default_mode, "k": cfg.k, "text": "", "items": None, "error": "",
                           "skipped": [], "max_questions": MAX_BATCH_PAGE, "category": None,
                           "categories": engine.categories()}  # 类别, as on the search page (issue 25)
    if request.method == "GET":
        return render_template("batch.html", **ctx)
    form = request.form
    ctx["text"] = form.get("questions", "")  # the form stays filled whatever happens below
    try:
        ctx["mode"] = mode = parse_mode(form.get("mode"), default_mode)
        ctx["k"] = k = parse_k(form.get("k"), cfg.k)
        fmt = parse_format(form.get("format") or "html", PAGE_FORMATS)
        category = " ".join(form.get("category", "").split())[:MAX_NAME_QUERY] or None
        if category and category not in ctx["categories"]:  # an answer sheet must not quietly cover every document
            raise ApiError(400, f"没有类别为“{category}”的文档，请重新选择类别。", f"no document has category {category!r}",
                           code="unknown_category")
        ctx["category"] = category
        lines, skipped = _batch_questions(ctx["text"], request.files.get("file"), cfg.max_query_chars)
        ctx["skipped"] = [s.message_zh for s in skipped]
        if not lines:
            raise ApiError(400, "没有可检索的问题：请每行输入一个问题，或上传 txt / csv / xlsx / jsonl 问题文件。",
                           "no questions: one per line, or upload a txt/csv/xlsx/jsonl file", code="bad_batch")
        if len(lines) > MAX_BATCH_PAGE:
            raise ApiError(400, f"一次最多 {MAX_BATCH_PAGE} 个问题（收到 {len(lines)} 个），请分批提交。",
                           f"at most {MAX_BATCH_PAGE} questions (got {len(lines)})", code="batch_too_large")
        results, refused = _search_batch(engine, [q.text for q in lines], k, mode, None, category)
        for j in refused:
            ctx["skipped"].append(f"{lines[j].where()}已跳过：没有可检索的词语")
        kept = [q for j, q in enumerate(lines) if j not in set(refused)]
        if not kept:
            raise ApiError(400, "没有可检索的问题：每一行都没有可检索的词语。", "no line has searchable words",
                           code="bad_batch")
        items = answer_items([q.text for q in kept], results)
    except ApiError as err:
        ctx["error"] = err.message_zh
        return render_template("batch.html", **ctx), err.status
    if fmt != "html":
        return download(items, fmt, "批量问答结果", {"mode": mode, "k": k, "docs": [], "category": category})
    for item in items:
        answer = _decorate_all(item["hits"], item["question"], bool(item["answer_found"]))
        item["answer"] = answer
    ctx["items"] = items
    return render_template("batch.html", **ctx)


@bp.get("/feedback")
def feedback_page() -> str:
    """反馈: the questions judged 没用 and the passages judged 有用 (GET /api/feedback's data) for editors; without
    an editor's token the page asks for one and its script loads the list with the token kept in the browser."""
    from .auth import current_user

    user = current_user()
    summary = state_feedback() if user.can("editor") else None
    return render_template("feedback.html", summary=summary)


def state_feedback() -> dict[str, Any]:
    """The feedback summary of the current engine."""
    return _state().engine.curator.feedback()
