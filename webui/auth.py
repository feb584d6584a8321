"""Named users with roles (issue 26): reader < editor < admin, from a tokens file (``PARTYQA_TOKENS_FILE``), the
environment (``PARTYQA_TOKENS``, :func:`parse_env_tokens`) and the single ``PARTYQA_ADMIN_TOKEN`` (an admin named
"admin").

The tokens file is JSON -- ``[{"token", "role", "name"}, ...]``, ``{"tokens": [...]}`` or ``{token: {"role",
"name"}}`` -- or text lines ``token role name`` (``#`` starts a comment). With no token configured, every request
acts as the local user "local" (today's single-user behaviour). With tokens, a request names its user by
``Authorization: Bearer <token>`` or ``X-Admin-Token``; a route asks for a role with :func:`require` (or the
:func:`requires` decorator), which answers the user's name, and the user is then the one audited writes record.

Readers search; editors upload, disable, enable and link; admins also delete, edit status and read the audit log.
"""
from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from flask import g, request

from indexer.index.journal import LOCAL_USER, acting_as, record
from indexer.types import PartyQAError

from .common import same_origin, state
from .errors import ApiError

logger = logging.getLogger(__name__)

ROLES = ("reader", "editor", "admin")
ROLE_NAMES = {"reader": "读者", "editor": "编辑", "admin": "管理员"}
ANONYMOUS = "anonymous"  # a request without a token on a server with tokens (may search and give feedback)


class TokensError(PartyQAError):
    """The tokens file cannot be read (bad JSON, unknown role, a line without a token and role)."""


@dataclass(frozen=True)
class User:
    """A named user and their role."""

    name: str
    role: str

    def can(self, role: str) -> bool:
        """True when this user's role is ``role`` or above."""
        return ROLES.index(self.role) >= ROLES.index(role)


