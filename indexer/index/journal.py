"""Append-only logs in the index folder (issue 26): ``audit.jsonl`` (who wrote what, when, in which job) and
``feedback.jsonl`` (有用 / 没用 on a result), both local files that are never sent anywhere.

Each record is one JSON line, appended with one ``write`` under a file lock (``<log>.lock``, filelock: threads and
processes) and fsynced. A line a kill cut short is skipped by the readers, so the files stay readable.

An audited write is two lines with one ``id``: ``begin`` before the change, ``end`` (``ok`` or ``failed`` with the
error) after it. A write killed in between leaves a ``begin`` without an ``end``: :func:`read_audit` shows it as
``unfinished`` (its change either committed whole or not at all: every write is one generation switch).

Every write of the Python API is audited where it is made (the :class:`indexer.engine.Engine` and
:class:`indexer.curator.Curator` methods, :mod:`indexer.faq`), as the current actor ("local" unless
:func:`acting_as` names someone), so the CLI, the web routes and a script are recorded alike. A write inside
another audited write (an import's add, ``import_dir``'s index) is part of it: one entry, the outer one. A queued
job's writes are :func:`covered` (the route that queued it recorded the request with its user and job id).
"""
from __future__ import annotations

import contextvars
import datetime as _dt
import json
import logging
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import filelock

from indexer.types import PartyQAError

logger = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"
FEEDBACK_FILE = "feedback.jsonl"
LOCAL_USER = "local"  # who writes when no tokens are configured
MAX_FIELD_CHARS = 500
GOLD_TEXT_CHARS = 40  # how much of a useful passage's text an exported pair keeps as its gold_text

# Who is acting in this thread / request (the web layer and the CLI set it; the engine's audit lines read it).
_actor: contextvars.ContextVar[str] = contextvars.ContextVar("partyqa_actor", default=LOCAL_USER)
# True inside an audited write (or a covered block): a write made there is part of it and adds no entry.
_covered: contextvars.ContextVar[bool] = contextvars.ContextVar("partyqa_audit_covered", default=False)


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


@contextmanager
def acting_as(user: str) -> Iterator[None]:
    """Attribute the audited writes inside the block to ``user``."""
    token = _actor.set(user or LOCAL_USER)
    try:
        yield
    finally:
        _actor.reset(token)


@contextmanager
def covered() -> Iterator[None]:
    """Writes inside the block add no audit entry: their caller has recorded them (a queued job, whose route
    recorded the request)."""
    token = _covered.set(True)
    try:
        yield
    finally:
        _covered.reset(token)


def current_actor() -> str:
    """The user writes are attributed to here ("local" unless :func:`acting_as` says otherwise)."""
    return _actor.get()


