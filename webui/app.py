"""The Flask application: search, document and upload pages, and the JSON API, on top of one shared Engine."""
from __future__ import annotations

import datetime as _dt
import hmac
import io
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, render_template, request, send_file, url_for
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from indexer.config import Config
from indexer.engine import IndexCorruptError
from indexer.search.query import K_MAX, K_MIN
from indexer.search.query import MODES as SEARCH_MODES
from indexer.text.cite import citation
from indexer.types import IndexLockedError, ModelError, PartyQAError, QueryError

from .doclist import (DOCS_PAGE, MAX_DOC_LIMIT, PICKER_CAP, Catalog, CatalogCache, build_picker,
                      natural_key, page_bounds, records, resolve_docs)  # noqa: F401 (natural_key re-exported)
from .errors import ApiError, split_bilingual
from .export import MIME, answer_items, export
from .render import document_blocks, document_outline, example_questions, highlight_html
from .server import serve
from .jobs import doc_state, public_job
from .uploads import UploadNameError, allowed_extensions, check_extension, sanitize_filename

logger = logging.getLogger(__name__)

__all__ = ["create_app", "serve"]

MODE_LABELS = {"hybrid": "综合", "keyword": "关键词", "semantic": "语义"}
MODES = {m: MODE_LABELS[m] for m in SEARCH_MODES}  # the modes are defined in indexer.search.query; labels here
MODE_ALIASES = {"综合": "hybrid", "关键词": "keyword", "语义": "semantic", "mixed": "hybrid", "bm25": "keyword",
                "vector": "semantic", "dense": "semantic"}
K_CHOICES = (3, 5, 10, 20)
MAX_K = K_MAX
MAX_BATCH = 100
MAX_BATCH_PAGE = 500  # questions per batch-page upload (searched 32 at a time)
FORMATS = ("json", "csv", "docx")
DELETE_WAIT_S = 2.0  # DELETE answers 200 when its job ends within this (?wait=), else 202 with the job to poll
MAX_WAIT_S = 30.0
DEFAULT_JOBS, MAX_JOBS = 20, 100  # GET /api/jobs: newest first
COUNT_DEPTH = 100  # candidates counted per document when the engine gives no doc_counts
EXAMPLE_DOCS = 12  # documents read to derive example questions
MAX_NAME_QUERY = 200  # characters of a document-name filter (?q= of /documents and /api/documents)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


class SafeJSONProvider(DefaultJSONProvider):
    """JSON with Chinese kept readable and ``<`` written as ``\\u003c``, so no response byte can open an HTML tag."""

    ensure_ascii = False
    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """Serialise like Flask, then escape ``<`` (valid JSON, same decoded value: ``<`` only occurs in strings)."""
        return super().dumps(obj, **kwargs).replace("<", "\\u003c")


class _State:
    """Per-app shared objects: the engine, settings, and a small cache of example questions."""

    def __init__(self, engine: Any, config: Config):
        self.engine = engine
        self.config = config
        self.admin_token = config.admin_token or os.environ.get("PARTYQA_ADMIN_TOKEN", "")
        self.examples_lock = threading.Lock()
        self.examples_key: Any = None
        self.examples: list[str] = []
        self.catalog = CatalogCache()


def _state(app: Flask | None = None) -> _State:
    from flask import current_app

    return (app or current_app).extensions["partyqa"]


# ---------------------------------------------------------------------------- parameter parsing
def parse_mode(value: Any, default: str) -> str:
    """A search mode from a request value (English name or Chinese label); ApiError 400 when unknown."""
    if value is None or value == "":
        return default
    mode = MODE_ALIASES.get(str(value).strip(), str(value).strip().lower())
    if mode not in MODES:
        raise ApiError(400, f"未知的检索方式“{value}”，可选：hybrid（综合）、keyword（关键词）、semantic（语义）。",
                       f"unknown mode {value!r}; use hybrid, keyword or semantic", code="bad_mode")
    return mode


def parse_k(value: Any, default: int) -> int:
    """Number of results from a request value; ApiError 400 unless an integer in 1..MAX_K."""
    if value is None or value == "":
        return default
    try:
        k = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        k = None
    if k is None or not K_MIN <= k <= MAX_K:
        raise ApiError(400, f"结果数量 k 必须是 {K_MIN} 到 {MAX_K} 之间的整数。",
                       f"k must be an integer between {K_MIN} and {MAX_K}", code="bad_k")
    return k


