"""PartyQA 党建问答检索: ingest -> clean -> split -> index (keyword, vectors) -> search (fuse, highlight)."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import logging
import sys
from typing import TYPE_CHECKING

from indexer.config import Config
from indexer.types import Document, IngestError, Passage, PartyQAError, QueryError, RawDocument

if TYPE_CHECKING:
    from indexer.engine import Engine

__all__ = ["Config", "Document", "Engine", "IngestError", "Passage", "PartyQAError", "QueryError", "RawDocument"]

logging.getLogger(__name__).addHandler(logging.NullHandler())

# Module paths stored inside indexes: whoosh pickles the keyword schema, which names the analyzer class by its module
# path, and indexes built before the pipeline layout (issue 20) say ``indexer.analyzer``. Those paths import as the
# modules that now hold the classes, so such an index opens and searches unchanged.
_STORED_MODULE_PATHS = {"indexer.analyzer": "indexer.text.analyzer"}


class _StoredPathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a module path recorded in an older index as the module that now holds its classes."""

    def find_spec(self, fullname: str, path=None, target=None):  # noqa: ANN001 -- the finder protocol
        """A spec for an old stored path, None for every other module."""
        if fullname not in _STORED_MODULE_PATHS:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):  # noqa: ANN001
        """The current module itself, so that classes unpickled through the old path are the current classes."""
        return importlib.import_module(_STORED_MODULE_PATHS[spec.name])

    def exec_module(self, module) -> None:  # noqa: ANN001
        """Nothing to run: the module is already loaded."""


sys.meta_path.append(_StoredPathFinder())


def __getattr__(name: str):
    """Import the Engine lazily so that `partyqa split` never loads the index or model stack."""
    if name == "Engine":
        from indexer.engine import Engine

        return Engine
    raise AttributeError(name)
