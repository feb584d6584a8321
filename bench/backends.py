"""Local backend (whoosh + numpy) vs Milvus Lite: build time and query latency per mode on the same passages.

Passages: real party-docs files (speed.select_links: regulations, then articles, then replicas ``rNN/<file>``) up
to each size. Dense half: deterministic random unit vectors of 384 dimensions (HashEncoder, the e5-small width)
instead of the model, for both backends -- so build times leave out encoding and query latencies leave out the
~10 ms query encoding, and what is compared is the storage and search of each backend. Same questions (dev
questions, then quiz stems), k=5, each search alone, after a warm-up; both backends in this one process, one after
the other.

    .venv/bin/python -m bench.backends --sizes 10000,50000 --queries 200      # docs/SCALING.md figures
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from .common import HashEncoder, WORK, latency_summary, loadavg, machine, setup_logging, skip_without_shared, symlink_corpus

logger = logging.getLogger("bench.backends")

MODES = ("keyword", "semantic", "hybrid")


class WideHashEncoder(HashEncoder):
    """HashEncoder at the width of multilingual-e5-small, so vector storage and search cost what they would."""

    model_id = "bench-hash-384"
    dim = 384


def run_size(size: int, n_queries: int, backends: list[str], work: Path) -> dict[str, Any]:
    """Build one index per backend over ~size passages and time single searches per mode."""
    import indexer.engine
    from indexer import Config, Engine

    from .speed import query_set, select_links, size_label

    indexer.engine.load_encoder = lambda cfg: WideHashEncoder()  # type: ignore[assignment]
    label = size_label(size)
    links, est, replicas = select_links(size)
    corpus = symlink_corpus(work / f"backends-{label}" / "corpus", links)
    questions = query_set(n_queries)
    out: dict[str, Any] = {"size": size, "label": label, "files": len(links), "replicas": replicas, "backends": {}}
    for name in backends:
        index_dir = work / f"backends-{label}" / f"index-{name}"
        shutil.rmtree(index_dir, ignore_errors=True)
        load0 = loadavg()
        t0 = time.perf_counter()
        eng = Engine.open(index_dir, Config.from_env(backend=name, milvus_uri="", reranker=""))
        report = eng.index(corpus)
        t_build = time.perf_counter() - t0
        row: dict[str, Any] = {"passages": eng.stats()["passages"], "build_seconds": round(t_build, 1),
                               "errors": len(report.errors)}
        eng.search_many(questions[:10], k=5, mode="hybrid")  # warm-up (postings cache, Milvus segments)
        for mode in MODES:
            times = []
            for q in questions:
                t = time.perf_counter()
                eng.search(q, k=5, mode=mode)
                times.append(time.perf_counter() - t)
            row[mode] = latency_summary(times)
        t = time.perf_counter()
        eng.search_many(questions[:32], k=5, mode="hybrid")
        row["hybrid_batch32_ms_per_question"] = round((time.perf_counter() - t) * 1000 / 32, 2)
        row["loadavg_before"], row["loadavg_after"] = load0, loadavg()
        eng.close()
        logger.info("%s %s: %s", label, name, json.dumps(row, ensure_ascii=False))
        out["backends"][name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the measurements as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--backends", default="local,milvus")
    ap.add_argument("-o", "--output", type=Path, default=None)
    args = ap.parse_args(argv)
    setup_logging()
    if skip_without_shared("backends"):
        return 0
    results = {"machine": machine(), "vectors": "random unit vectors, 384-d (WideHashEncoder)",
               "sizes": [run_size(int(s), args.queries, args.backends.split(","), WORK)
                         for s in args.sizes.split(",")]}
    text = json.dumps(results, ensure_ascii=False, indent=1)
    if args.output:
        args.output.write_text(text, "utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