def check_question(question: Any, max_chars: int, label: str = "") -> str:
    """The question with whitespace collapsed; ApiError 400 when missing, empty or too long."""
    if not isinstance(question, str):
        raise ApiError(400, f"{label}问题必须是文本。", f"{label or 'the '}question must be a string",
                       code="bad_question")
    q = " ".join(question.split())
    if not q:
        raise ApiError(400, f"{label}问题为空，请输入要查询的问题。", f"{label or 'the '}question is empty",
                       code="empty_question")
    if len(q) > max_chars:
        raise ApiError(400, f"{label}问题过长（{len(q)} 字），请控制在 {max_chars} 字以内。",
                       f"{label or 'the '}question is too long ({len(q)} characters, max {max_chars})",
                       code="question_too_long")
    return q


def parse_format(value: Any, allowed: Sequence[str] = FORMATS) -> str:
    """An output format (json, csv, docx); ApiError 400 when unknown."""
    fmt = str(value or "json").strip().lower()
    if fmt not in allowed:
        raise ApiError(400, f"不支持的导出格式“{value}”，可选：{'、'.join(allowed)}。",
                       f"unknown format {value!r}; use one of {', '.join(allowed)}", code="bad_format")
    return fmt


def parse_docs(values: Any, known: Iterable[str] | Callable[[], Iterable[str]] | Catalog) -> list[str] | None:
    """The document filter: doc ids, where a folder (``规章/`` or ``规章``) selects every document under it.

    None means no filter; an id that matches nothing is ApiError 400 naming it. ``known`` may be a function
    giving the ids, called only when there is a filter, or the app's :class:`Catalog`.
    """
    values = _doc_values(values)
    if values is None:
        return None
    if callable(known):
        known = known()
    if isinstance(known, Catalog):
        chosen, _, unknown = known.resolve(values)
    else:
        plain = sorted(known)
        chosen, _, unknown = resolve_docs(values, plain, set(plain))
    _refuse_unknown(unknown)
    return chosen or None


def _doc_values(values: Any) -> list[Any] | None:
    """A document filter's raw values as a list (None: no filter); ApiError 400 when not text or a list."""
    if values is None or values == "" or values == []:
        return None
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)):
        raise ApiError(400, "文档筛选 doc 必须是文档编号或其列表。", "doc must be a document id or a list of them",
                       code="bad_doc")
    return list(values)


def _refuse_unknown(unknown: Sequence[str]) -> None:
    if unknown:
        names = "、".join(unknown[:5])
        raise ApiError(400, f"未找到文档：{names}（见文档列表）。", f"unknown document id(s): {', '.join(unknown[:5])}",
                       code="unknown_document")


def parse_count(value: Any, name: str, low: int, high: int | None = None) -> int | None:
    """A non-negative integer query parameter (``limit``, ``offset``, ``page``); None when absent, ApiError 400
    unless an integer in ``low..high``."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    n = int(text) if re.fullmatch(r"\d{1,12}", text) else None
    if n is None or n < low or (high is not None and n > high):
        span = f"{low} 到 {high} 之间" if high is not None else f"不小于 {low} "
        span_en = f"between {low} and {high}" if high is not None else f"of at least {low}"
        raise ApiError(400, f"{name} 必须是{span}的整数。", f"{name} must be an integer {span_en}", code=f"bad_{name}")
    return n


# ---------------------------------------------------------------------------- helpers
def _doc_url(doc_id: str, ordinal: int | None = None, q: str = "", hl: Sequence[int] | None = None) -> str:
    """Link to the document view, scrolled to passage ``ordinal`` (with the answer span ``hl`` highlighted)."""
    params: dict[str, Any] = {}
    if ordinal is not None:
        params["p"] = ordinal
    if q:
        params["q"] = q
    if hl:
        params["hl"] = f"{int(hl[0])}-{int(hl[1])}"
    url = url_for("doc_page", doc_id=doc_id, **params)
    return f"{url}#p-{ordinal}" if ordinal is not None else url


def _ordinal_of(pid: Any) -> int | None:
    """The passage ordinal in a pid ``doc_id#ordinal``."""
    try:
        return int(str(pid).rsplit("#", 1)[1])
    except (IndexError, ValueError):
        return None


