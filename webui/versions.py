"""版本对照 (issue 23): one article beside its counterpart in every indexed version of its regulation.

A blueprint: ``app.register_blueprint(versions.bp)`` adds

* ``GET /compare?doc=<doc_id>&article=<第七条 | 7>``: the page, one column per version (newest first), each
  version's text with the differences against the asked article marked (<ins> added, <del> removed);
* ``GET /api/compare?doc=&article=``: the same as JSON, ``{"doc_id", "regulation", "article", "versions": [{"doc_id",
  "regulation", "year", "version_label", "version_status", "asked", "article", "pid", "citation", "similarity",
  "text", "segments": [{"kind": "same" | "added" | "removed", "text"}]}]}``.

Link to it from a hit (``/compare?doc={{hit.doc_id}}&article=<its 第X条>``) and from the document view.
"""
from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, jsonify, render_template, request, url_for

from indexer.search.compare import article_versions

from .common import state
from .errors import ApiError

bp = Blueprint("versions", __name__)

_ARTICLE = re.compile(r"第([一二三四五六七八九十百千零〇两\d]+)条")


def compare_href(doc_id: str, *texts: Any) -> str | None:
    """The /compare link for the first 第X条 named in ``texts`` (a citation, a section, a passage's start)."""
    for text in texts:
        found = _ARTICLE.search(str(text or "")[:80])
        if found:
            return url_for("versions.compare_page", doc=doc_id, article=found.group(0))
    return None


def _result(api: bool) -> dict[str, Any]:
    doc_id = request.args.get("doc", "").strip()
    article = request.args.get("article", "").strip()
    if not doc_id or not article:
        raise ApiError(400, "请指定文档（doc）和条款（article，如“第七条”）。",
                       "give the document (doc) and the article (article, e.g. 第七条 or 7)", code="bad_compare")
    engine = state().engine
    try:
        result = article_versions(engine, doc_id, article)
    except KeyError:
        raise ApiError(404, f"找不到文档“{doc_id}”。", f"unknown document {doc_id!r}",
                       code="unknown_document") from None
    if result is None:
        raise ApiError(404, f"文档“{doc_id}”中没有“{article}”。", f"{doc_id!r} has no article {article!r}",
                       code="unknown_article")
    return result


@bp.get("/api/compare")
def api_compare() -> Any:
    """The article across the indexed versions, as JSON."""
    return jsonify(_result(api=True))


@bp.get("/compare")
def compare_page() -> str:
    """The 版本对照 page."""
    return render_template("compare.html", result=_result(api=False))
