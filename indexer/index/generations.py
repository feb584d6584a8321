"""Storage of committed index states: numbered ``gen-N/`` folders switched by an atomic ``CURRENT`` pointer.

Every generation holds the passage store -- ``manifest.json``, ``texts.json``, ``passages.jsonl`` -- which is the
source of truth for every backend, plus whatever the backend keeps there (the local backend: ``keyword/`` and
``vectors/``). A write copies the current generation to ``gen-N.tmp``, lets the backend's write batch change it,
renames it into place and switches CURRENT last, so a failed or killed write leaves the previous state whole.
One writer at a time, across threads and processes (``write.lock``, via the filelock library).
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import filelock

from indexer.backends.base import Backend, Reader
from indexer.fsutil import checkpoint, fsync_dir, write_json
from indexer.text.analyzer import analyzer_fingerprint
from indexer.types import IndexLockedError, PartyQAError, Passage

logger = logging.getLogger(__name__)

REBUILD_MARKER = "REBUILDING"
FORMAT_VERSION = 1
PENDING_KEY = "pending_vectors"  # manifest: pids in the keyword half and the passage store, not yet embedded
# Files a writer never changes in place (whoosh writes new segment and TOC files, numpy and the passage store are
# replaced via temp file + os.replace), so the next generation can share them as hard links instead of copying.
# Lock files are copied: an flock on a shared inode would lock the committed generation too.
_NO_LINK_SUFFIXES = ("LOCK",)


class IndexCorruptError(PartyQAError):
    """An index file is missing, truncated or inconsistent; the fix is a rebuild from the corpus."""

    def __init__(self, root: Path, detail: str):
        super().__init__(f"index at {root} is damaged ({detail}). Recover with: partyqa --index-dir {root} index "
                         f"--rebuild CORPUS_DIR  (documents are re-read from the corpus; cached embeddings are "
                         f"reused, so this is quick)")
        self.root = root


def now() -> str:
    """The local time as an ISO string (seconds)."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _passage_line(p: Passage) -> str:
    return json.dumps({"pid": p.pid, **p.to_dict()}, ensure_ascii=False) + "\n"


def write_gen_files(gen_dir: Path, manifest: dict, texts: dict[str, str], passages: Sequence[Passage],
                    appended: int | None = None) -> None:
    """Write a generation's passage store: manifest, cleaned texts, one passage per line.

    ``appended``: the folder's ``passages.jsonl`` (a hard link of the previous generation's) already holds the
    first ``len(passages) - appended`` passages, in order; it is copied and the rest appended instead of
    serialising every passage again (with Passage.to_dict spelled out, writing the store of a 100k-passage index
    for an upload took 0.75 s instead of 4.8 s, profiled on a busy machine).
    The store written is remembered for the reader of this generation (:func:`load_store`).
    """
    write_json(gen_dir / "manifest.json", manifest)
    write_json(gen_dir / "texts.json", texts)
    tmp = gen_dir / "passages.jsonl.tmp"
    final = gen_dir / "passages.jsonl"
    if appended is not None and final.is_file():
        shutil.copyfile(final, tmp)  # never append to the shared inode: the previous generation reads it
        new = passages[len(passages) - appended:] if appended else []
    else:
        new = passages
    with open(tmp, "a", encoding="utf-8") as fh:
        fh.writelines(_passage_line(p) for p in new)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _remember_store(gen_dir, texts, *_by_pid_and_doc(passages))


def _by_pid_and_doc(passages: Iterable[Passage]) -> tuple[dict[str, Passage], dict[str, list[str]]]:
    """Passages by pid, and each document's pids, in the order given (the store's line order)."""
    by_pid: dict[str, Passage] = {}
    by_doc: dict[str, list[str]] = {}
    for p in passages:
        by_pid[p.pid] = p
        by_doc.setdefault(p.doc_id, []).append(p.pid)
    return by_pid, by_doc


# The passage stores (texts, passages by pid, pids by document) this process last loaded or wrote, by the identity
# of their two files. Files are replaced, never changed in place, so the same inode, size and mtime mean the same
# content: a generation whose store is a hard link of the previous one's (a vector commit) and the generation this
# process just wrote reuse the objects instead of parsing the files again (2.4 s per commit at 100k passages).
# The objects are shared by snapshots and never modified.
_STORE_KEEP = 3
_stores: "OrderedDict[tuple, tuple[dict[str, str], dict[str, Passage], dict[str, list[str]]]]" = OrderedDict()
_stores_lock = threading.Lock()


def _store_key(gen_dir: Path) -> tuple | None:
    try:
        st = [os.stat(gen_dir / name) for name in ("texts.json", "passages.jsonl")]
    except OSError:
        return None
    return tuple((s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns) for s in st)