def parse_tokens(text: str, source: str = "tokens file") -> dict[str, User]:
    """Token -> User from the text of a tokens file (JSON or ``token role name`` lines)."""
    entries: list[tuple[str, str, str]] = []
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise TokensError(f"{source} 不是有效的 JSON：{exc} / {source} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and isinstance(data.get("tokens"), list):
            data = data["tokens"]
        if isinstance(data, dict):
            data = [{"token": t, **(v if isinstance(v, dict) else {"role": v})} for t, v in data.items()]
        for item in data:
            if not isinstance(item, dict):
                raise TokensError(f"{source}: 每一项须为对象 / every entry must be an object")
            entries.append((str(item.get("token") or ""), str(item.get("role") or ""), str(item.get("name") or "")))
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 2)
            if len(parts) < 2:
                raise TokensError(f"{source} 第 {n} 行应为“令牌 角色 名字” / {source} line {n}: expected "
                                  f"'token role name'")
            entries.append((parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
    return _users(entries, source)


ENV_TOKENS = "PARTYQA_TOKENS"
_ENV_SEPARATORS = re.compile(r"[,;\n，；]")


def parse_env_tokens(text: str, source: str = ENV_TOKENS) -> dict[str, User]:
    """Token -> User from ``PARTYQA_TOKENS``: entries ``name:role:token`` separated by ``,`` / ``;`` / new lines
    (``张三:editor:tok1,李四:reader:tok2``), or the tokens file's JSON; the same roles and checks as the file."""
    if text.strip().startswith(("{", "[")):
        return parse_tokens(text, source)
    entries: list[tuple[str, str, str]] = []
    for n, item in enumerate(_ENV_SEPARATORS.split(text), start=1):
        item = item.strip()
        if not item:
            continue
        parts = [part.strip() for part in item.split(":", 2)]
        if len(parts) < 3 or not parts[2]:
            raise TokensError(f"{source} 第 {n} 项应为“名字:角色:令牌”（多项用逗号分隔） / {source} entry {n}: "
                              f"expected 'name:role:token' (entries separated by commas)")
        entries.append((parts[2], parts[1], parts[0]))
    if not entries:
        raise TokensError(f"{source} 为空：应为“名字:角色:令牌”，多项用逗号分隔 / {source} is empty: expected "
                          f"'name:role:token' entries separated by commas")
    return _users(entries, source)


def _users(entries: list[tuple[str, str, str]], source: str) -> dict[str, User]:
    """Token -> User from (token, role, name) entries; TokensError for an unknown role or an empty token."""
    out: dict[str, User] = {}
    for token, role, name in entries:
        role = role.lower()
        if not token or role not in ROLES:
            raise TokensError(f"{source}: 角色须为 {'/'.join(ROLES)}，且令牌不能为空（收到 {role!r}） / role must be one "
                              f"of {', '.join(ROLES)} and the token non-empty (got role {role!r})")
        out[token] = User(name or f"{role}-{len(out) + 1}", role)
    return out


class Tokens:
    """The configured tokens, re-read when the tokens file changes."""

    def __init__(self, path: str | None, admin_token: str | None, env_tokens: str | None = None):
        self.path = Path(path) if path else None
        self.admin_token = admin_token or ""
        self.env_tokens = env_tokens or ""  # PARTYQA_TOKENS' value
        self._lock = threading.Lock()
        self._sig: Any = None
        self._users: dict[str, User] = {}

    def users(self) -> dict[str, User]:
        """Token -> User (the tokens file's, then PARTYQA_TOKENS', then the admin token's; a token listed twice keeps
        its first user)."""
        with self._lock:
            sig = None
            if self.path is not None:
                try:
                    st = self.path.stat()
                    sig = (st.st_mtime_ns, st.st_size)
                except OSError as exc:
                    raise TokensError(f"读不到令牌文件 {self.path}：{exc} / cannot read the tokens file {self.path}: "
                                      f"{exc}") from None
            if sig != self._sig or not self._users:
                users = parse_tokens(self.path.read_text("utf-8-sig"), str(self.path)) if self.path else {}
                if self.env_tokens:
                    for token, user in parse_env_tokens(self.env_tokens).items():
                        users.setdefault(token, user)
                if self.admin_token:
                    users.setdefault(self.admin_token, User("admin", "admin"))
                self._users, self._sig = users, sig
            return self._users

    def configured(self) -> bool:
        """True when any token is configured."""
        return bool(self.path) or bool(self.env_tokens) or bool(self.admin_token)

    def lookup(self, given: str) -> User | None:
        """The user of a token (constant-time comparisons), None when unknown."""
        given_b = _header_bytes(given)
        found = None
        for token, user in self.users().items():
            if hmac.compare_digest(given_b, token.encode("utf-8")):
                found = user
        return found


def _header_bytes(value: str) -> bytes:
    try:  # WSGI hands header bytes over as latin-1 text: recover the bytes, so UTF-8 tokens work too
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def tokens() -> Tokens:
    """The current app's tokens (created on first use from PARTYQA_TOKENS_FILE, PARTYQA_TOKENS and the admin
    token)."""
    st = state()
    found = getattr(st, "tokens", None)
    if found is None:
        found = Tokens(os.environ.get("PARTYQA_TOKENS_FILE") or None, st.admin_token, os.environ.get(ENV_TOKENS))
        st.tokens = found
    return found


def given_token() -> str:
    """The token a request carries (``X-Admin-Token`` or ``Authorization: Bearer``), else ""."""
    given = request.headers.get("X-Admin-Token", "")
    auth = request.headers.get("Authorization", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return given


def current_user() -> User:
    """The request's user: local admin without tokens, anonymous reader without a token, else the token's user
    (ApiError 403 for an unknown token)."""
    cached = g.get("partyqa_user")
    if cached is not None:
        return cached
    toks = tokens()
    if not toks.configured():
        user = User(LOCAL_USER, "admin")
    else:
        given = given_token()
        if not given:
            user = User(ANONYMOUS, "reader")
        else:
            try:
                found = toks.lookup(given)
            except TokensError as exc:
                logger.error("%s", exc)
                raise ApiError(503, "令牌配置无法读取，请管理员检查 PARTYQA_TOKENS_FILE 或 PARTYQA_TOKENS。", str(exc),
                               code="tokens_unreadable") from None
            if found is None:
                raise ApiError(403, "令牌不正确。", "unknown token", code="bad_token")
            user = found
    g.partyqa_user = user
    return user


def user_may(role: str) -> bool:
    """Whether the request's user has ``role`` (False for an unknown token or an unreadable tokens file): what a
    page shows, never what it allows (that is :func:`require`)."""
    try:
        return current_user().can(role)
    except ApiError:
        return False


def require(role: str) -> str:
    """Refuse the request unless its user has ``role`` (or above) -- 401 without a token, 403 with a lesser role --
    and, for writes, unless it comes from this site; the user's name (what the audit log records)."""
    if request.method not in ("GET", "HEAD", "OPTIONS") and not same_origin():
        raise ApiError(403, "拒绝来自其他网站的写操作。", "cross-site write requests are refused", code="cross_site")
    user = current_user()
    if not user.can(role):
        if user.name == ANONYMOUS:
            raise ApiError(401, f"需要{ROLE_NAMES[role]}令牌。", f"this needs an {role} token", code="token_required")
        raise ApiError(403, f"{user.name}（{ROLE_NAMES[user.role]}）无权执行此操作，需要{ROLE_NAMES[role]}权限。",
                       f"{user.name} ({user.role}) may not do this: it needs the {role} role", code="forbidden")
    return user.name


def requires(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator form of :func:`require`: the view runs with its user as the actor of audited writes."""
    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            name = require(role)
            with acting_as(name):
                return view(*args, **kwargs)
        return inner
    return wrap


def audit(action: str, target: Any, job: str | None = None, **detail: Any) -> str:
    """Record a write of this request in ``<index>/audit.jsonl`` with the request's user, for routes whose write
    runs as a queued job (upload: ``audit("upload", names, job=job_id)``, delete: ``audit("delete", ids, job=...)``):
    the result is ``queued`` (the job record says how it ended) or ``ok`` without a job. Returns the user's name."""
    name = current_user().name
    record(Path(state().engine.root), action, target, who=name, job=job, result="queued" if job else "ok", **detail)
    return name


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, allow_anonymous_writes: bool = False, admin_token: str = "") -> None:
    """Refuse to serve on a non-loopback address with no token configured (anyone on the network could write),
    unless ``allow_anonymous_writes``; refuse a tokens file or a PARTYQA_TOKENS value that cannot be read. Raises
    PartyQAError (bilingual)."""
    path, env = os.environ.get("PARTYQA_TOKENS_FILE"), os.environ.get(ENV_TOKENS)
    if path or env:
        Tokens(path, admin_token, env).users()  # a missing or bad tokens file / value stops the server now
    if is_loopback(host) or allow_anonymous_writes:
        return
    if admin_token or path or env or os.environ.get("PARTYQA_ADMIN_TOKEN"):
        return
    raise PartyQAError(f"拒绝在 {host} 上无令牌服务：网络上的任何人都能上传、删除和修改。请设置 PARTYQA_TOKENS_FILE（令牌 角色 "
                       f"名字）、PARTYQA_TOKENS（名字:角色:令牌,…）或 PARTYQA_ADMIN_TOKEN，或加 --allow-anonymous-writes / refusing to serve on {host} "
                       f"without tokens: anyone on the network could upload, delete and edit. Set "
                       f"PARTYQA_TOKENS_FILE (lines 'token role name'), PARTYQA_TOKENS ('name:role:token,...') or "
                       f"PARTYQA_ADMIN_TOKEN, or pass "
                       f"--allow-anonymous-writes")
