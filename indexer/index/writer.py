"""The one commit path: every write (sync, add, remove, a model change, backlog vectors) builds generation N+1
aside through the backend's write batch and switches CURRENT last.

Each write runs inside :meth:`Writer.writing` -- the write lock, then the newest committed generation -- and edits a
deep copy of its manifest (:func:`manifest_copy`); :meth:`Writer.commit` is the only place a generation is built
and committed, so an exception or a kill at any point leaves the previous generation searchable and consistent.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from indexer.backends.base import Backend, WriteBatch
from indexer.config import Config
from indexer.embed.cache import CacheLock, EmbeddingCache, embed_passages
from indexer.embed.encoders import Encoder, passage_context
from indexer.fsutil import checkpoint, write_json
from indexer.index.generations import (PENDING_KEY, CurrentGeneration, Generations, ManifestChange, Snapshot, now,
                                       write_gen_files)
from indexer.index.metadata import drop_corrections, keyword_passages, retitled
from indexer.index.sentences import sentence_store, store_entries
from indexer.index.sync import (Plan, SyncReport, finish_staged, load_changed, plan_changes, recover_staged, scan,
                                stage_files)
from indexer.text.analyzer import analyzer_fingerprint
from indexer.types import Passage

logger = logging.getLogger(__name__)


# A change of the manifest committed in the same generation as a write's documents (e.g. an FAQ file's standard
# questions): ``curate(gen, manifest, plan)`` runs after the plan, before the build; raising aborts the write.
Curate = Callable[[Snapshot, dict[str, Any], Plan], None]


def manifest_copy(gen: Snapshot) -> dict[str, Any]:
    """A deep copy of a committed generation's manifest, for a write to edit (the snapshot's stays as committed)."""
    return json.loads(json.dumps(gen.manifest))


class Writer:
    """Writes an index directory: reads what changed, plans the document changes, and commits them."""

    def __init__(self, root: Path, config: Config, backend: Backend, store: Generations, current: CurrentGeneration,
                 encoder: Callable[[], Encoder], cache_lock: CacheLock):
        self.root = root
        self.config = config
        self.backend = backend
        self.store = store
        self.current = current
        self._encoder = encoder  # loads the model on first use (a removal never does)
        self.cache_lock = cache_lock

    @contextmanager
    def writing(self) -> Iterator[Snapshot]:
        """The write prologue: hold the write lock (one writer across threads and processes) and yield the newest
        committed generation, which the write builds on."""
        with self.store.write_lock():
            yield self.current.get(force=True)

    # ------------------------------------------------------------------ the writes
    def sync(self, corpus: Path, progress: bool) -> SyncReport:
        """Index new and changed files of ``corpus``, drop deleted ones, skip unchanged ones (keyword first)."""
        with self.writing() as gen:
            report = SyncReport()
            recover_staged(gen.manifest, corpus)
            changed, gone = scan(corpus, gen.manifest, report)
            self.apply(gen, corpus, changed, gone, report, progress=progress)
        return report

    def add(self, paths: Sequence[str | Path], corpus: Callable[[], Path], progress: bool,
            curate: Curate | None = None, spooled: dict[str, str] | None = None) -> SyncReport:
        """Copy files into the corpus folder ``corpus()`` names (staged, renamed in after the commit) and index them;
        ``curate``: see :meth:`apply`; ``spooled``: see :func:`stage_files`."""
        with self.writing() as gen:
            folder = corpus()
            folder.mkdir(parents=True, exist_ok=True)
            report = SyncReport()
            recover_staged(gen.manifest, folder)
            staged: dict[str, Path] = {}
            try:
                changed, display = stage_files(paths, folder, gen.manifest, report, staged, spooled)
                self.apply(gen, folder, changed, [], report, progress=progress, display=display, curate=curate)
                finish_staged(staged, changed, self.current.get().manifest, folder)
            finally:
                for stage in staged.values():
                    if stage.exists():
                        stage.unlink()
        return report

    def remove(self, doc_ids: Sequence[str], curate: Curate | None = None) -> list[str]:
        """Remove documents (and their files, kept under ``removed/``); returns the ids that were indexed.
        ``curate(gen, manifest, plan)``: a further manifest change committed with the removal."""
        with self.writing() as gen:
            manifest = manifest_copy(gen)
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
            drop_corrections(manifest, wanted)  # a person's corrections leave with the document
            plan = Plan(drop_docs=set(wanted))
            if curate is not None:
                curate(gen, manifest, plan)
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
                self.write_generation(gen, manifest, plan, SyncReport(), progress=False, embed=False)
            except BaseException:
                for src, dest in moved:  # the removal did not happen: put the files back
                    if dest.exists() and not src.exists():
                        shutil.move(str(dest), src)
                raise
            logger.info("removed %d document(s): %s", len(wanted), ", ".join(wanted))
            return wanted

    def reembed(self) -> None:
        """If the index was embedded with another model, re-embed every passage with the configured one."""
        with self.writing() as gen:
            if gen.manifest.get("model_id") not in (None, self._encoder().model_id):
                corpus = Path(gen.manifest["corpus_dir"]) if gen.manifest.get("corpus_dir") else self.root
                self.apply(gen, corpus, {}, [], SyncReport(), progress=False)

    def commit_manifest(self, change: ManifestChange, point: str = "curation") -> Any:
        """Run ``change(gen, manifest_copy)`` under the write lock; when it returns a truthy result, commit the
        changed manifest as the next generation and return that result. The other files stay those of the previous
        generation (shared), except the keyword entries of a document whose corrected title changed: they are
        written again under that title. ``point``: the kill tests' checkpoint before the commit (``curation``,
        ``metadata`` for a correction)."""
        with self.writing() as gen:
            manifest = manifest_copy(gen)
            result = change(gen, manifest)
            if not result:
                return result
            checkpoint(self.root, point)
            n_vectors = len(gen.passages) - len(manifest.get(PENDING_KEY) or [])
            docs = retitled(gen.manifest, manifest)

            def build(tmp: Path, batch: WriteBatch) -> int:
                if docs:  # the title field of those documents' passages; their vectors stay
                    batch.keyword(docs, keyword_passages((gen.passages[pid] for d in sorted(docs)
                                                          for pid in gen.by_doc.get(d, ())), manifest))
                    batch.vectors([], [], np.zeros((0, 1), dtype=np.float32), manifest.get("model_id") or "")
                    checkpoint(self.root, "keyword")
                write_json(tmp / "manifest.json", manifest)  # texts and passages: unchanged (shared)
                return n_vectors

            self.commit(gen, len(gen.passages), build)
            return result

    def commit_vectors(self, pids: list[str], hashes: list[str], vectors: np.ndarray, model_id: str) -> list[str]:
        """Commit vectors of pending passages as the next generation; returns the pids whose vectors it committed.

        Passages that left the pending list meanwhile (removed, replaced by a changed file, committed by another
        process) or whose content changed are skipped.
        """
        with self.writing() as gen:
            pending = list(gen.manifest.get(PENDING_KEY) or [])
            waiting = set(pending)
            take = [i for i, (pid, h) in enumerate(zip(pids, hashes))
                    if pid in waiting and gen.passages[pid].content_hash() == h]
            if not take or gen.manifest.get("model_id") not in (None, model_id):
                return []
            done = {pids[i] for i in take}
            manifest = manifest_copy(gen)
            manifest[PENDING_KEY] = [pid for pid in pending if pid not in done]
            manifest["model_id"] = model_id

            def build(tmp: Path, batch: WriteBatch) -> int:
                batch.vectors([], [pids[i] for i in take], vectors[take], model_id,
                              rebuild=gen.manifest.get("model_id") is None)
                write_json(tmp / "manifest.json", manifest)  # texts and passages are unchanged (shared files)
                return len(gen.passages) - len(manifest[PENDING_KEY])

            self.commit(gen, len(gen.passages), build)
        logger.info("committed vectors of %d passages; %d still pending", len(take), len(manifest[PENDING_KEY]))
        return [pids[i] for i in take]

    # ------------------------------------------------------------------ one generation
    def apply(self, gen: Snapshot, corpus: Path, changed: dict[str, tuple[Path, str]], gone: list[str],
              report: SyncReport, progress: bool, display: dict[str, str] | None = None,
              curate: Curate | None = None) -> SyncReport:
        """Read the ``changed`` files, plan the document changes, and write them as the next generation.

        ``curate(gen, manifest, plan)``: a manifest change committed in the same generation (nothing is committed
        when it raises). A curated write states its files whole: documents of theirs excluded by an earlier
        ``remove`` are indexed again when a file lists them."""
        manifest = manifest_copy(gen)
        if curate is not None:
            for rel in changed:
                manifest.get("excluded", {}).pop(rel, None)
        corpus_changed = manifest.get("corpus_dir") != str(corpus)
        manifest["corpus_dir"] = str(corpus)
        loaded = load_changed(corpus, changed, manifest.get("excluded", {}), report, self.config, progress,
                              display or {})
        checkpoint(self.root, "read")
        plan = plan_changes(manifest, loaded, gone, report, display)
        model_changed = bool(gen.passages) and manifest.get("model_id") not in (None, self._encoder().model_id)
        retokenize = not gen.tokenized_with_current_analyzer()
        if not plan.drop_docs and not plan.new_docs and not model_changed and not corpus_changed and not retokenize:
            return report
        if curate is not None:
            curate(gen, manifest, plan)
        self.write_generation(gen, manifest, plan, report, progress, model_changed=model_changed,
                              retokenize=retokenize)
        logger.info("index %s: +%d ~%d -%d documents, %d unchanged, %d errors", self.root, len(report.added),
                    len(report.updated), len(report.removed), len(report.unchanged), len(report.errors))
        return report

    def write_generation(self, gen: Snapshot, manifest: dict[str, Any], plan: Plan, report: SyncReport,
                         progress: bool, model_changed: bool = False, retokenize: bool = False,
                         embed: bool = True) -> None:
        """Build generation N+1 from ``gen`` and ``plan`` through the backend's write batch, then commit it.

        Keyword first (a backend with ``keyword_first``): the new passages go into the keyword half and the
        passage store and are listed as pending vectors; the backlog commits their vectors later.
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
        left = [doc_id for doc_id in drop if doc_id not in texts]  # not back under the same id in this write
        for doc_id in left:
            manifest["documents"].pop(doc_id, None)
        drop_corrections(manifest, left)  # a person's corrections leave with the document, in this generation
        fresh = [p for _, _, ps in plan.new_docs for p in ps]
        fresh_ids = {p.pid for p in fresh}
        kept = {p.pid for p in passages}
        # Pending passages of documents that stay (and were not re-read) stay pending.
        pending = [pid for pid in gen.manifest.get(PENDING_KEY) or [] if pid in kept and pid not in fresh_ids]
        keyword_first = embed and self.backend.keyword_first and not model_changed

        def build(tmp: Path, batch: WriteBatch) -> int:
            nonlocal pending
            if retokenize:
                # Tokens of the stored passages are stale (dictionary, stopwords or analyzer code changed):
                # a fresh keyword half over every passage; vectors and the corpus files are untouched.
                logger.warning("index %s was tokenized with analyzer %s, now %s: re-tokenizing %d passages",
                               self.root, manifest.get("analyzer") or "(unrecorded)", analyzer_fingerprint(),
                               len(passages))
                report.passages_retokenized = len(passages)
                batch.keyword(drop, keyword_passages(passages, manifest), rebuild=True)
            else:
                # Every fresh pid is of a new document or of one dropped here: the keyword half need not look each
                # up to replace it (checked, as a document without a recorded file would slip past the plan).
                new_pids = not any(pid in gen.passages and gen.passages[pid].doc_id not in drop for pid in fresh_ids)
                batch.keyword(drop, keyword_passages(fresh, manifest), new_pids=new_pids)
            checkpoint(self.root, "keyword")

            if keyword_first:
                # The dropped documents' vectors leave now; the new passages' vectors come in later commits.
                batch.vectors(drop, [], np.zeros((0, 1), dtype=np.float32), manifest.get("model_id") or "")
                pending = pending + [p.pid for p in fresh]
                manifest["analyzer"] = analyzer_fingerprint()
                manifest["updated_at"] = stamp
            elif embed:
                encoder = self._encoder()
                to_embed = passages if model_changed else fresh
                if model_changed:
                    logger.warning("index was built with model %s; re-embedding %d passages with %s",
                                   manifest.get("model_id"), len(passages), encoder.model_id)
                    pending = []
                vectors, report.passages_encoded = self._embed(encoder, to_embed, progress)
                # A new model (or the first vectors of this index) starts the vector half afresh.
                batch.vectors(drop, [p.pid for p in to_embed], vectors, encoder.model_id,
                              rebuild=model_changed or manifest.get("model_id") is None)
                manifest["model_id"] = encoder.model_id
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

        self.commit(gen, len(passages), build)

    def commit(self, gen: Snapshot, n_passages: int, build: Callable[[Path, WriteBatch], int]) -> None:
        """Copy ``gen`` aside, let ``build`` change the copy through a write batch (it returns how many vectors
        the result holds), check both halves and switch CURRENT; on any failure the copy is discarded."""
        number = gen.number + 1
        tmp = self.store.new_gen_dir(gen.path, number)
        batch = None
        try:
            batch = self.backend.begin(gen.path, tmp, number)
            n_vectors = build(tmp, batch)
            batch.prepare_commit(n_passages, n_vectors)
            self.store.commit(tmp, number)
        except BaseException:
            if batch is not None:
                batch.abort()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.store.gc(self.current.get(force=True).number)

    def _embed(self, encoder: Encoder, passages: Sequence[Passage], progress: bool) -> tuple[np.ndarray, int]:
        """Vectors for passages committed with them (a model change, a backend without keyword-first), encoding
        only those not in the embedding cache; returns (vectors, n encoded)."""
        if not passages:
            return np.zeros((0, encoder.dim), dtype=np.float32), 0
        # Lock order: the write lock (held by the caller), then the cache lock; the backlog encoder never waits
        # for the write lock while it holds the cache lock, so this waits at most for one batch.
        with self.cache_lock():
            cache = EmbeddingCache(self.root / "cache", encoder.model_id)
            items = [(p.content_hash(), passage_context(p.title, p.section, p.text)) for p in passages]
            missing = len({h for h, _ in items} - set(cache.get_many([h for h, _ in items])))
            half = len(items) // 2
            first = embed_passages(encoder, cache, items[:half], batch_size=self.config.encode_batch,
                                   progress=progress)
            cache.save()
            checkpoint(self.root, "embedding")
            rest = embed_passages(encoder, cache, items[half:], batch_size=self.config.encode_batch,
                                  progress=progress)
            cache.save()
            vectors = np.concatenate([first, rest]) if half else rest
            # issue 22: their sentence windows too, beside the index (indexer.index.sentences)
            store_entries(sentence_store(self.root, encoder.model_id), encoder, cache, passages, vectors,
                          self.config.encode_batch)
        return vectors, missing