def _remember_store(gen_dir: Path, texts: dict[str, str], passages: dict[str, Passage],
                    by_doc: dict[str, list[str]]) -> None:
    key = _store_key(gen_dir)
    if key is None:
        return
    with _stores_lock:
        _stores[key] = (texts, passages, by_doc)
        _stores.move_to_end(key)
        while len(_stores) > _STORE_KEEP:
            _stores.popitem(last=False)


def load_store(gen_dir: Path) -> tuple[dict[str, str], dict[str, Passage], dict[str, list[str]]]:
    """(texts, passages by pid, pids by document) of a generation folder: remembered, or parsed from its files."""
    key = _store_key(gen_dir)
    with _stores_lock:
        known = _stores.get(key) if key is not None else None
        if known is not None:
            _stores.move_to_end(key)
            return known
    texts: dict[str, str] = json.loads((gen_dir / "texts.json").read_text("utf-8"))
    with open(gen_dir / "passages.jsonl", encoding="utf-8") as fh:
        passages, by_doc = _by_pid_and_doc(Passage.from_dict(json.loads(line)) for line in fh if line.strip())
    if key is not None and _store_key(gen_dir) == key:
        _remember_store(gen_dir, texts, passages, by_doc)
    return texts, passages, by_doc


def empty_manifest() -> dict[str, Any]:
    """The manifest of an index with no documents."""
    return {"format": FORMAT_VERSION, "corpus_dir": None, "model_id": None, "files": {}, "documents": {},
            "excluded": {}}


# A change of a manifest alone (curation, a metadata correction): ``change(gen, manifest_copy)`` edits the copy and
# returns a truthy result when there is something to commit.
ManifestChange = Callable[["Snapshot", dict[str, Any]], Any]


class ManifestCommitter(Protocol):
    """What commits a :data:`ManifestChange` as the next generation (:class:`indexer.index.writer.Writer`): the
    curation and metadata modules write through it without importing the writer, which imports them."""

    root: Path

    def commit_manifest(self, change: ManifestChange, point: str = "curation") -> Any:
        """Run ``change`` on a copy of the newest manifest under the write lock and commit it when truthy."""
        ...


class BackendMismatchError(PartyQAError):
    """The index directory was built with another backend than the configured one."""


class Snapshot:
    """One committed, immutable index state, opened for reading: passage store plus the backend's reader."""

    def __init__(self, root: Path, number: int, backend: Backend):
        self.number = number
        self.path = root / f"gen-{number:08d}"
        self.users = 0  # searches using this snapshot now (CurrentGeneration.using)
        self.retired = False  # superseded twice while in use: the last search using it closes it
        try:
            self._load(backend)
        except (IndexCorruptError, BackendMismatchError):
            raise
        except Exception as exc:
            raise IndexCorruptError(root, f"{type(exc).__name__}: {exc}") from exc
        n_kw, n_vec = self.reader.keyword_count(), self.reader.vector_count()
        # Keyword first: every passage is in the keyword half; the ones listed as pending have no vector yet.
        pending = self.pending
        if (self.manifest.get("model_id") or pending) and not (
                n_kw == len(self.passages) and n_vec == len(self.passages) - len(pending)
                and pending.issubset(self.passages)):
            self.reader.close()
            raise IndexCorruptError(root, f"{n_kw} keyword entries, {n_vec} vectors, {len(self.passages)} passages, "
                                          f"{len(pending)} pending vectors")

    def _load(self, backend: Backend) -> None:
        self.manifest: dict[str, Any] = json.loads((self.path / "manifest.json").read_text("utf-8"))
        self.texts, self.passages, self.by_doc = load_store(self.path)
        built = self.manifest.get("backend", "local")  # indexes from before the seam are local
        if built != backend.name:
            raise BackendMismatchError(
                f"索引目录 {self.path.parent} 是用 {built} 后端建立的，当前设置为 {backend.name}：请设置 "
                f"PARTYQA_BACKEND={built}，或换一个索引目录 / index {self.path.parent} was built with the {built} "
                f"backend but {backend.name} is configured: set PARTYQA_BACKEND={built} or use another index dir")
        self.reader: Reader = backend.open_reader(self.path, self.number, self.by_doc)

    @functools.cached_property
    def pending(self) -> frozenset[str]:
        """Passage ids committed to the keyword half whose vectors are still to be embedded."""
        return frozenset(self.manifest.get(PENDING_KEY) or ())

    @property
    def keyword(self) -> Any:
        """The local backend's whoosh index (tests and benchmarks read it directly)."""
        return self.reader.keyword  # type: ignore[attr-defined]

    @property
    def vectors(self) -> Any:
        """The local backend's numpy vector index (tests and benchmarks read it directly)."""
        return self.reader.vectors  # type: ignore[attr-defined]

    def tokenized_with_current_analyzer(self) -> bool:
        """False when the keyword tokens came from another analyzer (see analyzer_fingerprint)."""
        return not self.passages or self.manifest.get("analyzer") == analyzer_fingerprint()

    def close(self) -> None:
        """Release the backend's files for this generation."""
        try:
            self.reader.close()
        except Exception:  # pragma: no cover - closing is best effort
            logger.debug("closing generation %s failed", self.number, exc_info=True)