def append(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line to ``path`` under its file lock, fsynced (safe across threads and processes)."""
    line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(path) + ".lock", is_singleton=False, thread_local=False):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size:
                # a line cut short by a kill must not swallow this record: start it on a line of its own
                with open(path, "rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL log (none when it does not exist); lines cut short or unreadable are skipped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            logger.warning("%s line %d is unreadable (cut short by a kill?): skipped", path, n)
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


# ------------------------------------------------------------------ audit
@contextmanager
def audited(root: Path, action: str, target: Any, who: str | None = None, job: str | None = None,
            **detail: Any) -> Iterator[dict[str, Any]]:
    """Log an audited write: a ``begin`` line now, an ``end`` line (``ok``, or ``failed`` with the error) after
    the block. The yielded dict's items are added to the ``end`` line (e.g. the job id, what changed). Inside
    another audited write or a :func:`covered` block nothing is logged (the write is part of the outer one)."""
    if _covered.get():
        yield {}
        return
    rid = uuid.uuid4().hex[:12]
    append(root / AUDIT_FILE, {"id": rid, "phase": "begin", "at": _now(), "who": who or current_actor(),
                               "action": action, "target": target, "job": job, **detail})
    extra: dict[str, Any] = {}
    token = _covered.set(True)
    try:
        yield extra
    except BaseException as exc:
        append(root / AUDIT_FILE, {"id": rid, "phase": "end", "at": _now(), "result": "failed",
                                   "error": str(exc)[:MAX_FIELD_CHARS], **extra})
        raise
    finally:
        _covered.reset(token)
    append(root / AUDIT_FILE, {"id": rid, "phase": "end", "at": _now(), "result": "ok", **extra})


def record(root: Path, action: str, target: Any, who: str | None = None, job: str | None = None,
           result: str = "ok", **detail: Any) -> None:
    """Log a write that is already done (or a queued job) in one line."""
    append(root / AUDIT_FILE, {"id": uuid.uuid4().hex[:12], "phase": "once", "at": _now(),
                               "who": who or current_actor(), "action": action, "target": target, "job": job,
                               "result": result, **detail})


def read_audit(root: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The audit log, newest first: one entry per write with ``who``, ``action``, ``target``, ``job``, ``at``
    (begin), ``ended_at`` and ``result`` (``ok``, ``failed``, ``queued`` or ``unfinished``: begun, never ended --
    still running, or killed)."""
    entries: dict[str, dict[str, Any]] = {}
    for rec in read_lines(root / AUDIT_FILE):
        rid = rec.get("id")
        if not rid:
            continue
        phase = rec.get("phase")
        if phase in ("begin", "once"):
            entry = {k: v for k, v in rec.items() if k != "phase"}
            entry.setdefault("result", "unfinished")
            entries[rid] = entry
        elif phase == "end" and rid in entries:
            end = {k: v for k, v in rec.items() if k not in ("phase", "id", "at")}
            entries[rid].update(end, ended_at=rec.get("at"))
    out = list(entries.values())[::-1]
    return out[:limit] if limit else out


# ------------------------------------------------------------------ feedback
class FeedbackError(PartyQAError):
    """Feedback that cannot be stored (no question, unknown passage, useful not a boolean); bilingual message."""


def add_feedback(root: Path, question: Any, pid: Any, useful: Any, mode: Any = None, passage: Any = None,
                 who: str | None = None) -> dict[str, Any]:
    """Append one 有用 / 没用 judgement; ``passage`` (the Passage the pid names now) supplies doc id, title and
    the text an export needs. Returns the stored record."""
    if not isinstance(question, str) or not question.strip():
        raise FeedbackError("反馈缺少问题 / feedback needs the question")
    if not isinstance(useful, bool):
        raise FeedbackError("useful 必须是 true 或 false / useful must be true or false")
    if passage is None:
        raise FeedbackError(f"找不到段落 {pid} / unknown passage id {pid!r}")
    rec = {"at": _now(), "who": who or current_actor(), "question": " ".join(question.split())[:MAX_FIELD_CHARS],
           "pid": str(pid), "doc_id": passage.doc_id, "title": passage.title, "section": passage.section,
           "text": passage.text[:MAX_FIELD_CHARS], "useful": useful,
           "mode": mode if isinstance(mode, str) else None}
    append(root / FEEDBACK_FILE, rec)
    return rec


def feedback_summary(root: Path) -> dict[str, Any]:
    """What the 反馈 page shows: the questions with negative feedback (with the passages judged 没用) and the
    passages judged 有用 (with their questions), counts per (question, passage), newest first; the latest judgement
    of one question on one passage wins."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in read_lines(root / FEEDBACK_FILE):
        if isinstance(rec.get("question"), str) and isinstance(rec.get("useful"), bool):
            key = (rec["question"], rec.get("pid", ""))
            latest.pop(key, None)
            latest[key] = rec
    recs = list(latest.values())[::-1]
    negative: dict[str, dict[str, Any]] = {}
    for r in recs:
        if not r["useful"]:
            q = negative.setdefault(r["question"], {"question": r["question"], "at": r["at"], "passages": []})
            q["passages"].append({k: r.get(k) for k in ("pid", "doc_id", "title", "section", "mode", "who", "at")})
    useful = [{k: r.get(k) for k in ("question", "pid", "doc_id", "title", "section", "text", "mode", "who", "at")}
              for r in recs if r["useful"]]
    return {"negative": list(negative.values()), "useful": useful,
            "counts": {"useful": sum(r["useful"] for r in recs), "not_useful": sum(not r["useful"] for r in recs)}}


def eval_pairs(root: Path) -> list[dict[str, Any]]:
    """The passages judged useful as `partyqa eval` rows: ``question``, ``gold_doc`` and ``gold_text`` (the
    opening of the passage's text), one per (question, passage), oldest first."""
    rows = []
    for r in feedback_summary(root)["useful"][::-1]:
        text = (r.get("text") or "").strip()
        rows.append({"question": r["question"], "gold_doc": r["doc_id"], "gold_text": text[:GOLD_TEXT_CHARS],
                     "pid": r["pid"]})
    return rows


def write_eval_file(root: Path, dest: Path) -> int:
    """Write :func:`eval_pairs` as JSONL to ``dest`` (atomically); returns how many pairs."""
    from indexer.fsutil import write_atomic

    rows = eval_pairs(root)
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    write_atomic(Path(dest), lambda fh: fh.write(body))
    return len(rows)
