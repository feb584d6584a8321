"""Diagnostics behind the closing note of docs/BENCHMARKS.md: why a baseline wins where it does.

* ``tokens``  -- the same BM25Okapi scorer (rank_bm25) over the party-docs index's passages with three
  tokenizations: jieba ``lcut_for_search`` (the rank_bm25 baseline), plain ``jieba.lcut``, and PartyQA's own
  analyzer (index: ``indexer.text.analyzer.tokenize``; query: ``query_terms(expand_query(q))``, as the keyword half
  searches). Scored on the quiz and dev sets. It separates what PartyQA's tokenization costs or gains from what
  its whoosh BM25F set-up (fields, boosts, k1) does.
* ``overlap`` -- on the 10k speed index: the keyword half alone, the query encoder alone, and the keyword half
  while the encoder runs in another thread, as hybrid search does. Shows whether the two halves overlap.
* ``threads`` -- the query-latency step on the 10k index twice: as is (a lone question is encoded on every
  core, see ``E5Encoder.query_threads``) and with ``PARTYQA_THREADS=1`` (one encoder thread per question).

    .venv/bin/python -m bench.diagnose tokens overlap threads   # after the quality and speed runs (needs their indexes)
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import baselines, devset, quiz
from .common import RESULTS, ROOT, WORK, apply_stand_in, now_iso, read_json, setup_logging, write_json
from .metrics import score

logger = logging.getLogger("bench.diagnose")


def _bm25_rankings(corpus: baselines.PassageCorpus, doc_tok: Callable[[str], list[str]],
                   q_tok: Callable[[str], list[str]], questions: Sequence[str], k: int = 10) -> list[list[str]]:
    from rank_bm25 import BM25Okapi

    bm = BM25Okapi([doc_tok(t) for t in corpus.texts])
    out = []
    for q in questions:
        s = bm.get_scores(q_tok(q))
        out.append([corpus.pids[i] for i in np.argsort(s)[::-1][:k]])
    return out


def tokens(index_dir: Path) -> dict[str, Any]:
    """BM25Okapi with jieba search-mode, plain jieba and PartyQA analyzer tokens, on the quiz and dev sets."""
    from indexer import Config, Engine
    from indexer.text.analyzer import expand_query, query_terms, tokenize

    eng = Engine.open(index_dir, Config.from_env(reranker=""))
    try:
        passages = eng._state().passages
        limit = eng.config.max_query_chars
    finally:
        eng.close()
    corpus = baselines.PassageCorpus.from_passages(passages)
    items, _ = quiz.attach_gold(quiz.load_items(), passages)
    rows = devset.load_questions()
    sets = {"quiz": ([it["question"][:limit] for it in items], quiz.gold_sets(items), "passage"),
            "dev": ([r["question"] for r in rows], devset.gold_sets(rows, passages), "passage")}
    search_mode = baselines.jieba_tokenizer()
    plain = search_mode.__self__.lcut
    variants = {
        "jieba lcut_for_search (= rank_bm25 baseline)": (search_mode, search_mode),
        "jieba lcut": (plain, plain),
        "PartyQA analyzer (tokenize / query_terms+expansion)": (tokenize, lambda q: query_terms(expand_query(q))),
    }
    out: dict[str, Any] = {"passages": len(passages), "scorer": "rank_bm25.BM25Okapi defaults", "variants": {}}
    for name, (doc_tok, q_tok) in variants.items():
        out["variants"][name] = {}
        for set_name, (qs, gold, kind) in sets.items():
            table, _ = score(_bm25_rankings(corpus, doc_tok, q_tok, qs), {kind: gold[kind]}, {"all": list(range(len(qs)))})
            out["variants"][name][set_name] = table["all"][kind]
            logger.info("%s / %s: %s", name, set_name, table["all"][kind])
    return out


def overlap(index_dir: Path, n_queries: int = 100, rounds: int = 3) -> dict[str, Any]:
    """Per-query ms of the keyword half alone, the encoder alone, and the keyword half beside a running encoder."""
    from indexer import Config, Engine
    from indexer.text.analyzer import expand_query

    from .speed import query_set

    qs = query_set(n_queries)
    eng = Engine.open(index_dir, Config.from_env(reranker=""))
    try:
        gen = eng._state()
        enc = eng.encoder
        for q in qs[:5]:
            enc.encode_queries([q])
            gen.keyword.search(expand_query(q), 50)
        res: dict[str, list[float]] = {"keyword_alone": [], "encode_alone": [], "keyword_beside_encoder": [],
                                       "both_in_parallel": []}
        for _ in range(rounds):
            kw, en, kw_par, both = [], [], [], []
            for q in qs:
                e = expand_query(q)
                t = time.perf_counter()
                gen.keyword.search(e, 50)
                kw.append(time.perf_counter() - t)
                t = time.perf_counter()
                enc.encode_queries([q])
                en.append(time.perf_counter() - t)
                th = threading.Thread(target=enc.encode_queries, args=([q],))
                t = time.perf_counter()
                th.start()
                t_kw = time.perf_counter()
                gen.keyword.search(e, 50)
                kw_par.append(time.perf_counter() - t_kw)
                th.join()
                both.append(time.perf_counter() - t)
            for key, vals in zip(res, (kw, en, kw_par, both)):
                res[key].append(statistics.median(vals) * 1000)
        passages = len(gen.passages)
    finally:
        eng.close()
    return {"passages": passages, "queries": len(qs), "rounds": rounds,
            "p50_ms": {k: round(statistics.median(v), 2) for k, v in res.items()}}


def threads(index_dir: Path, out_dir: Path, n_queries: int = 150, rounds: int = 2) -> dict[str, Any]:
    """p50/p95 per mode from the speed query step, with the default query-encoding threads and with one thread."""
    out: dict[str, Any] = {"queries": n_queries, "rounds": rounds, "runs": {}}
    for label, value in (("all cores (default)", None), ("PARTYQA_THREADS=1", "1")):
        path = out_dir / "steps" / f"diagnose-threads-{'default' if value is None else 'one'}.json"
        env = dict(os.environ)
        env.pop("PARTYQA_THREADS", None)
        if value is not None:
            env["PARTYQA_THREADS"] = value
        cmd = [sys.executable, "-m", "bench.speed", "query", "--index", str(index_dir), "--queries", str(n_queries),
               "--rounds", str(rounds), "--out", str(path)]
        subprocess.run(cmd, check=True, cwd=ROOT, env=env)
        q = read_json(path)
        out["passages"] = q["passages"]
        out["runs"][label] = {m: {"p50_ms": v["p50_ms"]["median"], "p95_ms": v["p95_ms"]["median"]}
                              for m, v in q["modes"].items()}
        logger.info("%s: %s", label, out["runs"][label])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the named diagnostics and write diagnose-<name>.json next to the full results."""
    ap = argparse.ArgumentParser(description="Diagnostics for the closing note of docs/BENCHMARKS.md")
    ap.add_argument("which", nargs="*", default=["tokens", "overlap", "threads"], help="tokens, overlap, threads")
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--out", type=Path, default=RESULTS / "full")
    args = ap.parse_args(argv)
    setup_logging()
    apply_stand_in()
    indexes = {"tokens": args.work / "party" / "index", "overlap": args.work / "speed-10k" / "index",
               "threads": args.work / "speed-10k" / "index"}
    for name in args.which:
        if name not in indexes:
            raise SystemExit(f"unknown diagnostic {name!r}; use tokens, overlap or threads")
        index = indexes[name]
        if not (index / "CURRENT").exists():
            raise SystemExit(f"{index} is missing: run `python -m bench.run` first")
        res = tokens(index) if name == "tokens" else overlap(index) if name == "overlap" else threads(index, args.out)
        write_json(args.out / f"diagnose-{name}.json", {**res, "when": now_iso(), "index": str(index)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
