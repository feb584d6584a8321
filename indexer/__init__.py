"""PartyQA 党建问答检索: ingest -> clean -> split -> index (keyword, vectors) -> search (fuse, highlight)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .config import Config
from .types import Document, IngestError, Passage, PartyQAError, QueryError, RawDocument

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Config", "Document", "Engine", "IngestError", "Passage", "PartyQAError", "QueryError", "RawDocument"]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str):
    """Import the Engine lazily so that `partyqa split` never loads the index or model stack."""
    if name == "Engine":
        from .engine import Engine

        return Engine
    raise AttributeError(name)