class CurrentGeneration:
    """The committed generation this process searches: re-opened when a writer (of any process) switched CURRENT.

    The previous snapshot stays open for searches already running on it and is closed at the next switch.
    """

    def __init__(self, root: Path, store: "Generations", backend: Backend):
        self.root = root
        self._store = store
        self._backend = backend
        self._lock = threading.RLock()
        self._gen: Snapshot | None = None
        self._old: list[Snapshot] = []
        self._sig: tuple[int, int] | None = None

    def reload(self, force: bool = False) -> None:
        """Switch to the newest committed generation if a writer has committed one (``force``: check CURRENT)."""
        try:
            st = os.stat(self.root / "CURRENT")
        except FileNotFoundError:
            return
        sig = (st.st_mtime_ns, st.st_size)
        if not force and sig == self._sig:
            return
        with self._lock:
            number = self._store.read_current()
            if self._gen is not None and self._gen.number == number:
                self._sig = sig
                return
            gen = Snapshot(self.root, number, self._backend)
            if self._gen is not None:
                self._old.append(self._gen)
                # Keep the previous generation open for searches already running on it; an older one is closed
                # now, or by the last search still using it (a slow search under a stream of backlog commits).
                while len(self._old) > 1:
                    old = self._old.pop(0)
                    if old.users:
                        old.retired = True
                    else:
                        old.close()
            self._gen = gen
            self._sig = sig
            logger.debug("opened generation %d (%d passages)", number, len(gen.passages))
            if not gen.tokenized_with_current_analyzer():
                logger.warning("index %s was tokenized with another analyzer (user dictionary, stopwords or PartyQA "
                               "version changed); keyword results may miss words until `partyqa index` re-tokenizes "
                               "it (quick: no re-reading, no re-embedding)", self.root)

    def get(self, force: bool = False) -> Snapshot:
        """The newest committed generation (reloaded first)."""
        self.reload(force)
        gen = self._gen
        assert gen is not None
        return gen

    @contextmanager
    def using(self, force: bool = False) -> Iterator[Snapshot]:
        """The newest committed generation, kept open until the block ends however many switches happen meanwhile."""
        self.reload(force)
        with self._lock:
            gen = self._gen
            assert gen is not None
            gen.users += 1
        try:
            yield gen
        finally:
            with self._lock:
                gen.users -= 1
                if gen.retired and not gen.users:
                    gen.close()

    def close(self) -> None:
        """Release every open snapshot (the next :meth:`get` opens the current one again)."""
        with self._lock:
            for g in self._old:
                g.close()
            self._old.clear()
            if self._gen is not None:
                self._gen.close()
                self._gen = None
                self._sig = None


