"""One-off scale run of the vector half: a vector index of N rows (1M) made from a smaller index's vectors.

The 1M-passage corpus of ``bench.speed`` is 77 replicas of party-docs, so its vectors are the ~13k distinct
passage vectors repeated; this builds exactly that vector index without re-running whoosh over a million passages,
then measures it the way the engine uses it. Each step runs in its own process (its own peak RSS):

    .venv/bin/python -m bench.scale build --from bench/results/work/speed-100k/index --rows 1000000 --out b.json
    .venv/bin/python -m bench.scale query --vectors bench/results/work/scale-1000k/vectors --out q.json
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .common import WORK, current_rss_mb, dir_bytes, latency_summary, loadavg, peak_rss_mb, setup_logging, write_json


def build(source: Path, rows: int, dest: Path) -> dict[str, Any]:
    """Replicate the vectors of ``source`` (an index directory, or a ``vectors`` folder) to ``rows`` rows (sNN/
    prefixes, as the replica corpora) and save them as the write path does (faiss IVF built at the save); timed."""
    from indexer import Config, Engine
    from indexer.backends.local.vectors import NumpyVectorIndex

    if not NumpyVectorIndex.exists(source):
        with Engine.open(source, Config.from_env(reranker="")) as eng:
            source = eng._state().path / "vectors"
    src = NumpyVectorIndex.open(source, mmap=True)
    base, ids, n = np.asarray(src._buf[: src.count()]), src.ids(), src.count()
    reps = math.ceil(rows / n)
    big_ids = [f"s{r:02d}/{pid}" for r in range(reps) for pid in ids][:rows]
    index = NumpyVectorIndex.create(dest, src.model_id, src.dim)
    t0 = time.perf_counter()
    index.add(big_ids, np.tile(base, (reps, 1))[:rows])
    t_add = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.save()
    t_save = time.perf_counter() - t0
    return {"rows": rows, "source_rows": n, "add_seconds": round(t_add, 1), "save_seconds_with_ann": round(t_save, 1),
            "disk_bytes": {f.name: f.stat().st_size for f in dest.iterdir() if f.is_file()},
            "disk_total": dir_bytes(dest), "peak_rss_mb": peak_rss_mb(), "loadavg_after": loadavg()}


def query(vectors: Path, probes: Sequence[float], exact_sample: int = 40, depth: int = 50) -> dict[str, Any]:
    """RSS of a reader (mmap, as LocalReader opens it), then ANN vs exact latency and recall on the dev questions."""
    from indexer import Config
    from indexer.embed.encoders import load_encoder
    from indexer.backends.local.vectors import NumpyVectorIndex

    from .speed import ann_questions, ann_sweep

    questions = ann_questions()
    matrix = load_encoder(Config.from_env(reranker="")).encode_queries(questions)
    rss0 = current_rss_mb()
    t0 = time.perf_counter()
    vec = NumpyVectorIndex.open(vectors, mmap=True)
    assert vec.approximate(), "no approximate index at this size: check PARTYQA_ANN_THRESHOLD"
    open_s = time.perf_counter() - t0
    out: dict[str, Any] = {"rows": vec.count(), "questions": len(questions), "open_seconds": round(open_s, 2),
                           "nlist": int(vec._saved_ann().index.nlist), "settings": vars(vec.ann_settings)}
    for q in matrix:  # what a serving reader holds: the IVF, ids and the rows it re-scored (before any exact scan)
        vec.search_many(q.reshape(1, -1), depth)
    out["rss_reader_after_ann_searches_mb"] = round(current_rss_mb() - rss0, 1)
    out["rss_anon_mb"], out["rss_file_mb"] = _status_mb("RssAnon"), _status_mb("RssFile")  # private vs mapped files
    sample = matrix[:exact_sample]
    times, exact = [], []
    for q in sample:
        t = time.perf_counter()
        exact.append(vec.search_many(q.reshape(1, -1), depth, exact=True)[0])
        times.append(time.perf_counter() - t)
    out["exact"] = {**latency_summary(times), "questions": len(sample)}
    out["probe"] = ann_sweep(vec, matrix, exact, probes, depth)  # recall over the exact sample's questions
    out["rss_reader_after_exact_too_mb"] = round(current_rss_mb() - rss0, 1)
    out["peak_rss_mb"] = peak_rss_mb()
    out["loadavg_after"] = loadavg()
    return out


def _status_mb(key: str) -> float | None:
    """A line of /proc/self/status in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; writes one JSON file per step."""
    ap = argparse.ArgumentParser(description="PartyQA one-off scale run of the vector half")
    sub = ap.add_subparsers(dest="step", required=True)
    b = sub.add_parser("build")
    b.add_argument("--from", dest="source", type=Path, required=True,
                   help="an index (or its gen-N/vectors folder) whose vectors are replicated")
    b.add_argument("--rows", type=int, default=1_000_000)
    b.add_argument("--dest", type=Path, default=WORK / "scale-1000k" / "vectors")
    q = sub.add_parser("query")
    q.add_argument("--vectors", type=Path, default=WORK / "scale-1000k" / "vectors")
    q.add_argument("--probes", default="0.05,0.1,0.2,0.4", help="shares of the IVF lists searched")
    for p in (b, q):
        p.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    setup_logging()
    if args.step == "build":
        res = build(args.source, args.rows, args.dest)
    else:
        res = query(args.vectors, [float(x) for x in args.probes.split(",") if x.strip()])
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
