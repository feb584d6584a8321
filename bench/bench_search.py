#!/usr/bin/env python
"""Speed of PartyQA on a ~10k-passage index built from ../shared/bench/party-docs, plus Flask API latency.

Measures, with the real Engine:

* first ``eng.index(corpus)`` and a second one on the unchanged corpus (and their ratio);
* ``eng.add([one new document])`` into the big index;
* per-query latency (p50/p90) of keyword, semantic and hybrid search with the model already loaded,
  over >= 200 questions (the dev questions, then quiz stems);
* ``search_many`` throughput against one-by-one hybrid searches;
* Flask API latency (``webui.app.create_app`` + test client) on the seed corpus, after start-up.

The corpus is a directory of symlinks into party-docs (regulations first, then 业务探讨 articles in a stable
hashed order) holding just enough documents to reach ``--passages`` passages. Embeddings are cached under
``<work>/embcache`` and shared by every run, so only the first run pays for encoding (~10k passages, about
25 minutes on 2 cores); each run still builds a brand-new index directory. ``--no-vectors`` swaps the model for
a hashing stand-in so indexing and keyword timings can be taken without the encoding cost (semantic and hybrid
numbers are then skipped).

Usage::

    .venv/bin/python bench/bench_search.py                      # full run, 10k passages
    .venv/bin/python bench/bench_search.py --no-vectors         # keyword/indexing only, a few minutes
    .venv/bin/python bench/bench_search.py --passages 2000 --queries 200
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench_quality import (PARTY_DOCS, QUESTIONS, QUIZ, RESULTS, SEED, SEED_ID, SHARED_BENCH,  # noqa: E402
                           load_questions, machine)

logger = logging.getLogger("bench_search")

# Regulation-like groups go first so that smaller runs still look like a branch's library.
GROUP_ORDER = ["partymate", "xtjeyvc-dangfa", "xtjeyvc-8gui", "xtjeyvc-6ji", "xtjeyvc-4feng", "congress-report",
               "xtjeyvc-yewutantao"]


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of values, in the same unit."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / mean in milliseconds of a list of durations in seconds."""
    ms = [s * 1000 for s in seconds]
    return {"p50_ms": round(pct(ms, 50), 2), "p90_ms": round(pct(ms, 90), 2),
            "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan"), "n": len(ms)}


def stable_key(name: str) -> str:
    """A deterministic, topic-blind sort key for file names."""
    return hashlib.sha1(name.encode("utf-8")).hexdigest()


def candidate_files(party_docs: Path) -> list[str]:
    """Every md/txt document in party-docs (not the link lists or licence), regulations first."""
    out: list[str] = []
    for group in GROUP_ORDER:
        folder = party_docs / group
        link_lists = () if group in ("xtjeyvc-6ji", "xtjeyvc-4feng") else ("index.md", "link.md")
        names = sorted(p.relative_to(party_docs).as_posix() for p in folder.rglob("*")
                       if p.is_file() and p.suffix in (".md", ".txt") and p.name not in link_lists)
        if group == "xtjeyvc-yewutantao":
            names.sort(key=stable_key)
        out.extend(names)
    return out


def passages_of(path: Path, rel: str) -> int:
    """How many passages the engine's own ingest + clean + split make of one file."""
    from indexer import ingest
    from indexer.engine import prepare

    return sum(len(prepare(raw)[1]) for raw in ingest.load_file(path, doc_id=rel))


def select_files(party_docs: Path, target: int) -> tuple[list[str], int, str]:
    """Files whose passages add up to >= target, their passage count, and one spare article for the add test."""
    chosen: list[str] = []
    total = 0
    spare = ""
    for rel in candidate_files(party_docs):
        if total >= target:
            if rel.startswith("xtjeyvc-yewutantao/"):
                spare = rel
                break
            continue
        chosen.append(rel)
        total += passages_of(party_docs / rel, rel)
    return chosen, total, spare