class Generations:
    """The gen-N folders and CURRENT of one index directory: create, copy for a write, commit, garbage-collect."""

    def __init__(self, root: Path, backend: Backend, lock_timeout: float):
        self.root = root
        self.backend = backend
        self.lock_timeout = lock_timeout
        self._mutex = threading.Lock()
        self._file_lock = filelock.FileLock(str(root / "write.lock"), is_singleton=False, thread_local=False)

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """One writer at a time, across threads and processes, with the configured timeout."""
        timeout = self.lock_timeout
        deadline = time.monotonic() + timeout
        if not self._mutex.acquire(timeout=max(timeout, 0)):
            raise IndexLockedError(f"index {self.root} is being written by another request; gave up after "
                                   f"{timeout:.0f}s")
        try:
            try:
                self._file_lock.acquire(timeout=max(deadline - time.monotonic(), 0), poll_interval=0.05)
            except filelock.Timeout:
                raise IndexLockedError(
                    f"index {self.root} is locked by another process (write.lock); gave up after {timeout:.0f}s — "
                    f"wait for it to finish or raise PARTYQA_LOCK_TIMEOUT") from None
            try:
                yield
            finally:
                self._file_lock.release()
        finally:
            self._mutex.release()

    def create_empty(self, kept: dict[str, Any] | None = None, number: int = 0) -> None:
        """Commit an empty generation ``number`` (0 for a new index) unless CURRENT exists; ``kept``: manifest keys
        it starts with (what people curated, carried over a rebuild)."""
        with self.write_lock():
            if (self.root / "CURRENT").exists():
                return
            gen_dir = self.root / f"gen-{number:08d}.tmp"
            shutil.rmtree(gen_dir, ignore_errors=True)
            gen_dir.mkdir()
            self.backend.create_empty(gen_dir)
            write_gen_files(gen_dir, {**empty_manifest(), **(kept or {}), "backend": self.backend.name}, {}, [])
            self.commit(gen_dir, number)

    def new_gen_dir(self, base: Path, number: int) -> Path:
        """Copy a committed generation to a temporary folder that a commit will rename into place."""
        for stale in self.root.glob("gen-*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = self.root / f"gen-{number:08d}.tmp"
        shutil.copytree(base, tmp, copy_function=_link_or_copy)
        return tmp

    def commit(self, tmp_dir: Path, number: int) -> None:
        """Rename the finished generation into place, then switch CURRENT to it (atomically, last)."""
        final = self.root / f"gen-{number:08d}"
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp_dir, final)
        fsync_dir(self.root)
        checkpoint(self.root, "before_switch")
        write_json(self.root / "CURRENT", {"generation": number, "committed_at": now()})
        fsync_dir(self.root)
        checkpoint(self.root, "after_switch")
        self.backend.committed(final, number)

    def read_current(self) -> int:
        """The committed generation number; IndexCorruptError when CURRENT is unreadable."""
        try:
            return int(json.loads((self.root / "CURRENT").read_text("utf-8"))["generation"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(self.root, f"CURRENT unreadable: {exc}") from exc

    def gc(self, current: int) -> None:
        """Delete generations older than the previous one (kept for searches that are still running)."""
        for path in self.root.glob("gen-*"):
            if path.name.endswith(".tmp"):
                continue
            try:
                number = int(path.name.split("-")[1])
            except ValueError:
                continue
            if number < current - 1:
                shutil.rmtree(path, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> str:
    """Hard-link a file of the committed generation into the next one (copy lock files, or where links fail)."""
    if not os.path.basename(src).endswith(_NO_LINK_SUFFIXES):
        try:
            os.link(src, dst)
            return dst
        except OSError:
            pass
    return shutil.copy2(src, dst)


def committed_generations(root: Path) -> list[Path]:
    """Generation directories that a commit renamed into place (not temporary ones)."""
    return [p for p in root.glob("gen-*") if p.is_dir() and not p.name.endswith(".tmp")]


def newest_number(root: Path) -> int:
    """The highest generation number an index directory has used (CURRENT's, a folder's, also a temporary one's);
    -1 when none. A rebuild numbers on from it, so that no number names two different states: a process that had
    the index open (and caches keyed by generation number) then sees the rebuilt index as a new generation."""
    numbers = [-1]
    try:
        numbers.append(int(json.loads((root / "CURRENT").read_text("utf-8"))["generation"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for path in root.glob("gen-*"):
        try:
            numbers.append(int(path.name.split("-")[1].split(".")[0]))
        except ValueError:
            continue
    return max(numbers)


def rebuild_marker(root: Path) -> dict[str, Any] | None:
    """What an interrupted rebuild recorded in :data:`REBUILD_MARKER` (corpus_dir, started_at, kept), or None."""
    try:
        marker = json.loads((root / REBUILD_MARKER).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def last_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of the generation CURRENT names, else of the newest generation whose manifest is readable
    (a damaged index keeps the previous generation until the next commit); None when there is none."""
    try:
        named = [root / f"gen-{int(json.loads((root / 'CURRENT').read_text('utf-8'))['generation']):08d}"]
    except (OSError, ValueError, KeyError, TypeError):
        named = []
    newest = sorted(committed_generations(root), key=lambda p: p.name, reverse=True)
    for gen_dir in named + newest:
        try:
            manifest = json.loads((gen_dir / "manifest.json").read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and isinstance(manifest.get("documents"), dict):
            return manifest
    return None


def remembered_corpus(root: Path) -> str | None:
    """The corpus dir of an interrupted rebuild, else the one recorded by the newest readable manifest."""
    marker = rebuild_marker(root)
    if marker and marker.get("corpus_dir"):
        return marker["corpus_dir"]
    for manifest in sorted(root.glob("gen-*/manifest.json"), reverse=True):
        try:
            value = json.loads(manifest.read_text("utf-8")).get("corpus_dir")
        except (OSError, ValueError):
            continue
        if value:
            return value
    return None
