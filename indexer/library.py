"""The library shipped in ``corpus/``: regenerate its passage vectors after the texts (or the splitting) changed.

    python -m indexer.library vectors [CORPUS]      # default corpus/; writes CORPUS/.vectors/<model>.npy + .json

Imports CORPUS into a scratch index as ``make run`` does (the vectors already shipped seed it, so only passages
that changed are encoded, at ~10 a second), then writes what the import encoded for the configured model -- every
passage's vector and its sentence windows' (float16, keyed by their embedding-cache keys) -- through
:mod:`indexer.embed.shipped`.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from indexer.config import Config
from indexer.embed.cache import EmbeddingCache
from indexer.embed.shipped import write_shipped
from indexer.text.windows import window_key, window_texts
from indexer.types import Passage

logger = logging.getLogger(__name__)


def cache_keys(p: Passage) -> list[str]:
    """The embedding-cache keys an import encodes for one passage: its content hash, then its sentence windows'
    (:mod:`indexer.text.windows`; search re-scores candidates with them)."""
    return [p.content_hash(), *(window_key(t) for t in window_texts(p.title, p.section, p.text))]


def build_vectors(corpus: str | Path, config: Config | None = None, progress: bool = False,
                  index_dir: str | Path | None = None) -> tuple[Path, int, int]:
    """Write the shipped vectors of ``corpus`` for the configured model; (json path, vectors, passages encoded).

    ``index_dir``: the scratch index to import into (kept, so that a second run finds its embedding cache);
    default a temporary folder."""
    from indexer.engine import Engine

    src = Path(corpus).resolve()
    cfg = config or Config.from_env()
    with tempfile.TemporaryDirectory(prefix="partyqa-vectors-") as tmp:
        with Engine.open(Path(index_dir) if index_dir else Path(tmp) / "index", cfg) as eng:
            report = eng.import_dir(src, progress=progress)
            if report.errors:
                raise SystemExit(f"{len(report.errors)} file(s) could not be read: {report.errors[:3]}")
            passages = [Passage.from_dict(p) for doc_id in sorted(eng.doc_ids())
                        for p in eng.document(doc_id)["passages"]]
            hashes = list(dict.fromkeys(key for p in passages for key in cache_keys(p)))
            model_id = eng.encoder.model_id
            cached = EmbeddingCache(eng.root / "cache", model_id).get_many(hashes)
            missing = [h for h in hashes if h not in cached]
            if missing:
                raise SystemExit(f"{len(missing)} passages or windows have no vector in the scratch index's cache")
            path = write_shipped(src, model_id, hashes, np.stack([cached[h] for h in hashes]))
    return path, len(hashes), report.passages_encoded


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m indexer.library vectors [CORPUS]``."""
    ap = argparse.ArgumentParser(prog="python -m indexer.library", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("vectors", help="regenerate CORPUS/.vectors for the configured embedding model")
    p.add_argument("corpus", nargs="?", default="corpus")
    p.add_argument("--index-dir", help="scratch index to import into, kept for the next run (default: a temporary "
                   "one)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    path, count, encoded = build_vectors(args.corpus, progress=True, index_dir=args.index_dir)
    size = sum(f.stat().st_size for f in (path, path.with_name(path.name[: -len(".json")] + ".npy")))
    print(f"{path}: {count} vectors of passages and their sentence windows ({encoded} passages encoded now, the "
          f"others shipped or cached), {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
