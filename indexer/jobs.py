"""Jobs: every add / remove / index is queued, run by one worker, and reports its progress until its vectors land.

A job's keyword phase (reading the files, committing them to the passage store and the keyword half) runs in the
queue's one worker thread, in submission order; the embedding of the new passages is a shared backlog (the
``pending_vectors`` of the index) that the engine's background thread encodes. So a queued job's keyword phase
runs while an earlier job is still embedding, and each job reports the progress of its own passages.

States: queued -> reading -> keyword-ready -> embedding -> done, or failed. Submitted files are spooled under
``<index>/jobs/<id>/`` with the job's record (``job.json``), so a restarted server resumes queued jobs; the records
of finished jobs (the last 50) are kept in ``<index>/jobs.json``.
"""
from __future__ import annotations

import collections
import datetime as _dt
import json
import logging
import secrets
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Collection, Protocol, Sequence

from indexer.fsutil import write_json
from indexer.index.backlog import Backlog
from indexer.index.journal import covered
from indexer.index.sync import SKIPPED_LINE, SyncReport
from indexer.types import IndexLockedError


logger = logging.getLogger(__name__)

JOB_STATES = ("queued", "reading", "keyword-ready", "embedding", "done", "failed")
FINAL_STATES = ("done", "failed")
ACTIVE_STATES = tuple(s for s in JOB_STATES if s not in FINAL_STATES)  # a job still at work
KEEP_FINISHED = 50
# A file whose documents were all removed before their vectors landed: the backlog stopped encoding them.
REMOVED = "removed"
REMOVED_REASON = ("已删除（语义索引已停止）：文档在语义索引完成前被删除，其余段落不再编码 / removed before its semantic "
                  "index was complete: the rest of its passages were not encoded")
JOBS_DIR = "jobs"  # <index>/jobs/<id>/: spooled files and job.json of jobs not finished yet
# Another process (a CLI `partyqa index`, a rebuild) may hold the write lock for minutes: a job waits for it, in
# steps of PARTYQA_LOCK_TIMEOUT, before it fails saying the index is busy. Nothing is written before the lock.
LOCKED_PATIENCE_S = 900.0
RECORDS_FILE = "jobs.json"  # <index>/jobs.json: records of the last KEEP_FINISHED finished jobs


# --------------------------------------------------------------------------------------------- jobs
class JobEngine(Protocol):
    """The public :class:`indexer.engine.Engine` API the queue runs jobs with (nothing private)."""

    root: Path
    backend: Any  # warmed before the queue's threads start
    backlog: Backlog

    def add(self, paths: Sequence[str | Path], progress: bool = False, wait: bool = True,
            spooled: dict[str, str] | None = None) -> SyncReport:
        """Index files, copied (``spooled`` ones: hard-linked) into the corpus folder."""

    def remove(self, doc_ids: Sequence[str]) -> list[str]:
        """Remove documents."""

    def index(self, corpus_dir: str | Path, progress: bool = False, wait: bool = True) -> SyncReport:
        """Sync with a corpus folder."""

    def pending_vectors(self, docs: Collection[str] | None = None) -> list[str]:
        """Passages waiting for their vectors."""

    def pending_passages(self) -> list[tuple[str, str]]:
        """(passage id, document id) of the passages waiting for their vectors."""

    def doc_ids(self) -> list[str]:
        """The ids of the indexed documents."""

    def start_background(self) -> None:
        """Start encoding the backlog in the background."""


@dataclass
class JobFile:
    """One file (or document id, for a removal) of a job."""

    name: str  # the name the user gave (upload name, path given to add, doc id to remove)
    path: str = ""  # the spooled copy
    sha1: str = ""  # of the spooled copy, when the submitter knew it (an upload hashed as it was received)
    state: str = "queued"  # a job state, "unchanged", or "removed" (its documents removed before their vectors)
    doc_ids: list[str] = field(default_factory=list)
    passages: int = 0
    embedded: int = 0
    reason: str | None = None