def build_corpus(dest: Path, files: Sequence[str], party_docs: Path) -> Path:
    """A fresh directory of symlinks to party-docs files at their relative paths."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink((party_docs / rel).resolve(), target)
    return dest


def query_set(n: int) -> list[str]:
    """At least n distinct questions: the dev questions, then quiz stems (trimmed to 200 chars)."""
    qs = [r["question"] for r in load_questions(QUESTIONS)]
    if QUIZ.is_file():
        with open(QUIZ, encoding="utf-8") as fh:
            for line in fh:
                stem = (json.loads(line).get("question") or "").strip()
                if len(stem) >= 6:
                    qs.append(stem[:200])
    out = list(dict.fromkeys(qs))
    return out[: max(n, 1)]


class HashEncoder:
    """A stand-in encoder for --no-vectors: deterministic pseudo-random unit vectors, no model, no cost."""

    def __init__(self, dim: int = 384):
        from indexer.encoders import Encoder

        class _Enc(Encoder):
            model_id = "bench-hash-stand-in"

            def __init__(self) -> None:
                self.dim = dim

            def _vec(self, texts: list[str]) -> np.ndarray:
                rows = []
                for t in texts:
                    seed = int.from_bytes(hashlib.sha1(t.encode("utf-8")).digest()[:8], "little")
                    rows.append(np.random.default_rng(seed).standard_normal(dim).astype(np.float32))
                return np.vstack(rows)

            def _encode_query_batch(self, texts: list[str]) -> np.ndarray:
                return self._vec(texts)

            def _encode_passage_batch(self, texts: list[str]) -> np.ndarray:
                return self._vec(texts)

        self.encoder = _Enc()


def open_engine(index_dir: Path, cache_dir: Path | None, no_vectors: bool) -> Any:
    """A new Engine on a fresh index dir whose embedding cache is the shared ``cache_dir``."""
    from common import fresh_engine

    eng = fresh_engine(index_dir, cache_dir)
    if no_vectors:
        eng._encoder = HashEncoder().encoder  # the bench owns this engine; no public hook exists for a stand-in
    return eng


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def per_query(eng: Any, questions: Sequence[str], mode: str, k: int = 5) -> list[float]:
    """Latency of each question searched alone."""
    out = []
    for q in questions:
        t0 = time.perf_counter()
        eng.search(q, k=k, mode=mode)
        out.append(time.perf_counter() - t0)
    return out


def bench_index(args: argparse.Namespace, res: dict[str, Any]) -> None:
    """The 10k-passage part: indexing, re-indexing, add, query latency, search_many throughput."""
    work: Path = args.work
    files, est, spare = select_files(PARTY_DOCS, args.passages)
    corpus = build_corpus(work / "corpus", files, PARTY_DOCS)
    logger.info("corpus: %d files, ~%d passages (estimated)", len(files), est)
    cache = None if args.fresh_cache else work / ("embcache-hash" if args.no_vectors else "embcache")
    eng = open_engine(work / "index", cache, args.no_vectors)
    try:
        t1, rep1 = timed(lambda: eng.index(corpus, progress=sys.stderr.isatty()))
        st = eng.stats()
        logger.info("first index: %.1fs (%d passages, %d encoded)", t1, st["passages"], rep1.passages_encoded)
        t2, rep2 = timed(lambda: eng.index(corpus))
        logger.info("second index of the unchanged corpus: %.2fs", t2)
        res["index"] = {
            "files": len(files), "documents": st["documents"], "passages": st["passages"], "model": st["model"],
            "first_index_s": round(t1, 2), "first_index_encoded": rep1.passages_encoded,
            "reindex_unchanged_s": round(t2, 3), "reindex_unchanged_changed": rep2.changed,
            "reindex_ratio": round(t2 / t1, 4) if t1 else None,
            "errors": rep1.errors,
        }

        # add one new document (a unique title every run, so its passages are really encoded)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        add_src = work / f"新增文档-{stamp}.md"
        body = (PARTY_DOCS / spare).read_text(encoding="utf-8") if spare else SEED.read_text(encoding="utf-8")
        add_src.write_text(f"### 基准测试新增文档 {stamp}\n\n{body}", encoding="utf-8")
        t_add, rep_add = timed(lambda: eng.add([add_src]))
        add_src.unlink()
        res["add_one"] = {"source": spare or SEED_ID, "seconds": round(t_add, 2), "added": rep_add.added,
                          "passages_encoded": rep_add.passages_encoded, "errors": rep_add.errors,
                          "passages_after": eng.stats()["passages"]}
        logger.info("add one document: %.2fs (%d passages encoded)", t_add, rep_add.passages_encoded)

        questions = query_set(args.queries)
        modes = ["keyword"] if args.no_vectors else ["keyword", "semantic", "hybrid"]
        for mode in modes:  # warm-up: model load, page cache, jieba dictionary
            eng.search(questions[0], k=5, mode=mode)
        lat: dict[str, Any] = {}
        for mode in modes:
            lat[mode] = summary_ms(per_query(eng, questions, mode))
            logger.info("%s: p50 %.1f ms, p90 %.1f ms over %d queries", mode, lat[mode]["p50_ms"],
                        lat[mode]["p90_ms"], len(questions))
        res["latency"] = lat
        mode = "keyword" if args.no_vectors else "hybrid"
        t_many, _ = timed(lambda: eng.search_many(questions, k=5, mode=mode))
        one_by_one = lat[mode]["mean_ms"] * len(questions) / 1000
        res["search_many"] = {"mode": mode, "queries": len(questions), "seconds": round(t_many, 3),
                              "qps": round(len(questions) / t_many, 1),
                              "one_by_one_qps": round(len(questions) / one_by_one, 1) if one_by_one else None,
                              "speedup": round(one_by_one / t_many, 2) if t_many else None}
        logger.info("search_many(%d, %s): %.2fs", len(questions), mode, t_many)
    finally:
        eng.close()


def bench_api(args: argparse.Namespace, res: dict[str, Any]) -> None:
    """Flask API latency on the seed corpus with the test client, after start-up."""
    try:
        from webui.app import create_app
    except ImportError as exc:
        print(f"SKIP api: webui.app.create_app not importable ({exc})")
        res["api"] = {"skipped": str(exc)}
        return
    from indexer import Engine

    work: Path = args.work
    corpus = work / "api-corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    corpus.mkdir(parents=True)
    os.symlink(SEED, corpus / SEED_ID)
    index_dir = work / "api-index"
    with Engine.open(index_dir) as builder:  # build (or sync) the seed index first; not timed
        builder.index(corpus)
    # start-up as a server does it: open the existing index, build the app; the model loads on the first search
    t0 = time.perf_counter()
    eng = Engine.open(index_dir)
    app = create_app(eng)
    client = app.test_client()
    t_ready = time.perf_counter() - t0
    questions = [r["question"] for r in load_questions(QUESTIONS) if r["set"] == "seed"]
    try:
        t_first, resp = timed(lambda: client.get("/api/search", query_string={"q": questions[0], "mode": "hybrid"}))
        if resp.status_code != 200:
            raise RuntimeError(f"/api/search returned {resp.status_code}: {resp.get_data(as_text=True)[:200]}")
        out: dict[str, Any] = {"startup_s": round(t_ready, 2), "first_search_ms": round(t_first * 1000, 1),
                               "passages": eng.stats()["passages"]}
        for mode in ("keyword", "semantic", "hybrid"):
            times = []
            for _ in range(args.api_rounds):
                for q in questions:
                    t, r = timed(lambda q=q: client.get("/api/search", query_string={"q": q, "mode": mode, "k": 5}))
                    assert r.status_code == 200, r.status_code
                    times.append(t)
            out[f"search_{mode}"] = summary_ms(times)
        t_batch, r = timed(lambda: client.post("/api/batch", json={"questions": questions, "mode": "hybrid"}))
        out["batch_hybrid"] = {"questions": len(questions), "ms": round(t_batch * 1000, 1), "status": r.status_code}
        out["health"] = summary_ms([timed(lambda: client.get("/api/health"))[0] for _ in range(50)])
        res["api"] = out
        logger.info("api: hybrid p50 %.1f ms", out["search_hybrid"]["p50_ms"])
    finally:
        eng.close()


def markdown(res: dict[str, Any]) -> str:
    """The figures as a short markdown report."""
    lines = []
    ix = res.get("index")
    if ix:
        lines += ["| index | value |", "|---|---|",
                  f"| documents / passages | {ix['documents']} / {ix['passages']} |",
                  f"| first index | {ix['first_index_s']} s ({ix['first_index_encoded']} passages encoded) |",
                  f"| re-index unchanged | {ix['reindex_unchanged_s']} s (ratio {ix['reindex_ratio']}) |"]
        if "add_one" in res:
            a = res["add_one"]
            lines.append(f"| add one document | {a['seconds']} s ({a['passages_encoded']} passages encoded) |")
        lines.append("")
    if "latency" in res:
        lines += ["| mode | p50 ms | p90 ms | n |", "|---|---|---|---|"]
        for mode, m in res["latency"].items():
            lines.append(f"| {mode} | {m['p50_ms']} | {m['p90_ms']} | {m['n']} |")
        sm = res["search_many"]
        lines += ["", f"search_many ({sm['mode']}, {sm['queries']} questions): {sm['qps']} q/s vs "
                  f"{sm['one_by_one_qps']} q/s one by one (x{sm['speedup']})", ""]
    api = res.get("api")
    if api and "skipped" not in api:
        lines += [f"API (seed corpus, {api['passages']} passages, Flask test client): open + create_app "
                  f"{api['startup_s']} s, first search (loads the model) {api['first_search_ms']} ms", "", "| endpoint | p50 ms | p90 ms | n |", "|---|---|---|---|"]
        for key in ("search_keyword", "search_semantic", "search_hybrid", "health"):
            m = api[key]
            lines.append(f"| {key} | {m['p50_ms']} | {m['p90_ms']} | {m['n']} |")
        lines.append(f"| batch hybrid ({api['batch_hybrid']['questions']} q) | {api['batch_hybrid']['ms']} (total) | | 1 |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passages", type=int, default=10000, help="approximate index size (passages)")
    ap.add_argument("--queries", type=int, default=300, help="questions per latency measurement (>= 200)")
    ap.add_argument("--no-vectors", action="store_true", help="hashing stand-in instead of the model (keyword only)")
    ap.add_argument("--fresh-cache", action="store_true", help="do not reuse cached embeddings")
    ap.add_argument("--skip-api", action="store_true", help="skip the Flask API part")
    ap.add_argument("--api-only", action="store_true", help="only the Flask API part")
    ap.add_argument("--api-rounds", type=int, default=4, help="passes over the seed questions for API latency")
    ap.add_argument("--work", type=Path, default=RESULTS / "speed", help="corpus, indexes and embedding cache")
    ap.add_argument("--out", type=Path, default=None, help="JSON results file (default bench/results/speed-*.json)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("jieba", "indexer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args.work.mkdir(parents=True, exist_ok=True)

    res: dict[str, Any] = {"when": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                           "machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    if not args.api_only:
        if not (PARTY_DOCS / "corpus.jsonl").exists():
            print(f"SKIP index benchmark: {SHARED_BENCH} is absent (../shared/bench next to the project)")
        else:
            bench_index(args, res)
    if not args.skip_api:
        bench_api(args, res)

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.out or RESULTS / f"speed-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    if path.parent == RESULTS:
        shutil.copyfile(path, RESULTS / ("speed-latest-novec.json" if args.no_vectors else "speed-latest.json"))
    print(markdown(res))
    print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