def _decorate(hit: dict[str, Any], q: str, answer_found: bool) -> dict[str, Any]:
    """Add what the results page shows: highlighted HTML, links (with the answer span), citation, folded copies."""
    text = hit.get("text", "")
    span = hit.get("best_span") if answer_found else None
    hit["html"] = highlight_html(text, hit.get("highlights"), span)
    hit["citation"] = hit.get("citation") or citation(hit)
    hl = None
    if span:
        try:
            hl = (int(hit["start"]) + int(span[0]), int(hit["start"]) + int(span[1]))
        except (KeyError, TypeError, ValueError, IndexError):
            hl = None
    hit["href"] = _doc_url(hit["doc_id"], hit.get("ordinal"), q, hl)
    hit["copy_text"] = f"{hit['citation']}\n{text}"
    hit["also_views"] = [{**a, "citation": a.get("citation") or citation(a),
                          "href": _doc_url(a.get("doc_id", ""), _ordinal_of(a.get("pid")), q)}
                         for a in hit.get("also_in") or [] if a.get("doc_id")]
    return hit


def _corpus_root(corpus_dir: Any) -> Path | None:
    """The corpus directory, resolved once per request (not once per document)."""
    if not corpus_dir:
        return None
    try:
        return Path(str(corpus_dir)).resolve()
    except OSError:
        return None


def _public(doc: dict[str, Any], root: Path | None) -> dict[str, Any]:
    """A document record without absolute server paths: ``source`` relative to the corpus ``root`` (from
    :func:`_corpus_root`), or its file name."""
    out = dict(doc)
    src = str(out.get("source") or "")
    if src:
        path = Path(src)
        rel = None
        if root is not None:
            # Sources are stored resolved: a prefix test spares a realpath() per document (GET /api/documents of
            # 7,104 documents: 748 -> 89 ms). A symlinked file now shows its place in the corpus, not only its name.
            prefix = str(root) + os.sep
            if src.startswith(prefix) and ".." not in path.parts:
                rel = path.relative_to(root).as_posix()
            else:
                try:
                    rel = path.resolve().relative_to(root).as_posix()
                except (ValueError, OSError):
                    rel = None
        out["source"] = rel or path.name
    return out


def _section_crumbs(section: str) -> list[str]:
    """A section path such as ``第四章 工作机制 > 第十一条`` as a list of parts."""
    return [s.strip() for s in re.split(r"\s*[>›»]\s*", section or "") if s.strip()]


def _format_date(value: Any) -> str:
    """ISO timestamp → ``2024-05-01 14:30`` (or the raw value when it does not parse)."""
    if not value:
        return ""
    try:
        return _dt.datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(value)


def _size_label(chars: Any) -> str:
    """Document length for people: ``850 字`` / ``1.2 万字``."""
    try:
        n = int(chars)
    except (TypeError, ValueError):
        return ""
    return f"{n} 字" if n < 10000 else f"{n / 10000:.1f} 万字"


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _error_response(err: ApiError) -> Response:
    """A JSON error for /api/*, a friendly Chinese page otherwise."""
    if _is_api():
        resp = jsonify(err.to_dict())
        resp.status_code = err.status
        if err.status == 503:
            resp.headers["Retry-After"] = "5"
        return resp
    html = render_template("error.html", status=err.status, message=err.message_zh, detail=err.message_en)
    return Response(html, status=err.status, mimetype="text/html")


