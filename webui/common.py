"""What the pages and the API share: the per-app state (engine, settings, caches), links, downloads, error
responses and the same-origin check of writes (the roles are :mod:`webui.auth`'s)."""
from __future__ import annotations

import datetime as _dt
import io
import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, render_template, request, send_file, url_for

from indexer.config import Config

from .doclist import CatalogCache
from .errors import ApiError
from .export import MIME, export

logger = logging.getLogger(__name__)


class State:
    """Per-app shared objects: the engine, settings, and a small cache of example questions."""

    def __init__(self, engine: Any, config: Config | None = None):
        self.engine = engine
        self._config = config  # None: the engine's, whatever it is now (no copy to go stale)
        self.admin_token = self.config.admin_token or os.environ.get("PARTYQA_ADMIN_TOKEN", "")
        self.examples_lock = threading.Lock()
        self.examples_key: Any = None
        self.examples: list[str] = []
        self.catalog = CatalogCache()
        self.incoming: Path | None = None  # where upload bodies are spooled (webui.uploads), set by create_app

    @property
    def config(self) -> Config:
        """The app's settings: the config it was created with, else the engine's (or the environment's)."""
        return self._config or getattr(self.engine, "config", None) or Config.from_env()


def state(app: Flask | None = None) -> State:
    """The app's :class:`State` (the current app's by default)."""
    from flask import current_app

    return (app or current_app).extensions["partyqa"]


def stats(st: State) -> dict[str, Any]:
    """The engine's stats; zero counts (logged) when it cannot tell."""
    try:
        return st.engine.stats()
    except Exception:
        logger.exception("engine.stats failed")
        return {"documents": 0, "passages": 0, "model": ""}


def doc_url(doc_id: str, ordinal: int | None = None, q: str = "", hl: Sequence[int] | None = None) -> str:
    """Link to the document view, scrolled to passage ``ordinal`` (with the answer span ``hl`` highlighted)."""
    params: dict[str, Any] = {}
    if ordinal is not None:
        params["p"] = ordinal
    if q:
        params["q"] = q
    if hl:
        params["hl"] = f"{int(hl[0])}-{int(hl[1])}"
    url = url_for("pages.doc_page", doc_id=doc_id, **params)
    return f"{url}#p-{ordinal}" if ordinal is not None else url


def ordinal_of(pid: Any) -> int | None:
    """The passage ordinal in a pid ``doc_id#ordinal``."""
    try:
        return int(str(pid).rsplit("#", 1)[1])
    except (IndexError, ValueError):
        return None


def corpus_root(corpus_dir: Any) -> Path | None:
    """The corpus directory, resolved once per request (not once per document)."""
    if not corpus_dir:
        return None
    try:
        return Path(str(corpus_dir)).resolve()
    except OSError:
        return None


def public_doc(doc: dict[str, Any], root: Path | None) -> dict[str, Any]:
    """A document record without absolute server paths: ``source`` relative to the corpus ``root`` (from
    :func:`corpus_root`), or its file name."""
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


def is_api() -> bool:
    """True for a request to the JSON API (/api/...)."""
    return request.path.startswith("/api/")


def error_response(err: ApiError) -> Response:
    """A JSON error for /api/*, a friendly Chinese page otherwise."""
    if is_api():
        resp = jsonify(err.to_dict())
        resp.status_code = err.status
        if err.status == 503:
            resp.headers["Retry-After"] = "5"
        return resp
    html = render_template("error.html", status=err.status, message=err.message_zh, detail=err.message_en)
    return Response(html, status=err.status, mimetype="text/html")


def same_origin() -> bool:
    """False for browser requests sent by another site (CSRF guard for write endpoints)."""
    if request.headers.get("Sec-Fetch-Site", "") in ("cross-site", "same-site"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # curl, scripts and same-origin navigations without Origin
    return origin != "null" and urlsplit(origin).netloc == request.host


def download(items: list[dict[str, Any]], fmt: str, name: str, meta: dict[str, Any] | None = None) -> Response:
    """Answers as an attachment (CSV, Excel or Word, the latter two recording ``meta``: mode, k, docs), named with
    today's date."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M")
    return send_file(io.BytesIO(export(items, fmt, meta)), mimetype=MIME[fmt], as_attachment=True,
                     download_name=f"{name}-{stamp}.{fmt}")
