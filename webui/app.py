"""The Flask application: the pages (:mod:`webui.pages`) and the JSON API (:mod:`webui.api`) as two blueprints
over one shared Engine, with the error handlers, security headers and template helpers they share."""
from __future__ import annotations

import datetime as _dt
import logging
import re
from typing import Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from indexer.config import Config
from indexer.index.generations import IndexCorruptError
from indexer.types import IndexLockedError, ModelError, QueryError

from . import api, pages
from .common import State, doc_url, error_response, is_api, ordinal_of, state as _state  # noqa: F401
from .doclist import DOCS_PAGE, PICKER_CAP, natural_key  # noqa: F401 (natural_key re-exported)
from .errors import ApiError, split_bilingual
from .jobs import doc_state
from .uploads import UploadRequest, clear_incoming, incoming_dir
from .params import (FORMATS, K_CHOICES, MAX_BATCH, MAX_BATCH_PAGE, MAX_K, MODE_ALIASES, MODES,  # noqa: F401
                     check_question, parse_count, parse_docs, parse_format, parse_k, parse_mode)


logger = logging.getLogger(__name__)

__all__ = ["create_app"]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


class SafeJSONProvider(DefaultJSONProvider):
    """JSON with Chinese kept readable and ``<`` written as ``\\u003c``, so no response byte can open an HTML tag."""

    ensure_ascii = False
    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """Serialise like Flask, then escape ``<`` (valid JSON, same decoded value: ``<`` only occurs in strings)."""
        return super().dumps(obj, **kwargs).replace("<", "\\u003c")

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


def create_app(engine: Any, config: Config | None = None) -> Flask:
    """Build the Flask app serving the search UI and JSON API over ``engine`` (shared by all threads)."""
    cfg = config or getattr(engine, "config", None) or Config.from_env()
    app = Flask(__name__)
    app.json = SafeJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = int(cfg.max_upload_mb) * 1024 * 1024
    app.config["JSON_AS_ASCII"] = False
    # Per app, so a test can list a small index as a big one.
    app.config.update(PICKER_CAP=PICKER_CAP, DOCS_PAGE=DOCS_PAGE)
    state = State(engine, config)
    app.extensions["partyqa"] = state
    # Upload bodies are spooled into the index folder, once (webui.uploads.SpooledUpload); a killed server's go.
    app.request_class = UploadRequest
    state.incoming = incoming_dir(getattr(engine, "root", None))
    clear_incoming(state.incoming)
    app.jinja_env.filters["date"] = _format_date
    app.jinja_env.globals.update(doc_url=doc_url, modes=MODES, k_choices=K_CHOICES, crumbs=_section_crumbs,
                                 size_label=_size_label, doc_state=doc_state, ordinal_of=ordinal_of)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        from .auth import tokens, user_may

        # a tokens file names users too: the nav's 登录令牌 is shown for it as for the admin token (issue 26); a
        # page renders the controls its user may not use hidden (its script shows them for the kept token's role)
        return {"token_required": bool(state.admin_token) or tokens().configured(), "nav_admin": user_may("admin"),
                "may_edit": user_may("editor")}

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        if is_api():
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    # ------------------------------------------------------------------ errors
    @app.errorhandler(ApiError)
    def _api_error(err: ApiError) -> Response:
        return error_response(err)

    @app.errorhandler(QueryError)
    def _query_error(err: QueryError) -> Response:
        zh, en = split_bilingual(str(err))
        return error_response(ApiError(400, zh, en, code="bad_question"))

    @app.errorhandler(ModelError)
    def _model_error(err: ModelError) -> Response:
        logger.error("model error: %s", err)
        return error_response(ApiError(503, "语义模型不可用，请改用“关键词”检索或检查模型配置。",
                                        f"the embedding model is unavailable: {err}", code="model_unavailable"))

    @app.errorhandler(IndexCorruptError)
    def _damaged(err: IndexCorruptError) -> Response:
        logger.error("%s", err)
        return error_response(ApiError(503, "索引文件已损坏，请管理员运行 partyqa index --rebuild 重建索引（已缓存的向量会被复用）。",
                                        str(err), code="index_damaged"))

    @app.errorhandler(IndexLockedError)
    def _locked(err: IndexLockedError) -> Response:
        return error_response(ApiError(503, "索引正在更新，请稍后重试。", str(err), code="index_busy"))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(err: RequestEntityTooLarge) -> Response:
        mb = int(cfg.max_upload_mb)
        return error_response(ApiError(413, f"上传内容超过 {mb} MB 的上限。",
                                        f"the upload exceeds the {mb} MB limit", code="too_large"))

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        if status == 404 and not is_api():
            return error_response(ApiError(404, "页面不存在。", "page not found"))
        return error_response(ApiError(status))

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError(500))
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    from .curation import bp as curation_bp  # issue 26: passages, standard questions, feedback, audit
    app.register_blueprint(curation_bp)
    from .faq import bp as faq_bp  # issue 26: 问答对 entries (/faq, /api/faq)
    app.register_blueprint(faq_bp)
    from .metadata import bp as metadata_bp  # issue 23: corrections of title, category, dates and status
    app.register_blueprint(metadata_bp)
    from .versions import bp as versions_bp  # issue 23: 版本对照 (/compare, /api/compare)
    app.register_blueprint(versions_bp)
    return app