def _same_origin() -> bool:
    """False for browser requests sent by another site (CSRF guard for write endpoints)."""
    if request.headers.get("Sec-Fetch-Site", "") in ("cross-site", "same-site"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # curl, scripts and same-origin navigations without Origin
    return origin != "null" and urlsplit(origin).netloc == request.host


def require_admin() -> None:
    """Refuse cross-site writes, and writes without the right token when PARTYQA_ADMIN_TOKEN is set."""
    if not _same_origin():
        raise ApiError(403, "拒绝来自其他网站的写操作。", "cross-site write requests are refused", code="cross_site")
    expected = _state().admin_token
    if not expected:
        return
    given = request.headers.get("X-Admin-Token", "")
    auth = request.headers.get("Authorization", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not given:
        raise ApiError(401, code="token_required")
    try:  # WSGI hands header bytes over as latin-1 text: recover the bytes, so UTF-8 tokens work too
        given_bytes = given.encode("latin-1")
    except UnicodeEncodeError:
        given_bytes = given.encode("utf-8")
    if not hmac.compare_digest(given_bytes, expected.encode("utf-8")):
        raise ApiError(403, "管理令牌不正确。", "wrong admin token", code="bad_token")


def _json_body() -> Any:
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "请求体必须是 JSON（Content-Type: application/json）。",
                       "the request body must be JSON (Content-Type: application/json)", code="bad_json")
    return data


def _examples(state: _State) -> list[str]:
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


def _stats(state: _State) -> dict[str, Any]:
    try:
        return state.engine.stats()
    except Exception:
        logger.exception("engine.stats failed")
        return {"documents": 0, "passages": 0, "model": ""}


def _doc_counts(engine: Any, q: str, mode: str, hits: Any, filtered: bool = False) -> dict[str, int]:
    """Candidate hits per document for this question: the engine's ``doc_counts``, else a keyword count.

    With a document filter the engine counts only the chosen documents; the picker shows every document's count,
    so an unfiltered search (one hit built) supplies them.
    """
    if filtered:
        try:
            hits = engine.search(q, k=1, mode=mode)
        except PartyQAError:
            return {}
    counts = getattr(hits, "doc_counts", None)
    if counts is not None:
        return {str(d): int(n) for d, n in dict(counts).items()}
    # Fallback (engine without doc_counts): count the documents of a deep keyword search; ~3 ms at 10k passages.
    try:
        deep = engine.search(q, k=COUNT_DEPTH, mode="keyword")
    except PartyQAError:
        return {}
    out: dict[str, int] = {}
    for h in deep:
        out[h["doc_id"]] = out.get(h["doc_id"], 0) + 1
    return out


def _parse_span(value: str) -> tuple[int, int] | None:
    """``"120-168"`` → (120, 168); None when absent or malformed."""
    m = re.fullmatch(r"(\d{1,9})-(\d{1,9})", value or "")
    if not m or int(m.group(1)) >= int(m.group(2)):
        return None
    return int(m.group(1)), int(m.group(2))


def _download(items: list[dict[str, Any]], fmt: str, name: str) -> Response:
    """Answers as an attachment (CSV or Word), named with today's date."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M")
    return send_file(io.BytesIO(export(items, fmt)), mimetype=MIME[fmt], as_attachment=True,
                     download_name=f"{name}-{stamp}.{fmt}")


def _batch_questions(text: str, upload: Any) -> list[str]:
    """Questions pasted one per line, plus those of an uploaded txt / csv / jsonl file."""
    from indexer.questions import read_questions

    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if upload is not None and upload.filename:
        suffix = Path(upload.filename).suffix.lower()
        if suffix not in (".txt", ".csv", ".jsonl"):
            raise ApiError(400, "问题文件须为 txt（每行一个问题）、csv（含 question 列）或 jsonl。",
                           "the question file must be .txt, .csv or .jsonl", code="bad_batch")
        with tempfile.TemporaryDirectory(prefix="partyqa-batch-") as tmp:
            path = Path(tmp) / f"questions{suffix}"
            upload.save(path)
            try:
                lines += [r["question"] for r in read_questions(path)]
            except PartyQAError as err:
                zh, en = split_bilingual(str(err).replace(str(path), upload.filename))
                raise ApiError(400, zh, en, code="bad_batch") from None
    return lines


# ---------------------------------------------------------------------------- the app
def create_app(engine: Any, config: Config | None = None) -> Flask:
    """Build the Flask app serving the search UI and JSON API over ``engine`` (shared by all threads)."""
    cfg = config or getattr(engine, "config", None) or Config.from_env()
    app = Flask(__name__)
    app.json = SafeJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = int(cfg.max_upload_mb) * 1024 * 1024
    app.config["JSON_AS_ASCII"] = False
    # Per app, so a test can list a small index as a big one.
    app.config.update(PICKER_CAP=PICKER_CAP, DOCS_PAGE=DOCS_PAGE)
    state = _State(engine, cfg)
    app.extensions["partyqa"] = state
    app.jinja_env.filters["date"] = _format_date
    app.jinja_env.globals.update(doc_url=_doc_url, modes=MODES, k_choices=K_CHOICES, crumbs=_section_crumbs,
                                 size_label=_size_label, doc_state=doc_state)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"token_required": bool(state.admin_token)}

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        if _is_api():
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    # ------------------------------------------------------------------ errors
    @app.errorhandler(ApiError)
    def _api_error(err: ApiError) -> Response:
        return _error_response(err)

    @app.errorhandler(QueryError)
    def _query_error(err: QueryError) -> Response:
        zh, en = split_bilingual(str(err))
        return _error_response(ApiError(400, zh, en, code="bad_question"))

    @app.errorhandler(ModelError)
    def _model_error(err: ModelError) -> Response:
        logger.error("model error: %s", err)
        return _error_response(ApiError(503, "语义模型不可用，请改用“关键词”检索或检查模型配置。",
                                        f"the embedding model is unavailable: {err}", code="model_unavailable"))

    @app.errorhandler(IndexCorruptError)
    def _damaged(err: IndexCorruptError) -> Response:
        logger.error("%s", err)
        return _error_response(ApiError(503, "索引文件已损坏，请管理员运行 partyqa index --rebuild 重建索引（已缓存的向量会被复用）。",
                                        str(err), code="index_damaged"))

    @app.errorhandler(IndexLockedError)
    def _locked(err: IndexLockedError) -> Response:
        return _error_response(ApiError(503, "索引正在更新，请稍后重试。", str(err), code="index_busy"))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(err: RequestEntityTooLarge) -> Response:
        mb = int(cfg.max_upload_mb)
        return _error_response(ApiError(413, f"上传内容超过 {mb} MB 的上限。",
                                        f"the upload exceeds the {mb} MB limit", code="too_large"))

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        if status == 404 and not _is_api():
            return _error_response(ApiError(404, "页面不存在。", "page not found"))
        return _error_response(ApiError(status))

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return _error_response(ApiError(500))

    # ------------------------------------------------------------------ pages
    @app.get("/")
    def search_page() -> str:
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
        catalog = state.catalog.get(engine)
        folders: list[str] = []
        try:
            values = _doc_values(request.args.getlist("doc")) or []
            chosen, folders, unknown = catalog.resolve(values)
            _refuse_unknown(unknown)
            docs = chosen or None
        except ApiError as err:
            docs, folders, notice = None, [], err.message_zh
        ctx: dict[str, Any] = {"q": q_raw, "mode": mode, "k": k, "notice": notice, "results": None, "error": "",
                               "took_ms": None, "stats": _stats(state), "selected_docs": docs or [],
                               "doc_counts": {}, "answer_found": True}

        def page() -> str:
            ctx["picker"] = build_picker(catalog, docs or [], folders, ctx["doc_counts"] or None,
                                         cap=app.config["PICKER_CAP"])
            return render_template("search.html", **ctx)

        if "q" not in request.args:
            ctx["examples"] = _examples(state)
            return page()
        try:
            q = check_question(q_raw, cfg.max_query_chars)
            t0 = time.perf_counter()
            hits = engine.search(q, k=k, mode=mode, docs=docs)
            ctx["took_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            answer_found = bool(hits.answer_found) and bool(hits)
            for hit in hits:
                _decorate(hit, q, answer_found)
            ctx["results"], ctx["answer_found"] = hits, answer_found
            ctx["doc_counts"] = _doc_counts(engine, q, mode, hits, filtered=bool(docs))
            ctx["export_args"] = {"q": q, "mode": mode, "k": k, "doc": docs or []}
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

    @app.get("/doc/<path:doc_id>")
    def doc_page(doc_id: str) -> str:
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
        return render_template("doc.html", doc=doc, blocks=blocks, outline=document_outline(blocks),
                               chosen=chosen if chosen_passage else None, chosen_passage=chosen_passage,
                               q=request.args.get("q", ""))

    @app.get("/documents")
    def documents_page() -> str:
        exts = sorted(allowed_extensions())
        q = " ".join(request.args.get("q", "").split())[:MAX_NAME_QUERY]
        notice = ""
        try:
            wanted = parse_count(request.args.get("page"), "page", 1) or 1
        except ApiError as err:
            wanted, notice = 1, err.message_zh
        catalog = state.catalog.get(engine)
        ids = catalog.matching(q)
        size = app.config["DOCS_PAGE"]
        page, pages, offset = page_bounds(len(ids), wanted, size)
        return render_template("documents.html", documents=records(engine, catalog, ids[offset:offset + size]),
                               stats=_stats(state), extensions=exts, max_upload_mb=int(cfg.max_upload_mb), q=q,
                               notice=notice, total=len(ids), page=page, pages=pages, offset=offset, page_size=size)

    @app.route("/batch", methods=["GET", "POST"])
    def batch_page() -> Any:
        default_mode = cfg.mode if cfg.mode in MODES else "hybrid"
        ctx: dict[str, Any] = {"mode": default_mode, "k": cfg.k, "text": "", "items": None, "error": "",
                               "skipped": [], "max_questions": MAX_BATCH_PAGE}
        if request.method == "GET":
            return render_template("batch.html", **ctx)
        form = request.form
        try:
            ctx["mode"] = mode = parse_mode(form.get("mode"), default_mode)
            ctx["k"] = k = parse_k(form.get("k"), cfg.k)
            ctx["text"] = form.get("questions", "")
            fmt = parse_format(form.get("format") or "html", ("html", "csv", "docx"))
            lines = _batch_questions(ctx["text"], request.files.get("file"))
            qs, skipped = [], []
            for n, line in enumerate(lines, start=1):
                try:
                    qs.append(check_question(line, cfg.max_query_chars, label=f"第 {n} 个"))
                except ApiError as err:
                    skipped.append(err.message_zh)
            ctx["skipped"] = skipped
            if not qs:
                raise ApiError(400, "没有可检索的问题：请每行输入一个问题，或上传 txt / csv / jsonl 问题文件。",
                               "no questions: one per line, or upload a txt/csv/jsonl file", code="bad_batch")
            if len(qs) > MAX_BATCH_PAGE:
                raise ApiError(400, f"一次最多 {MAX_BATCH_PAGE} 个问题（收到 {len(qs)} 个），请分批提交。",
                               f"at most {MAX_BATCH_PAGE} questions (got {len(qs)})", code="batch_too_large")
            results = [r for i in range(0, len(qs), 32) for r in engine.search_many(qs[i:i + 32], k=k, mode=mode)]
            items = answer_items(qs, results)
        except ApiError as err:
            ctx["error"] = err.message_zh
            return render_template("batch.html", **ctx), err.status
        if fmt != "html":
            return _download(items, fmt, "批量问答结果")
        for item in items:
            for hit in item["hits"]:
                _decorate(hit, item["question"], bool(item["answer_found"]))
        ctx["items"] = items
        return render_template("batch.html", **ctx)

    # ------------------------------------------------------------------ API
    @app.get("/api/health")
    def api_health() -> Response:
        s = state.engine.stats()
        return jsonify({"status": "ok", "documents": s.get("documents", 0), "passages": s.get("passages", 0),
                        "pending_vectors": s.get("pending_vectors", 0), "model": s.get("model", "")})

    @app.route("/api/search", methods=["GET", "POST"])
    def api_search() -> Response:
        if request.method == "POST":
            body = _json_body()
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
        t0 = time.perf_counter()
        hits = engine.search(q, k=k, mode=mode, docs=docs)
        took = round((time.perf_counter() - t0) * 1000, 1)
        if fmt != "json":
            return _download(answer_items([q], [hits]), fmt, "问答结果")
        body = {"question": q, "mode": mode, "k": k, "took_ms": took, **hits.envelope(), "docs": docs,
                "results": hits}
        if getattr(hits, "doc_counts", None) is not None:
            body["doc_counts"] = hits.doc_counts
        return jsonify(body)

    @app.post("/api/batch")
    def api_batch() -> Response:
        body = _json_body()
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
        t0 = time.perf_counter()
        results = engine.search_many(qs, k=k, mode=mode, docs=docs)
        took = round((time.perf_counter() - t0) * 1000, 1)
        if fmt != "json":
            return _download(answer_items(qs, results), fmt, "批量问答结果")
        answers = [{"question": q, **r.envelope()} for q, r in zip(qs, results)]
        return jsonify({"questions": qs, "mode": mode, "k": k, "took_ms": took, "docs": docs, "answers": answers,
                        "results": results})

    @app.get("/api/documents")
    def api_documents() -> Response:
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
        root = _corpus_root(_stats(state).get("corpus_dir"))
        docs = [_public(d, root) for d in records(engine, catalog, shown)]
        body: dict[str, Any] = {"count": len(docs), "total": len(ids), "documents": docs}
        if limit is not None or offset is not None:
            body.update(offset=start, limit=limit)
        return jsonify(body)

    @app.get("/api/documents/<path:doc_id>")
    def api_document(doc_id: str) -> Response:
        try:
            return jsonify(_public(engine.document(doc_id), _corpus_root(_stats(state).get("corpus_dir"))))
        except KeyError:
            raise ApiError(404, f"找不到文档“{doc_id}”。", f"unknown document {doc_id!r}",
                           code="unknown_document") from None

    @app.delete("/api/documents/<path:doc_id>")
    def api_delete(doc_id: str) -> Response:
        require_admin()
        if doc_id not in set(engine.doc_ids()):
            raise ApiError(404, f"找不到文档“{doc_id}”。", f"unknown document {doc_id!r}", code="unknown_document")
        wait = _parse_wait(request.args.get("wait"))
        job = engine.jobs.submit_remove([doc_id])
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

    @app.post("/api/documents")
    def api_upload() -> Response:
        require_admin()
        job, files = _upload(state)
        return _job_response(job, {"files": files})

    @app.get("/api/jobs")
    def api_jobs() -> Response:
        active = request.args.get("active", "").strip().lower() in ("1", "true", "yes")
        try:
            limit = max(1, min(MAX_JOBS, int(request.args.get("limit", "") or DEFAULT_JOBS)))
        except ValueError:
            raise ApiError(400, f"limit 必须是 1 到 {MAX_JOBS} 之间的整数。",
                           f"limit must be an integer between 1 and {MAX_JOBS}", code="bad_limit") from None
        jobs = [public_job(j.to_dict()) for j in engine.jobs.list(active_only=active, limit=limit)]
        return jsonify({"count": len(jobs), "active": sum(1 for j in jobs if j["active"]), "jobs": jobs})

    @app.get("/api/jobs/<job_id>")
    def api_job(job_id: str) -> Response:
        job = engine.jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"找不到任务“{job_id}”（只保留最近结束的任务）。",
                           f"unknown job {job_id!r} (only the most recent finished jobs are kept)", code="unknown_job")
        return jsonify(public_job(job.to_dict()))

    return app


def _parse_wait(value: Any) -> float:
    """Seconds a DELETE waits for its job (``?wait=``, 0 to MAX_WAIT_S; DELETE_WAIT_S when absent)."""
    if value is None or str(value).strip() == "":
        return DELETE_WAIT_S
    try:
        wait = float(str(value).strip())
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= MAX_WAIT_S:
        raise ApiError(400, f"wait 必须是 0 到 {MAX_WAIT_S:g} 之间的秒数。", f"wait must be 0 to {MAX_WAIT_S:g} seconds",
                       code="bad_wait")
    return wait


def _job_response(job: Any, extra: dict[str, Any]) -> Response:
    """202 Accepted with the job and ``Location: /api/jobs/<id>`` (where its progress is polled)."""
    resp = jsonify({**extra, "job": public_job(job.to_dict())})
    resp.status_code = 202
    resp.headers["Location"] = url_for("api_job", job_id=job.id)
    return resp


def _upload(state: _State) -> tuple[Any, list[dict[str, Any]]]:
    """Check and save the uploaded files to a temp dir handed to a queued add job; (job, per-file entries).

    Names, types and empty files are refused here at once (a 4xx when no file is left); what the files contain is
    read by the job, whose per-file outcome ``GET /api/jobs/<id>`` reports.
    """
    files = request.files.getlist("files") + request.files.getlist("file")
    files = [f for f in files if f is not None and (f.filename or f.content_length)]
    if not files:
        raise ApiError(400, "没有收到文件，请在表单字段 files 中上传。", "no files received (multipart field 'files')",
                       code="no_files")
    allowed = allowed_extensions()
    tmp = Path(tempfile.mkdtemp(prefix="partyqa-upload-"))
    try:
        results: list[dict[str, Any]] = []
        saved: dict[str, str] = {}  # sanitised name -> the client's name
        codes: set[str] = set()
        for storage in files:
            original = storage.filename or ""
            try:
                name = sanitize_filename(original)
                check_extension(name, allowed)
                if name in saved:
                    raise UploadNameError("duplicate", "同一次上传中文件名重复。", "duplicate file name in this upload")
                dest = tmp / name
                storage.save(dest)
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
        # The queue copies the files into its spool under the index and deletes ``tmp``.
        job = state.engine.jobs.submit_add(paths, names={str(p): p.name for p in paths}, owned_dir=tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("upload queued as job %s: %s", job.id,
                ", ".join(f"{r['saved_as'] or r['filename']}={r['status']}" for r in results))
    return job, results