_PRIVATE = ("path", "sha1")  # JobFile fields kept in the job's record, not shown


@dataclass
class Job:
    """One queued write; read it through :meth:`to_dict` (a consistent snapshot)."""

    id: str
    kind: str  # "add" | "remove" | "index"
    state: str = "queued"
    created_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    files: list[JobFile] = field(default_factory=list)
    target: str = ""  # index: the corpus dir
    pids: list[str] = field(default_factory=list)  # this job's passages in the embedding backlog
    passages_total: int = 0
    passages_embedded: int = 0
    rate: float | None = None
    eta_seconds: float | None = None
    queue_position: int | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    summary: str = ""
    _guard: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON-ready data (the contract in docs: id, kind, state, files, progress, report, summary)."""
        guard = self._guard or threading.Lock()
        with guard:
            return {"id": self.id, "kind": self.kind, "state": self.state, "created_at": self.created_at,
                    "started_at": self.started_at, "finished_at": self.finished_at,
                    "files": [{k: v for k, v in asdict(f).items() if k not in _PRIVATE} for f in self.files],
                    "passages_total": self.passages_total, "passages_embedded": self.passages_embedded,
                    "rate": None if self.rate is None else round(self.rate, 2),
                    "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
                    "queue_position": self.queue_position, "report": self.report, "error": self.error,
                    "summary": self.summary}

    def _record(self) -> dict[str, Any]:
        return {**self.to_dict(), "target": self.target, "pids": self.pids,
                "paths": [f.path for f in self.files], "sha1s": [f.sha1 for f in self.files]}

    @classmethod
    def _from_record(cls, rec: dict[str, Any], guard: Any) -> "Job":
        files = [JobFile(**{k: v for k, v in f.items() if k in JobFile.__dataclass_fields__})
                 for f in rec.get("files", [])]
        for f, path, sha1 in zip(files, rec.get("paths", []), rec.get("sha1s") or [""] * len(files)):
            f.path, f.sha1 = path, sha1
        known = {k: v for k, v in rec.items() if k in cls.__dataclass_fields__ and k not in ("files", "_guard")}
        return cls(**known, files=files, _guard=guard)


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _new_id() -> str:
    return f"{_dt.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


class JobQueue:
    """The jobs of one Engine (``Engine.jobs``): submit, list, wait; one worker runs keyword phases in order."""

    def __init__(self, engine: JobEngine):
        self.engine = engine
        self.dir = engine.root / JOBS_DIR
        self._cv = threading.Condition(threading.RLock())
        self._jobs: dict[str, Job] = {}
        self._queue: collections.deque[str] = collections.deque()
        self._closed = False
        with self._cv:
            self._load()
        try:
            engine.backend.warm()  # before this queue's threads start: the tokenizer workers are forked
        except Exception:  # pragma: no cover - big writes then tokenize in-process
            logger.warning("could not start helper processes", exc_info=True)
        engine.backlog.listen(self._on_progress)
        self._worker = threading.Thread(target=self._run, name="partyqa-jobs", daemon=True)
        self._worker.start()
        engine.start_background()  # pending vectors (of earlier jobs, other processes) resume now

    # ------------------------------------------------------------------ submitting
    def submit_add(self, paths: Sequence[str | Path], names: dict[str, str] | None = None,
                   owned_dir: Path | None = None, digests: dict[str, str] | None = None) -> Job:
        """Queue files for adding; returns at once. The files are copied into the job's spool under the index dir
        first, so the caller may delete its own; files in ``owned_dir`` (the caller's to give) are moved instead,
        a rename when it is on the index's filesystem, and ``owned_dir`` is deleted. ``names`` maps path ->
        display name (upload name); ``digests`` path -> SHA-1, where the caller hashed the file already. The
        spooled files are hard-linked, not copied, into the corpus folder by the add."""
        names = {str(k): v for k, v in (names or {}).items()}
        digests = {str(k): v for k, v in (digests or {}).items()}
        owned = Path(owned_dir).resolve() if owned_dir is not None else None
        job = self._new("add")
        spool = self.dir / job.id / "files"
        for i, raw in enumerate(paths):
            path = Path(raw)
            name = names.get(str(raw)) or names.get(str(path)) or path.name
            entry = JobFile(name=name, sha1=digests.get(str(raw)) or digests.get(str(path)) or "")
            target = spool / str(i) / Path(name).name
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if owned is not None and path.resolve().is_relative_to(owned):
                    shutil.move(path, target)  # os.rename within a filesystem; a copy only across two
                else:
                    shutil.copy2(path, target)
                entry.path = str(target)
            except OSError as exc:
                entry.state = "failed"
                entry.reason = f"无法读取上传的文件 / cannot read the submitted file: {exc.strerror or exc}"
            job.files.append(entry)
        if owned_dir is not None:
            shutil.rmtree(owned_dir, ignore_errors=True)
        return self._enqueue(job)

    def submit_remove(self, doc_ids: Sequence[str]) -> Job:
        """Queue the removal of documents (by doc id)."""
        job = self._new("remove")
        job.files = [JobFile(name=str(d), doc_ids=[str(d)]) for d in dict.fromkeys(doc_ids)]
        return self._enqueue(job)

    def submit_index(self, corpus_dir: str | Path) -> Job:
        """Queue a sync of the index with a corpus directory."""
        job = self._new("index")
        job.target = str(Path(corpus_dir).resolve())
        return self._enqueue(job)

    def _new(self, kind: str) -> Job:
        if self._closed:
            raise RuntimeError("the job queue is closed")
        return Job(id=_new_id(), kind=kind, created_at=_now(), _guard=self._cv)

    def _enqueue(self, job: Job) -> Job:
        with self._cv:
            self._jobs[job.id] = job
            self._queue.append(job.id)
            self._save_active(job)
            self._positions()
            self._cv.notify_all()
        logger.info("job %s (%s) queued", job.id, job.kind)
        return job

    # ------------------------------------------------------------------ reading
    def get(self, job_id: str) -> Job | None:
        """The job with this id (running, queued or one of the last finished), else None."""
        self._refresh()
        with self._cv:
            return self._jobs.get(job_id)

    def list(self, active_only: bool = False, limit: int = 50) -> list[Job]:
        """Jobs, newest first; ``active_only`` leaves out finished ones."""
        self._refresh()
        with self._cv:  # insertion order: finished records first (as kept), then submissions in order
            jobs = [j for j in reversed(self._jobs.values()) if not active_only or j.state not in FINAL_STATES]
        return jobs[:limit]

    def wait(self, job_id: str, state: str = "done", timeout: float | None = None) -> Job:
        """Block until the job reaches ``state`` or a later one (failed counts as final); TimeoutError otherwise."""
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}; one of {', '.join(JOB_STATES)}")
        want = JOB_STATES.index(state)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._refresh()
            with self._cv:
                job = self._jobs.get(job_id)
                if job is None:
                    raise KeyError(job_id)
                if job.state in FINAL_STATES or JOB_STATES.index(job.state) >= want:
                    return job
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"job {job_id} is {job.state}, not {state}, after {timeout} s")
                self._cv.wait(0.5 if left is None else min(0.5, left))

    # ------------------------------------------------------------------ the worker
    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                job = self._jobs[self._queue.popleft()]
                job.state, job.started_at = "reading", _now()
                for f in job.files:
                    if f.state == "queued":
                        f.state = "reading"
                self._positions()
                self._save_active(job)
                self._cv.notify_all()
            try:
                with covered():  # the route that queued the job recorded it in the audit log (webui.auth.audit)
                    self._run_waiting_for_lock(job)
            except IndexLockedError as exc:
                logger.warning("job %s: %s", job.id, exc)
                self._fail(job, f"索引正被另一个进程更新，等待 {LOCKED_PATIENCE_S / 60:.0f} 分钟后仍未释放，请稍后重新提交 / {exc}")
            except Exception as exc:
                logger.exception("job %s failed", job.id)
                self._fail(job, str(exc) if "/" in str(exc) else f"任务失败 / job failed: {exc}")
            self._refresh()

    def _fail(self, job: Job, error: str) -> None:
        """End a job that could not run: every file not yet finished fails with ``error`` (unless it has a reason)."""
        with self._cv:
            job.error = error
            for f in job.files:
                if f.state not in FINAL_STATES + ("unchanged",):
                    f.state, f.reason = "failed", f.reason or error
            self._finish(job, "failed")

    def _run_waiting_for_lock(self, job: Job) -> None:
        """Run the job; while another process holds the write lock, wait (up to LOCKED_PATIENCE_S) and retry."""
        run = {"add": self._run_add, "remove": self._run_remove}.get(job.kind, self._run_index)
        deadline = time.monotonic() + LOCKED_PATIENCE_S
        while True:
            try:
                return run(job)
            except IndexLockedError:
                if time.monotonic() >= deadline or self._closed:
                    raise
                logger.info("job %s waits for the index's write lock (another writer)", job.id)
                time.sleep(1.0)

    def _run_add(self, job: Job) -> None:
        todo = [f for f in job.files if f.path and f.state != "failed"]
        by_path = {f.path: f for f in todo}
        spooled = {f.path: f.sha1 for f in todo}  # the job's own files: linked into the corpus, not copied
        report = self.engine.add([f.path for f in todo], wait=False, spooled=spooled) if todo else None
        with self._cv:
            if report is not None:
                for err in report.errors:
                    f = by_path.get(err.get("path", ""))
                    if f is not None:
                        reason = err.get("reason", "")  # "中文 / English" from the ingest layer
                        if str(err.get("reason", "")).endswith(SKIPPED_LINE):
                            # a bad line of a bulk .jsonl: the file's valid records are indexed, the line is named
                            f.reason = f"{f.reason}; {reason}" if f.reason else reason
                        else:
                            f.state, f.reason = "failed", reason
                        err["path"] = f.name  # the name the user gave, not the spooled copy
                for f in todo:
                    if f.state == "failed":
                        continue
                    produced = report.files.get(str(Path(f.path)))  # what the add made of this file
                    f.doc_ids = produced.doc_ids if produced is not None else []
                    f.passages = sum(produced.passages.values()) if produced is not None else 0
                    f.state = "keyword-ready" if produced is not None and produced.changed else "unchanged"
                    if not f.doc_ids:
                        f.state, f.reason = "failed", "文件中没有可索引的文本 / no indexable text in the file"
            self._keyword_ready(job, report)

    def _run_remove(self, job: Job) -> None:
        removed = set(self.engine.remove([f.name for f in job.files]))
        with self._cv:
            for f in job.files:
                if f.name in removed:
                    f.state = "done"
                else:
                    f.state, f.reason = "failed", f"未找到文档 / unknown document id: {f.name}"
            job.summary = _summary({"removed": sorted(removed)}, sum(f.state == "failed" for f in job.files))
            self._finish(job, "failed" if not removed and job.files else "done")

    def _run_index(self, job: Job) -> None:
        report = self.engine.index(job.target, wait=False)
        passages = {d: n for produced in report.files.values() for d, n in produced.passages.items()}
        with self._cv:
            for doc_id in report.added + report.updated:
                job.files.append(JobFile(name=doc_id, state="keyword-ready", doc_ids=[doc_id],
                                         passages=passages.get(doc_id, 0)))
            for err in report.errors:
                job.files.append(JobFile(name=err.get("path", ""), state="failed",
                                         reason=err.get("reason", "")))
            self._keyword_ready(job, report)

    def _keyword_ready(self, job: Job, report: Any) -> None:
        """The job's keyword commit landed: list its pending passages; the backlog embeds them."""
        docs = {d for f in job.files if f.state == "keyword-ready" for d in f.doc_ids}
        job.pids = self.engine.pending_vectors(docs)
        job.passages_total = sum(f.passages for f in job.files if f.state == "keyword-ready")
        failed = sum(f.state == "failed" for f in job.files)
        if report is not None:
            job.report = report.to_dict()
            job.summary = _summary(job.report, failed)
        else:
            job.summary = _summary({}, failed)
        shutil.rmtree(self.dir / job.id / "files", ignore_errors=True)  # the corpus holds the files now
        if not docs:
            self._finish(job, "failed" if failed and not any(f.state == "unchanged" for f in job.files) else "done")
            return
        job.state = "keyword-ready"
        self._save_active(job)
        self._cv.notify_all()
        self.engine.start_background()

    # ------------------------------------------------------------------ progress
    def _on_progress(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        """Recompute embedding progress of keyword-ready / embedding jobs; finish those whose vectors all landed."""
        with self._cv:
            active = [j for j in self._jobs.values() if j.state in ("keyword-ready", "embedding")]
            if not active:
                return
        try:
            waiting = self.engine.pending_passages()
            present = set(self.engine.doc_ids())
        except Exception:  # pragma: no cover - a broken index is reported by the searches
            return
        order = [pid for pid, _ in waiting]
        doc_of = dict(waiting)
        pending = set(order)
        encoded = self.engine.backlog.uncommitted()
        rate = self.engine.backlog.rate()
        position = {pid: i for i, pid in enumerate(p for p in order if p not in encoded)}
        with self._cv:
            for job in active:
                pids = self._drop_removed(job, present)
                left = [pid for pid in pids if pid in pending and pid not in encoded]
                left_by_doc: dict[str, int] = {}
                for pid in left:
                    d = doc_of[pid]
                    left_by_doc[d] = left_by_doc.get(d, 0) + 1
                committed = not any(pid in pending for pid in pids)
                job.passages_embedded = len(pids) - len(left)
                for f in job.files:
                    if f.state in ("keyword-ready", "embedding", "done"):
                        f.embedded = f.passages - sum(left_by_doc.get(d, 0) for d in f.doc_ids)
                job.rate = rate
                ahead = max((position[pid] for pid in left), default=-1) + 1
                job.eta_seconds = ahead / rate if rate and left else (0.0 if not left else None)
                job.error = self.engine.backlog.error
                if committed:
                    for f in job.files:
                        if f.state in ("keyword-ready", "embedding"):
                            f.state = "done"
                    job.passages_embedded = len(pids)
                    self._finish(job, "done")
                elif job.passages_embedded or self.engine.backlog.active:
                    if job.state != "embedding":
                        job.state = "embedding"
                        for f in job.files:
                            if f.state == "keyword-ready":
                                f.state = "embedding"
                        self._save_active(job)
            self._cv.notify_all()

    def _drop_removed(self, job: Job, present: set[str]) -> list[str]:
        """The job's passages whose documents are still indexed. A file whose documents were all removed before
        their vectors landed becomes ``removed`` (the backlog stopped encoding them) and leaves the job's total;
        the summary says so."""
        gone_pids = [pid for pid in job.pids if _doc_of(pid) not in present]
        if not gone_pids:
            return job.pids
        gone_docs = {_doc_of(pid) for pid in gone_pids}
        live = [pid for pid in job.pids if _doc_of(pid) in present]
        job.passages_total = len(live)
        newly = 0
        for f in job.files:
            if f.state in ("keyword-ready", "embedding") and f.doc_ids and set(f.doc_ids) <= gone_docs:
                f.state, f.reason = REMOVED, REMOVED_REASON
                newly += 1
        if newly:
            removed = sum(f.state == REMOVED for f in job.files)
            job.summary = job.summary.split("；已删除")[0] + f"；已删除 {removed} 个文件（语义索引已停止）"
            logger.info("job %s: %d file(s) removed before their vectors landed", job.id, newly)
        return live

    def _positions(self) -> None:
        for j in self._jobs.values():
            j.queue_position = None
        for i, job_id in enumerate(self._queue, start=1):
            self._jobs[job_id].queue_position = i

    # ------------------------------------------------------------------ records
    def _finish(self, job: Job, state: str) -> None:
        """Mark a job final, move its record to jobs.json (last KEEP_FINISHED) and delete its spool."""
        job.state, job.finished_at = state, _now()
        job.eta_seconds = 0.0 if state == "done" else None
        finished = sorted((j for j in self._jobs.values() if j.state in FINAL_STATES),
                          key=lambda j: (j.finished_at or "", j.id), reverse=True)
        for old in finished[KEEP_FINISHED:]:
            self._jobs.pop(old.id, None)
        try:
            write_json(self.engine.root / RECORDS_FILE,
                       {"jobs": [j._record() for j in finished[:KEEP_FINISHED]]})
        except OSError:
            logger.warning("could not write %s", RECORDS_FILE, exc_info=True)
        shutil.rmtree(self.dir / job.id, ignore_errors=True)
        logger.info("job %s %s: %s", job.id, state, job.summary)
        self._cv.notify_all()

    def _save_active(self, job: Job) -> None:
        try:
            (self.dir / job.id).mkdir(parents=True, exist_ok=True)
            write_json(self.dir / job.id / "job.json", job._record())
        except OSError:
            logger.warning("could not save the record of job %s", job.id, exc_info=True)

    def _load(self) -> None:
        """Finished records from jobs.json; unfinished jobs from their spool: queued ones run again, jobs whose
        keyword phase was committed wait for their pending vectors (the background embedder resumes them)."""
        try:
            records = json.loads((self.engine.root / RECORDS_FILE).read_text("utf-8")).get("jobs", [])
        except (OSError, ValueError, AttributeError):
            records = []
        for rec in records:
            try:
                job = Job._from_record(rec, self._cv)
                self._jobs[job.id] = job
            except (TypeError, KeyError):
                continue
        for path in sorted(self.dir.glob("*/job.json")):
            try:
                job = Job._from_record(json.loads(path.read_text("utf-8")), self._cv)
            except (OSError, ValueError, TypeError, KeyError):
                logger.warning("unreadable job record %s: dropped", path)
                shutil.rmtree(path.parent, ignore_errors=True)
                continue
            self._jobs[job.id] = job
            if job.state in ("queued", "reading"):
                missing = [f for f in job.files if f.path and not Path(f.path).is_file() and f.state != "failed"]
                if job.kind == "add" and missing:
                    job.error = "服务重启时任务的文件已丢失 / the job's files were lost when the server restarted"
                    self._finish(job, "failed")
                    continue
                logger.warning("resuming job %s (%s) interrupted by a restart", job.id, job.kind)
                job.state = "queued"
                for f in job.files:
                    if f.state == "reading":
                        f.state = "queued"
                self._queue.append(job.id)
        self._positions()

    def close(self) -> None:
        """Stop the worker after the job it is running (queued jobs stay spooled for the next start)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self.engine.backlog.unlisten(self._on_progress)
        if self._worker is not threading.current_thread():
            self._worker.join()


def _doc_of(pid: str) -> str:
    """The document id of a passage id (``doc_id#ordinal``)."""
    return pid.rsplit("#", 1)[0]


def _summary(report: dict[str, Any], failed: int) -> str:
    """A Chinese one-liner of what a job changed, e.g. "新增 3 篇，更新 1 篇，删除 0 篇；1 个文件失败"."""
    parts = f"新增 {len(report.get('added', []))} 篇，更新 {len(report.get('updated', []))} 篇，" \
            f"删除 {len(report.get('removed', []))} 篇"
    if report.get("unchanged"):
        parts += f"，未变 {len(report['unchanged'])} 篇"
    return parts + (f"；{failed} 个文件失败" if failed else "")
