"""Corpus sync: which files of a corpus directory changed since the index last saw it, and what that means for
the documents (added, updated, removed). Reading happens here; writing a generation is the storage layer's job.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from indexer.config import Config
from indexer.fsutil import write_json
from indexer.ingest.files import SUPPORTED_EXTENSIONS, iter_corpus_files, load_file_checked
from indexer.ingest.prepare import prepare
from indexer.progress import progress_iter
from indexer.types import Document, IngestError, PartyQAError, Passage

logger = logging.getLogger(__name__)

STAGED_PREFIX = ".partyqa-staged-"
IMPORTS_FILE = "imports.json"  # beside the index: what `import_dir` copied (relative path -> sha1s)
IMPORT_TMP_SUFFIX = ".partyqa-import"  # a copy in progress (a dot file: never scanned as a document)
IMPORT_SKIP = frozenset({"SOURCES.md", "README.md"})  # notes about an imported folder (at its top), not documents
SKIPPED_LINE = "(line skipped)"  # ends the reason of a bad line of a bulk .jsonl whose other records were indexed

# rel path -> (content sha1, [(document, its passages)])
Loaded = dict[str, tuple[str, list[tuple[Document, list[Passage]]]]]


@dataclass
class FileResult:
    """What one file of a write produced: its documents (with their passage counts), or why it was not indexed."""

    passages: dict[str, int] = field(default_factory=dict)  # doc id -> passages, the documents the file holds now
    changed: bool = False  # its documents were (re)indexed by this write (False: unchanged, or not indexed)
    error: str | None = None  # why the file was not indexed
    skipped_lines: list[str] = field(default_factory=list)  # bad lines of a bulk .jsonl (its other lines were)

    @property
    def doc_ids(self) -> list[str]:
        """The file's documents, in file order."""
        return list(self.passages)


