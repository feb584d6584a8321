"""Search backends behind one seam (:mod:`indexer.backends.base`); :func:`make_backend` picks one from Config."""
from __future__ import annotations

from pathlib import Path

from indexer.config import Config
from indexer.types import PartyQAError
from indexer.backends.base import Backend, Reader, WriteBatch

BACKENDS = ("local", "milvus")

__all__ = ["BACKENDS", "Backend", "Reader", "WriteBatch", "make_backend"]


def make_backend(root: Path, config: Config) -> Backend:
    """The backend named by ``config.backend`` (``PARTYQA_BACKEND``) for the index directory ``root``."""
    name = (config.backend or "local").strip().lower()
    if name == "local":
        from indexer.backends.local.backend import LocalBackend

        return LocalBackend(root, config)
    if name == "milvus":
        from indexer.backends.milvus import MilvusBackend  # imports pymilvus, with a clear message when it is missing

        return MilvusBackend(root, config)
    raise PartyQAError(f"未知的存储后端 {config.backend!r}（PARTYQA_BACKEND），可选：{'、'.join(BACKENDS)} / unknown "
                       f"backend {config.backend!r} (PARTYQA_BACKEND); use one of {', '.join(BACKENDS)}")
