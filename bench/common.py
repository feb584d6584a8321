"""Helpers shared by the bench scripts."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


def fresh_engine(index_dir: Path, cache_dir: Path | None) -> Any:
    """A new Engine on an emptied index dir whose embedding cache is the shared ``cache_dir`` (a symlink).

    Indexes are rebuilt on every run so figures reflect the current cleaning/splitting code; only embeddings,
    which depend on passage content alone, are reused between runs.
    """
    from indexer import Engine

    if index_dir.exists():
        shutil.rmtree(index_dir)
    index_dir.mkdir(parents=True)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        os.symlink(cache_dir.resolve(), index_dir / "cache")
    return Engine.open(index_dir)