@dataclass
class SyncReport:
    """What a write did: doc ids added / updated / removed / unchanged, and per-file errors.

    ``files`` says per file -- by the path as given to ``add``, or relative to the corpus for ``index`` -- which
    documents and passages it produced; it stays out of :meth:`to_dict` (the JSON of the CLI and the job records).
    """

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    passages_encoded: int = 0
    passages_retokenized: int = 0  # keyword half rebuilt from stored passages after an analyzer change
    passages_pending: int = 0  # passages of this write searchable by keyword, still waiting for their vectors
    files: dict[str, FileResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (without ``files``)."""
        out = asdict(self)
        del out["files"]
        return out

    def file(self, name: str) -> FileResult:
        """The result record of one file (created on first use)."""
        return self.files.setdefault(name, FileResult())

    def fail(self, name: str, reason: str) -> None:
        """One file was not indexed, for ``reason``."""
        self.errors.append({"path": name, "reason": reason})
        self.file(name).error = reason

    @property
    def changed(self) -> bool:
        """True when the index content changed."""
        return bool(self.added or self.updated or self.removed or self.passages_retokenized)


@dataclass
class Plan:
    """The document-level change one write makes: doc ids that leave, documents that come in."""

    drop_docs: set[str] = field(default_factory=set)
    new_docs: list[tuple[str, Document, list[Passage]]] = field(default_factory=list)  # (file rel, doc, passages)


def file_sha1(path: Path) -> str:
    """SHA-1 of a file's bytes (streamed)."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def scan(corpus: Path, manifest: dict[str, Any], report: SyncReport) -> tuple[dict[str, tuple[Path, str]], list[str]]:
    """Files of ``corpus`` that are new or changed (rel -> (path, sha1)) and indexed files that are gone.

    Unchanged files' doc ids go to ``report.unchanged``. A different corpus directory replaces the whole content.
    """
    same_corpus = manifest.get("corpus_dir") == str(corpus)
    old_files: dict[str, dict] = manifest["files"] if same_corpus else {}
    current: dict[str, Path] = {}
    for path in iter_corpus_files(corpus):
        current[path.relative_to(corpus).as_posix()] = path
    changed: dict[str, tuple[Path, str]] = {}
    for rel, path in current.items():
        digest = file_sha1(path)
        old = old_files.get(rel)
        if old and old["sha1"] == digest:
            report.unchanged.extend(old["doc_ids"])
            _unchanged(report, rel, old["doc_ids"], manifest)
        else:
            changed[rel] = (path, digest)
    gone = [rel for rel in old_files if rel not in current] if same_corpus else list(manifest["files"])
    return changed, gone


def recover_staged(manifest: dict[str, Any], corpus: Path) -> None:
    """Finish or discard copies staged by an ``add`` that was killed.

    A staged copy whose content the index already holds (the kill came after the commit) is renamed into the
    corpus, where it belongs; any other staged copy never made it into the index and is deleted.
    """
    files = manifest["files"] if manifest.get("corpus_dir") == str(corpus) else {}
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


def stage_files(paths: Iterable[str | Path], corpus: Path, manifest: dict[str, Any], report: SyncReport,
                staged: dict[str, Path], spooled: dict[str, str] | None = None,
                ) -> tuple[dict[str, tuple[Path, str]], dict[str, str]]:
    """Which of ``paths`` (files to ``add``) need indexing: rel -> (path to read, sha1), and rel -> the name given.

    Files already in the corpus are read in place. Copies of outside files are staged beside their final name
    (recorded in ``staged`` as they are made, so the caller can delete them whatever happens) and renamed into
    place by :func:`finish_staged` only after the commit. Missing, unsupported and unchanged files go to the report.
    ``spooled``: path -> SHA-1 (or "") of files the caller owns and never changes (a job's spool): staged as a
    hard link (the same bytes, not a copy; a copy only on another filesystem) and not hashed when the SHA-1 is given.
    """
    spooled = spooled or {}
    changed: dict[str, tuple[Path, str]] = {}
    display: dict[str, str] = {}
    same_corpus = manifest.get("corpus_dir") == str(corpus)
    for raw_path in paths:
        path = Path(raw_path)
        if not path.is_file():
            report.fail(str(path), "无法读取该文件 / file not found")
            continue
        if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
            report.fail(str(path), f"不支持的文件类型 / unsupported file type '{path.suffix}'; "
                                   f"supported: {', '.join(sorted(SUPPORTED_EXTENSIONS))}")
            continue
        resolved = path.resolve()
        inside = resolved.is_relative_to(corpus)
        rel = resolved.relative_to(corpus).as_posix() if inside else path.name
        own = str(raw_path) in spooled
        digest = spooled.get(str(raw_path)) or file_sha1(path)
        display[rel] = str(path)
        old = manifest["files"].get(rel) if same_corpus else None
        if old and old["sha1"] == digest:
            report.unchanged.extend(old["doc_ids"])
            _unchanged(report, str(path), old["doc_ids"], manifest)
            target = corpus / rel
            if not inside and (not target.is_file() or file_sha1(target) != digest):
                # Indexed, but a writer was killed before the copy reached the corpus: finish it now.
                target.parent.mkdir(parents=True, exist_ok=True)
                fix = corpus / f"{STAGED_PREFIX}{os.getpid()}-{len(staged)}-{path.name}"
                _put(path, fix, own)
                os.replace(fix, target)
            continue
        if inside:
            changed[rel] = (resolved, digest)
            continue
        stage = corpus / f"{STAGED_PREFIX}{os.getpid()}-{len(staged)}-{path.name}"
        _put(path, stage, own)
        staged[rel] = stage
        changed[rel] = (stage, digest)
    return changed, display


def _put(path: Path, dest: Path, link: bool) -> None:
    """Copy ``path`` to ``dest`` (a new name), or with ``link`` hard-link it there (a copy across filesystems)."""
    if link:
        try:
            os.link(path, dest)
            return
        except OSError:
            logger.info("cannot hard-link %s into the corpus (another filesystem?): copied", path)
    shutil.copy2(path, dest)


def finish_staged(staged: dict[str, Path], changed: dict[str, tuple[Path, str]], manifest: dict[str, Any],
                  corpus: Path) -> None:
    """Rename the staged copies whose content the committed ``manifest`` holds into the corpus."""
    files = manifest["files"]
    for rel, stage in staged.items():
        if files.get(rel, {}).get("sha1") == changed[rel][1]:
            (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage, corpus / rel)


def load_changed(corpus: Path, changed: dict[str, tuple[Path, str]], excluded: dict[str, list[str]],
                 report: SyncReport, config: Config, progress: bool, display: dict[str, str]) -> Loaded:
    """Read, clean and split changed files; per-file errors go to the report and the file is skipped whole."""
    loaded: Loaded = {}
    items = sorted(changed.items())
    for rel, (path, digest) in progress_iter(items, "读取文档 reading", "file", progress, minimum=2):
        try:
            raws, problems = load_file_checked(path, doc_id=rel, max_bytes=int(config.max_file_mb * 1024 * 1024))
            for problem in problems:  # bad lines of a bulk jsonl: reported, the valid lines are kept
                name = display.get(rel, str(corpus / rel))
                report.errors.append({"path": name, "reason": f"{problem} {SKIPPED_LINE}"})
                report.file(display.get(rel, rel)).skipped_lines.append(f"{problem} {SKIPPED_LINE}")
            for raw in raws:
                raw.source = str(corpus / rel)
            skip = set(excluded.get(rel, []))
            docs = [prepare(raw) for raw in raws if raw.doc_id not in skip]
        except IngestError as exc:
            report.errors.append({"path": display.get(rel, str(corpus / rel)), "reason": exc.reason})
            report.file(display.get(rel, rel)).error = exc.reason
            logger.warning("skipped %s: %s", rel, exc.reason)
            continue
        except Exception as exc:  # a loader bug must not abort the other files
            report.fail(display.get(rel, rel), f"无法读取该文件 / {type(exc).__name__}: {exc}")
            logger.exception("failed to read %s", rel)
            continue
        loaded[rel] = (digest, docs)
    return loaded


def plan_changes(manifest: dict[str, Any], loaded: Loaded, gone: list[str], report: SyncReport,
                 display: dict[str, str] | None = None) -> Plan:
    """Which doc ids leave and which documents come in; updates ``manifest["files"]`` and the report.

    ``display``: the names the files were given by (rel -> path given to ``add``), which the report uses.
    """
    display = display or {}
    plan = Plan()
    for rel in gone:
        entry = manifest["files"].pop(rel, None)
        manifest.get("excluded", {}).pop(rel, None)
        if entry:
            plan.drop_docs.update(entry["doc_ids"])
            report.removed.extend(entry["doc_ids"])
    owner = {d: meta.get("file") for d, meta in manifest["documents"].items()}
    for rel, (digest, docs) in loaded.items():
        old_entry = manifest["files"].get(rel)
        old_ids = set(old_entry["doc_ids"]) if old_entry else set()
        clash = [d.doc_id for d, _ in docs
                 if owner.get(d.doc_id) not in (None, rel) and d.doc_id not in plan.drop_docs]
        if clash:
            report.fail(display.get(rel, rel), f"文档编号与已有文档重复 / document id(s) already used by another file: "
                                             f"{', '.join(clash[:5])}")
            continue
        new_ids = [d.doc_id for d, _ in docs]
        plan.drop_docs.update(old_ids)
        result = report.file(display.get(rel, rel))
        result.changed = True
        for doc, passages in docs:
            plan.new_docs.append((rel, doc, passages))
            (report.updated if doc.doc_id in old_ids else report.added).append(doc.doc_id)
            result.passages[doc.doc_id] = len(passages)
        report.removed.extend(sorted(old_ids - set(new_ids)))
        manifest["files"][rel] = {"sha1": digest, "doc_ids": new_ids}
    return plan


def import_files(root: Path, src: Path, data: Path) -> None:
    """Copy new or changed files of ``src`` into ``data`` (each atomically) and record them in imports.json.

    What was imported is remembered by relative path and sha1 in ``<root>/imports.json``, so a sample the user
    removed is not brought back by the next import, while a changed sample (a new sha1) is imported again. A
    data-folder file that was not imported (the user's own upload of the same name) is never overwritten.
    The folder's own notes (:data:`IMPORT_SKIP`: corpus/SOURCES.md) and hidden folders (corpus/.vectors) are not
    imported.
    """
    record_path = root / IMPORTS_FILE
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
        if rel in IMPORT_SKIP:
            continue
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


def _unchanged(report: SyncReport, name: str, doc_ids: list[str], manifest: dict[str, Any]) -> None:
    """Record an unchanged file's documents (with their passage counts) in the report."""
    docs = manifest["documents"]
    report.file(name).passages.update({d: docs[d]["passages"] if d in docs else 0 for d in doc_ids})


