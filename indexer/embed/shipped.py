"""Passage vectors shipped beside a corpus (``<corpus>/.vectors/``): checked against the model and the passages'
content hashes, they seed the embedding cache so that an import encodes only what they do not cover.

Two files per model, named after its id: ``<model>.npy`` (float16 rows, L2-normalised) and ``<model>.json``
(``model_id``, ``dim``, ``count`` and the passages' content hashes in row order). A hidden folder: corpus scans
skip it, so it is never read as a document. ``python -m indexer.library vectors corpus/`` regenerates it.
"""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from indexer.embed.cache import EmbeddingCache, _safe_name
from indexer.embed.encoders import l2_normalize
from indexer.fsutil import write_atomic

logger = logging.getLogger(__name__)

SHIPPED_DIR = ".vectors"
FORMAT = 1


def shipped_paths(corpus_dir: str | Path, model_id: str) -> tuple[Path, Path]:
    """The (json, npy) files holding ``model_id``'s vectors for the corpus at ``corpus_dir``."""
    base = Path(corpus_dir) / SHIPPED_DIR / _safe_name(model_id)  # model ids hold dots: no with_suffix
    return base.with_name(base.name + ".json"), base.with_name(base.name + ".npy")


def load_shipped(corpus_dir: str | Path, model_id: str) -> tuple[list[str], np.ndarray] | None:
    """(content hashes, float32 vectors) shipped for ``model_id``, or None when absent or not for this model
    (a damaged or mismatched file is logged and ignored: the passages are then encoded)."""
    meta_path, vec_path = shipped_paths(corpus_dir, model_id)
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
        if meta.get("format") != FORMAT or meta.get("model_id") != model_id:
            raise ValueError(f"made for model {meta.get('model_id')!r} (format {meta.get('format')!r})")
        hashes = [str(h) for h in meta["hashes"]]
        vecs = np.load(vec_path, allow_pickle=False)
        if vecs.ndim != 2 or vecs.shape != (len(hashes), int(meta["dim"])):
            raise ValueError(f"vectors of shape {vecs.shape} for {len(hashes)} hashes of dimension {meta['dim']}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("%s: shipped vectors not used (%s); the passages are encoded instead", meta_path, exc)
        return None
    return hashes, l2_normalize(vecs)


def seed_cache(cache: EmbeddingCache, corpus_dir: str | Path) -> int:
    """Put the shipped vectors the cache lacks into it (and save); returns how many were added."""
    found = load_shipped(corpus_dir, cache.model_id)
    if found is None:
        return 0
    hashes, vecs = found
    if cache.dim is not None and vecs.shape[1] != cache.dim:
        logger.warning("shipped vectors have dimension %d, the cache %d: not used", vecs.shape[1], cache.dim)
        return 0
    new = [i for i, h in enumerate(hashes) if h not in cache]
    if new:
        cache.put_many([hashes[i] for i in new], vecs[new])
        cache.save()
    logger.info("shipped vectors: %d of %d added to the embedding cache", len(new), len(hashes))
    return len(new)


def write_shipped(corpus_dir: str | Path, model_id: str, hashes: Sequence[str], vectors: np.ndarray) -> Path:
    """Write the shipped vectors of ``model_id`` (float16) atomically; returns the json file's path."""
    vecs = np.asarray(vectors, dtype=np.float32)
    if vecs.ndim != 2 or vecs.shape[0] != len(hashes):
        raise ValueError(f"expected {len(hashes)} vectors, got shape {vecs.shape}")
    meta_path, vec_path = shipped_paths(corpus_dir, model_id)
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, vecs.astype(np.float16), allow_pickle=False)
    # 0644 like the checked-out files beside them: corpus/ may be served from a checkout by another user
    write_atomic(vec_path, lambda fh: fh.write(buf.getvalue()), mode=0o644)
    meta = {"format": FORMAT, "model_id": model_id, "dim": int(vecs.shape[1]), "count": len(hashes),
            "dtype": "float16", "vectors": vec_path.name, "hashes": list(hashes)}
    text = json.dumps(meta, ensure_ascii=False, indent=0)
    write_atomic(meta_path, lambda fh: fh.write(text.encode("utf-8")), mode=0o644)
    return meta_path
