"""Request parameters of the pages and the API: modes, k, questions, formats, document filters, counts.

The rules are the search's own (:mod:`indexer.search.query`: modes, the k range, what a question must hold); this module
only reads request values and turns a refusal into an :class:`~webui.errors.ApiError` with a code and a Chinese and
an English message."""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Sequence

from flask import request

from indexer.search.query import K_MAX, K_MIN, check_k, check_mode
from indexer.search.query import MODES as SEARCH_MODES
from indexer.search.query import SHARE_NAMES, check_share
from indexer.search.query import check_question as _check_question
from indexer.types import QueryError

from .doclist import Catalog, resolve_docs
from .errors import ApiError

MODE_LABELS = {"hybrid": "综合", "keyword": "关键词", "semantic": "语义"}
MODES = {m: MODE_LABELS[m] for m in SEARCH_MODES}  # the modes are defined in indexer.search.query; labels here
MODE_ALIASES = {"综合": "hybrid", "关键词": "keyword", "语义": "semantic", "mixed": "hybrid", "bm25": "keyword",
                "vector": "semantic", "dense": "semantic"}
K_CHOICES = (3, 5, 10, 20)
MAX_K = K_MAX
MAX_BATCH = 100
MAX_BATCH_PAGE = 500  # questions per batch-page upload (searched 32 at a time)
FORMATS = ("json", "csv", "xlsx", "docx")
PAGE_FORMATS = ("html", "csv", "xlsx", "docx")
DELETE_WAIT_S = 2.0  # DELETE answers 200 when its job ends within this (?wait=), else 202 with the job to poll
MAX_WAIT_S = 30.0
MAX_NAME_QUERY = 200  # characters of a document-name filter (?q= of /documents and /api/documents)


def parse_mode(value: Any, default: str) -> str:
    """A search mode from a request value (English name or Chinese label); ApiError 400 when unknown."""
    if value is None or value == "":
        return default
    try:
        return check_mode(MODE_ALIASES.get(str(value).strip(), str(value).strip().lower()))
    except QueryError:
        raise ApiError(400, f"未知的检索方式“{value}”，可选：hybrid（综合）、keyword（关键词）、semantic（语义）。",
                       f"unknown mode {value!r}; use hybrid, keyword or semantic", code="bad_mode") from None


def parse_k(value: Any, default: int) -> int:
    """Number of results from a request value; ApiError 400 unless an integer in K_MIN..K_MAX."""
    if value is None or value == "":
        return default
    try:
        return check_k(int(str(value).strip()) if not isinstance(value, bool) else value)
    except (QueryError, ValueError):
        raise ApiError(400, f"结果数量 k 必须是 {K_MIN} 到 {MAX_K} 之间的整数。",
                       f"k must be an integer between {K_MIN} and {MAX_K}", code="bad_k") from None


def parse_share(value: Any, name: str) -> float | None:
    """A retrieval-test knob from a request value (``semantic_weight``, ``min_confidence``: a number from 0 to 1,
    as text or JSON); None when absent, ApiError 400 (``bad_<name>``) otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value.strip()) if isinstance(value, str) else value
        return check_share(number, name)
    except (QueryError, ValueError):
        raise ApiError(400, f"{SHARE_NAMES[name]}必须是 0 到 1 之间的数，例如 0.5。",
                       f"{name} must be a number from 0 to 1, such as 0.5", code=f"bad_{name}") from None


def check_question(question: Any, max_chars: int, label: str = "") -> str:
    """The question as the search takes it (:func:`indexer.search.query.check_question`); ApiError 400 with the search's
    own reason (``label`` such as ``第 2 个`` in front) when it is not text, empty, symbols only or too long."""
    try:
        return _check_question(question, max_chars)
    except QueryError as err:
        zh, _, en = (part.strip() for part in str(err).partition(" / "))
        code = "question_too_long" if "过长" in zh else "empty_question" if "为空" in zh else "bad_question"
        raise ApiError(400, f"{label}{zh}。", f"{label} {en or zh}".strip(), code=code) from None


def parse_format(value: Any, allowed: Sequence[str] = FORMATS) -> str:
    """An output format (json, csv, xlsx, docx); ApiError 400 when unknown."""
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
    values = doc_values(values)
    if values is None:
        return None
    if callable(known):
        known = known()
    if isinstance(known, Catalog):
        chosen, _, unknown = known.resolve(values)
    else:
        plain = sorted(known)
        chosen, _, unknown = resolve_docs(values, plain, set(plain))
    refuse_unknown(unknown)
    return chosen or None


def doc_values(values: Any) -> list[Any] | None:
    """A document filter's raw values as a list (None: no filter); ApiError 400 when not text or a list."""
    if values is None or values == "" or values == []:
        return None
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)):
        raise ApiError(400, "文档筛选 doc 必须是文档编号或其列表。", "doc must be a document id or a list of them",
                       code="bad_doc")
    return list(values)


def refuse_unknown(unknown: Sequence[str]) -> None:
    """ApiError 400 naming (up to five of) the unknown document ids, if any."""
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


def json_body() -> Any:
    """The request's JSON body; ApiError 400 when it is not JSON."""
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "请求体必须是 JSON（Content-Type: application/json）。",
                       "the request body must be JSON (Content-Type: application/json)", code="bad_json")
    return data


def parse_wait(value: Any) -> float:
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
