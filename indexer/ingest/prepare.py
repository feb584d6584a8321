"""The prepare stage: a loaded document -> cleaned Document + passages (clean, then split). No index involved."""
from __future__ import annotations

from pathlib import Path

from indexer.ingest.clean import clean_text
from indexer.ingest.split import split_document
from indexer.types import Document, Passage, RawDocument


def prepare(raw: RawDocument) -> tuple[Document, list[Passage]]:
    """Clean a loaded document and split it into passages."""
    title, text = clean_text(raw.text, raw.title)
    if not title:
        title = Path(raw.doc_id).stem if raw.kind != "jsonl" else raw.doc_id
    doc = Document(doc_id=raw.doc_id, title=title, text=text, source=raw.source, kind=raw.kind, meta=dict(raw.meta))
    return doc, split_document(doc)
