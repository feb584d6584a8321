"""Plain data records that flow through the pipeline: ingest -> clean -> split -> index -> search."""
from __future__ import annotations

import hashlib
import sys
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RawDocument:
    """A document as a loader read it: decoded text, not yet cleaned."""

    doc_id: str
    text: str
    title: str | None = None  # a title the format itself gave (docx core title, html <title>, jsonl field)
    source: str = ""  # the file it came from
    kind: str = "txt"  # txt | md | docx | pdf | html | jsonl
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Document:
    """A cleaned document: the text users read, and where it came from."""

    doc_id: str
    title: str
    text: str
    source: str = ""
    kind: str = "txt"
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


@dataclass(slots=True)
class Passage:
    """A retrievable unit: sentence-bounded text with its section path and offsets into Document.text."""

    doc_id: str
    title: str
    section: str
    text: str
    start: int
    end: int
    ordinal: int

    @property
    def pid(self) -> str:
        """Stable passage id within an index: ``doc_id#ordinal``."""
        return f"{self.doc_id}#{self.ordinal}"

    def content_hash(self) -> str:
        """Hash of what the embedding of this passage depends on (title, section, text)."""
        h = hashlib.sha1()
        h.update(f"{self.title}\x1f{self.section}\x1f{self.text}".encode("utf-8"))
        return h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (spelled out: ``dataclasses.asdict`` took 3 of the 5 s that writing the passage
        store of 100k passages took)."""
        return {"doc_id": self.doc_id, "title": self.title, "section": self.section, "text": self.text,
                "start": self.start, "end": self.end, "ordinal": self.ordinal}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Passage":
        """Build a Passage from :meth:`to_dict` output.

        The document id, title and section repeat on every passage of a document: interned, each is one string
        in memory instead of one per parsed line (about a third of a loaded passage store)."""
        return cls(sys.intern(d["doc_id"]), sys.intern(d["title"]), sys.intern(d["section"]), d["text"],
                   d["start"], d["end"], d["ordinal"])


class PartyQAError(Exception):
    """Base class of errors shown to users: the message says what went wrong and what to do."""


class IngestError(PartyQAError):
    """A file could not be read into a document (unsupported, corrupt, undecodable, no text layer)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class QueryError(PartyQAError):
    """A question could not be searched (empty, too long)."""


class ModelError(PartyQAError):
    """An embedding or reranking model could not be loaded."""


class IndexLockedError(PartyQAError):
    """Another writer holds the index lock past the timeout."""


@dataclass
class KeywordHit:
    """One keyword match: passage id, BM25F score, and the query terms that matched in it."""

    pid: str
    score: float
    terms: list[str] = field(default_factory=list)
