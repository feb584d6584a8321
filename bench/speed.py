"""Speed and cost: indexing throughput, re-index time, query latency per mode at several index sizes, peak RSS,
index size on disk and server start-up, for PartyQA and (latency only) the peer baselines.

Each measurement runs in its own process so that peak RSS belongs to that step alone:

* ``build``     -- a fresh index of N passages from party-docs (regulations first, then 业务探讨 articles in a
  stable hashed order; beyond the ~13k passages of party-docs, replicas ``rNN/<file>`` of the same files with new
  doc ids). Embeddings come from the shared cache (a replica has the same content hash), so the timed
  ``Engine.index`` is everything but the model: read, clean, split, whoosh, vector store, commit. The model's own
  throughput is measured apart (``--components``), as are read+clean+split and whoosh alone.
* ``query``     -- p50/p95 latency of single searches per mode and of ``search_many`` batches, model warm.
* ``baselines`` -- the same for rank_bm25, bm25s and the ensemble over the same passages and vectors.
* ``startup``   -- ``partyqa serve`` on an existing index until the first answered ``/api/search``.
* ``http``      -- what the web layer and HTTP add to a question: engine, in-process Flask app, real server.

    .venv/bin/python -m bench.speed all --sizes 1000,10000,100000     # what `python -m bench.run` calls
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from indexer.backends.local.postings import forget_segment_postings

from .common import (BENCH, PARTY_DOCS, QUIZ, RESULTS, ROOT, WORK, apply_stand_in, current_rss_mb, dir_bytes,
                     fresh_engine, latency_summary, loadavg, machine, median_runs, peak_rss_mb, read_json,
                     setup_logging, skip_without_shared, stable_key, symlink_corpus, write_json)

logger = logging.getLogger("bench.speed")

MODES = ("keyword", "semantic", "hybrid")
KEYWORD_HALF = "keyword_half"  # the keyword retrieval alone (bench_query), beside the three search modes
ENCODE_ONLY = "encode_only"  # the query encoder alone: the floor of semantic and hybrid during the same run
GROUP_ORDER = ["partymate", "xtjeyvc-dangfa", "xtjeyvc-8gui", "xtjeyvc-6ji", "xtjeyvc-4feng", "congress-report",
               "xtjeyvc-yewutantao"]


def size_label(n: int) -> str:
    """1000 -> '1k', 100000 -> '100k'."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


# ---------------------------------------------------------------------------------------------------- corpora
def candidate_files(party_docs: Path = PARTY_DOCS) -> list[str]:
    """Every md/txt document of party-docs (not the link lists), regulations first, articles in hashed order."""
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


def passage_counts(files: Sequence[str], party_docs: Path = PARTY_DOCS) -> dict[str, int]:
    """How many passages the engine's own read + clean + split makes of each file."""
    from indexer.ingest import files as ingest
    from indexer.ingest.prepare import prepare

    return {rel: sum(len(prepare(raw)[1]) for raw in ingest.load_file(party_docs / rel, doc_id=rel)) for rel in files}


def select_links(target: int, party_docs: Path = PARTY_DOCS) -> tuple[list[tuple[str, Path]], int, int]:
    """Corpus links reaching ``target`` passages: files in candidate order, then replicas rNN/<file>.

    Returns (links, passages, replicas used beyond the original).
    """
    files = candidate_files(party_docs)
    counts = passage_counts(files, party_docs)
    links: list[tuple[str, Path]] = []
    total, replica = 0, 0
    while total < target:
        for rel in files:
            if total >= target:
                break
            links.append((rel if replica == 0 else f"r{replica:02d}/{rel}", party_docs / rel))
            total += counts[rel]
        replica += 1
    return links, total, replica - 1


def query_set(n: int) -> list[str]:
    """n distinct questions: the dev questions, then quiz stems as questions, then CMRC-free repeats if needed."""
    from . import devset, quiz

    qs = [r["question"] for r in devset.load_questions()]
    if QUIZ.is_file():
        with open(QUIZ, encoding="utf-8") as fh:
            for line in fh:
                stem = (json.loads(line).get("question") or "").strip()
                if len(stem) >= 6:
                    qs.append(quiz.stem_to_question(stem)[:200])
    qs = list(dict.fromkeys(qs))
    return qs[:n]


# ---------------------------------------------------------------------------------------------------- build
def bench_build(size: int, work: Path, reindex_runs: int = 3) -> dict[str, Any]:
    """Build a fresh index of ~size passages; time it, re-index the unchanged corpus, measure disk and RSS."""
    from indexer import Config

    label = size_label(size)
    links, est, replicas = select_links(size)
    corpus = symlink_corpus(work / f"speed-{label}" / "corpus", links)
    index_dir = work / f"speed-{label}" / "index"
    eng = fresh_engine(index_dir, config=Config.from_env(reranker=""))
    load0 = loadavg()
    try:
        t0 = time.perf_counter()
        report = eng.index(corpus, progress=sys.stderr.isatty())
        t_index = time.perf_counter() - t0
        st = eng.stats()
        logger.info("%s: indexed %d files, %d passages in %.1fs (%d embedded)", label, len(links), st["passages"],
                    t_index, report.passages_encoded)
        re_runs = []
        for _ in range(reindex_runs):
            t0 = time.perf_counter()
            rep = eng.index(corpus)
            re_runs.append(time.perf_counter() - t0)
            if rep.changed:
                raise RuntimeError("re-indexing an unchanged corpus changed the index")
    finally:
        eng.close()
    gen = max(index_dir.glob("gen-*"))
    return {
        "size": size, "label": label, "files": len(links), "replicas": replicas, "documents": st["documents"],
        "passages": st["passages"], "model": st["model"],
        "index_seconds": round(t_index, 2), "passages_encoded": report.passages_encoded,
        "index_passages_per_second": round(st["passages"] / t_index, 1) if t_index else None,
        "reindex_unchanged_seconds": median_runs(re_runs),
        "disk_bytes": {"total": dir_bytes(index_dir), "keyword": dir_bytes(gen / "keyword"),
                       "vectors": dir_bytes(gen / "vectors"),
                       "passages_and_texts": sum((gen / f).stat().st_size for f in ("passages.jsonl", "texts.json"))},
        "peak_rss_mb": peak_rss_mb(), "loadavg_before": load0, "loadavg_after": loadavg(),
        "index_dir": str(index_dir),
    }


def bench_components(index_dir: Path, runs: int = 3, embed_sample: int = 96) -> dict[str, Any]:
    """Throughput of read+clean+split, of the whoosh keyword index alone, and of the embedding model alone."""
    from indexer import Config, Engine
    from indexer.ingest import files as ingest
    from indexer.embed.encoders import load_encoder, passage_context
    from indexer.ingest.prepare import prepare
    from indexer.backends.local.keyword import WhooshKeywordIndex

    with Engine.open(index_dir, Config.from_env(reranker="")) as eng:
        corpus = eng.corpus_dir
        passages = list(eng._state().passages.values())
    files = [p for p in ingest.iter_corpus_files(corpus)]
    out: dict[str, Any] = {"passages": len(passages), "files": len(files)}
    prep = []
    for _ in range(runs):
        t0 = time.perf_counter()
        n = sum(len(prepare(raw)[1]) for path in files
                for raw in ingest.load_file(path, doc_id=path.relative_to(corpus).as_posix()))
        prep.append(n / (time.perf_counter() - t0))
    out["read_clean_split_passages_per_second"] = median_runs(prep)
    kw = []
    tmp = index_dir.parent / "kw-throughput"
    for _ in range(runs):
        shutil.rmtree(tmp, ignore_errors=True)
        t0 = time.perf_counter()
        ix = WhooshKeywordIndex.create(tmp)
        ix.add(passages)
        ix.close()
        kw.append(len(passages) / (time.perf_counter() - t0))
    shutil.rmtree(tmp, ignore_errors=True)
    out["keyword_passages_per_second"] = median_runs(kw)
    if embed_sample:
        cfg = Config.from_env(reranker="")
        enc = load_encoder(cfg)
        picked = sorted(passages, key=lambda p: stable_key(p.pid))[: embed_sample * runs]
        texts = [passage_context(p.title, p.section, p.text) for p in picked]
        enc.encode_passages(texts[:4], batch_size=cfg.encode_batch)  # warm-up
        emb = []
        for r in range(runs):
            chunk = texts[r * embed_sample:(r + 1) * embed_sample]
            t0 = time.perf_counter()
            enc.encode_passages(chunk, batch_size=cfg.encode_batch)
            emb.append(len(chunk) / (time.perf_counter() - t0))
        out["embedding_passages_per_second"] = median_runs(emb)
        out["embedding_sample"] = embed_sample
        out["embedding_chars_mean"] = round(statistics.fmean(len(t) for t in texts), 1) if texts else None
        out["model"] = enc.model_id
    out["loadavg_after"] = loadavg()
    return out


# ---------------------------------------------------------------------------------------------------- query
def bench_query(index_dir: Path, n_queries: int, rounds: int, batch: int = 32, k: int = 5) -> dict[str, Any]:
    """Single-query and batched latency per mode with the model warm; medians over rounds."""
    from indexer import Config, Engine

    questions = query_set(n_queries)
    first_pass = {mode: latency_summary(_first_pass(index_dir, questions, mode, k))
                  for mode in ("keyword", "hybrid", KEYWORD_HALF)}
    t0 = time.perf_counter()
    eng = Engine.open(index_dir, Config.from_env(reranker=""))
    open_s = time.perf_counter() - t0
    try:
        for mode in MODES:
            for q in questions[:5]:
                eng.search(q, k=k, mode=mode)
        rss_ready = current_rss_mb()
        load0 = loadavg()
        single: dict[str, list[dict[str, float]]] = {m: [] for m in (*MODES, KEYWORD_HALF, ENCODE_ONLY)}
        many: dict[str, list[float]] = {m: [] for m in MODES}
        for r in range(rounds):
            for mode in MODES:
                times = []
                for q in questions:
                    t = time.perf_counter()
                    eng.search(q, k=k, mode=mode)
                    times.append(time.perf_counter() - t)
                single[mode].append(latency_summary(times))
                t = time.perf_counter()
                for start in range(0, len(questions), batch):
                    eng.search_many(questions[start:start + batch], k=k, mode=mode)
                many[mode].append((time.perf_counter() - t) * 1000 / len(questions))
            times = []
            for q in questions:
                t = time.perf_counter()
                keyword_half(eng, q)
                times.append(time.perf_counter() - t)
            single[KEYWORD_HALF].append(latency_summary(times))
            times = []
            for q in questions:
                t = time.perf_counter()
                eng.encoder.encode_queries([q])
                times.append(time.perf_counter() - t)
            single[ENCODE_ONLY].append(latency_summary(times))
            logger.info("round %d: %s", r + 1, {m: single[m][-1]["p50"] for m in single})
        passages = eng.stats()["passages"]
    finally:
        eng.close()
    out: dict[str, Any] = {"passages": passages, "queries": len(questions), "rounds": rounds, "k": k,
                           "batch": batch, "open_seconds": round(open_s, 3), "rss_ready_mb": rss_ready,
                           "loadavg_before": load0, "loadavg_after": loadavg(), "modes": {}}
    for mode in MODES:
        out["modes"][mode] = {
            "p50_ms": median_runs([s["p50"] for s in single[mode]]),
            "p95_ms": median_runs([s["p95"] for s in single[mode]]),
            "search_many_ms_per_query": median_runs(many[mode]),
        }
        if mode in first_pass:
            out["modes"][mode]["first_pass"] = first_pass[mode]
    out[KEYWORD_HALF] = {"p50_ms": median_runs([s["p50"] for s in single[KEYWORD_HALF]]),
                         "p95_ms": median_runs([s["p95"] for s in single[KEYWORD_HALF]]),
                         "first_pass": first_pass[KEYWORD_HALF]}
    out[ENCODE_ONLY] = {"p50_ms": median_runs([s["p50"] for s in single[ENCODE_ONLY]]),
                        "p95_ms": median_runs([s["p95"] for s in single[ENCODE_ONLY]])}
    out["peak_rss_mb"] = peak_rss_mb()  # before the upload below: a copy of the index is opened there
    out["first_pass_after_write"] = first_pass_after_write(index_dir, questions, k)
    return out


def _first_pass(index_dir: Path, questions: Sequence[str], mode: str, k: int) -> list[float]:
    """Latencies of one pass over ``questions`` on a freshly opened index, model warm but no question seen yet
    (the keyword half's postings cache starts empty)."""
    from indexer import Config, Engine

    forget_segment_postings()  # as cold as a new process: decoded postings are shared process-wide
    with Engine.open(index_dir, Config.from_env(reranker="")) as eng:
        eng.encoder.encode_queries(["预热用的问题"])
        return _timed_pass(eng, questions, mode, k)


def _timed_pass(eng: Any, questions: Sequence[str], mode: str, k: int) -> list[float]:
    """Seconds per question of one pass in ``mode`` (or the keyword half alone)."""
    times = []
    for q in questions:
        t = time.perf_counter()
        if mode == KEYWORD_HALF:
            keyword_half(eng, q)
        else:
            eng.search(q, k=k, mode=mode)
        times.append(time.perf_counter() - t)
    return times


def first_pass_after_write(index_dir: Path, questions: Sequence[str], k: int = 5,
                           work: Path | None = None) -> dict[str, Any]:
    """What the users of a running server see right after an upload: on a copy of the index, answer a third of
    the questions (traffic before the write), add one document (keyword commit, then its vectors), then time one
    hybrid pass over the next third and one pass of the keyword half over the last third (distinct questions, so
    neither pass warms the other's terms) on the generation the write made. The copy's corpus is a copy too, so
    the bench index is left as it was."""
    from indexer import Config, Engine

    from .upload_speed import copy_index, upload_document

    work = work or index_dir.parent.parent
    tmp = work / "after-write"
    copy = copy_index(index_dir, tmp)
    with Engine.open(copy, Config.from_env(reranker="")) as eng:
        new_doc = upload_document(Path(eng.corpus_dir), tmp, "")
    before, timed = list(questions[::3]), {"hybrid": list(questions[1::3]), KEYWORD_HALF: list(questions[2::3])}
    out: dict[str, Any] = {"questions_before": len(before), "questions_timed": len(timed["hybrid"])}
    forget_segment_postings()  # a server started on this index (its saved warm-up loads, nothing decoded yet)
    try:
        with Engine.open(copy, Config.from_env(reranker="")) as eng:
            eng.encoder.encode_queries(["预热用的问题"])
            for q in before:
                eng.search(q, k=k, mode="hybrid")
            t0 = time.perf_counter()
            report = eng.add([new_doc], wait=False)
            out["keyword_commit_seconds"] = round(time.perf_counter() - t0, 2)  # searchable by keyword from here
            out["added_passages"] = report.passages_pending
            t0 = time.perf_counter()
            eng.embed_pending()
            out["vector_commit_seconds"] = round(time.perf_counter() - t0, 2)  # encoding (cached but one) + commit
            out["add_seconds"] = round(out["keyword_commit_seconds"] + out["vector_commit_seconds"], 2)
            reader = eng._state().reader
            t0 = time.perf_counter()
            warming = getattr(reader, "warming", None)
            if warming is not None:
                warming.join()
            out["rewarm_wait_seconds"] = round(time.perf_counter() - t0, 3)
            for mode, qs in timed.items():
                out[mode] = latency_summary(_timed_pass(eng, qs, mode, k))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("first pass after a write: %s", out)
    return out


def keyword_half(eng: Any, question: str, depth: int = 50) -> None:
    """The keyword half alone, as the engine runs it for a question: analysis (jieba, synonyms) and the top
    ``depth`` BM25F candidates -- what bm25s's figure covers; no fusion, folding or highlighting."""
    from indexer.search.query import analyse

    eng._state().reader.keyword_search_many([analyse(question, keyword=True).terms], depth)


def ann_threshold() -> int:
    """The passage count from which the engine searches an approximate vector index (PARTYQA_ANN_THRESHOLD)."""
    from indexer import Config

    threshold = Config.from_env().ann_threshold
    return threshold if threshold > 0 else sys.maxsize


def ann_questions() -> list[str]:
    """The questions recall is measured on: bench/dev_questions.jsonl and bench/heldout_questions.jsonl."""
    from . import devset

    heldout = BENCH / "heldout_questions.jsonl"
    rows = devset.load_questions() + (devset.load_questions(heldout) if heldout.is_file() else [])
    return list(dict.fromkeys(r["question"] for r in rows))


def recall_at(approx: Sequence[tuple[str, float]], exact: Sequence[tuple[str, float]], k: int) -> float:
    """Share of the approximate top k scoring at least the exact k-th best (tie-aware: the replicas of the larger
    corpora hold identical passages, so which of equal-scored rows comes first is arbitrary)."""
    if len(exact) < k:
        return 1.0
    return sum(score >= exact[k - 1][1] - 1e-6 for _, score in approx[:k]) / k


def bench_ann(index_dir: Path, probes: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.4), depth: int = 50) -> dict[str, Any]:
    """Recall@10/@50 of the approximate vector index against exact search, its latency per share of lists searched,
    and memory.

    Uses the IVF index the generation was saved with; an index below the threshold gets one built in memory
    (timed) so that the figures exist for any size.
    """
    from indexer import Config, Engine
    from indexer.backends.local.ann import ANN_FILE, AnnIndex
    from indexer.backends.local.vectors import NumpyVectorIndex

    questions = ann_questions()
    with Engine.open(index_dir, Config.from_env(reranker="")) as eng:
        gen_dir = eng._state().path
        matrix = eng.encoder.encode_queries(questions)
    vec = NumpyVectorIndex.open(gen_dir / "vectors", mmap=True)
    out: dict[str, Any] = {"passages": vec.count(), "questions": len(questions), "depth": depth,
                           "settings": vars(vec.ann_settings)}
    ann = vec._saved_ann()
    if ann is None:
        t0 = time.perf_counter()
        ann = AnnIndex.build(np.asarray(vec._buf[: vec.count()]), vec._labels)
        out["built_in_memory_seconds"] = round(time.perf_counter() - t0, 2)
        vec._ann, vec._ann_checked = ann, True
        out["ann_bytes"] = len(ann.to_bytes())
    else:
        out["ann_bytes"] = (gen_dir / "vectors" / ANN_FILE).stat().st_size
    out["nlist"] = int(ann.index.nlist)
    out["ann_bytes_per_passage"] = round(out["ann_bytes"] / max(vec.count(), 1), 1)
    out["vectors_bytes_per_passage"] = vec.dim * 4
    times = []
    exact = []
    for q in matrix:
        t0 = time.perf_counter()
        exact.append(vec.search_many(q.reshape(1, -1), depth, exact=True)[0])
        times.append(time.perf_counter() - t0)
    out["exact"] = latency_summary(times)
    out["probe"] = ann_sweep(vec, matrix, exact, probes, depth)
    return out


def ann_sweep(vec: Any, matrix: np.ndarray, exact: Sequence[Sequence[tuple[str, float]]], probes: Sequence[float],
              depth: int) -> dict[str, Any]:
    """Per share of lists searched: recall@10/@depth of ``vec``'s approximate search against ``exact`` (the
    results of the first len(exact) rows of ``matrix``), and its latency over every row."""
    from indexer.backends.local.ann import AnnSettings

    out: dict[str, Any] = {}
    rerank = vec.ann_settings.rerank
    nlist = int(vec._saved_ann().index.nlist)
    for probe in probes:
        vec._ann_settings = AnnSettings(threshold=1, probe=probe, rerank=rerank)
        times, approx = [], []
        for q in matrix:
            t0 = time.perf_counter()
            approx.append(vec.search_many(q.reshape(1, -1), depth)[0])
            times.append(time.perf_counter() - t0)
        pairs = list(zip(approx, exact))
        out[str(probe)] = {"nprobe": vec._ann_settings.nprobe(nlist),
            "recall@10": round(float(np.mean([recall_at(a, e, 10) for a, e in pairs])), 4),
            "recall@50": round(float(np.mean([recall_at(a, e, depth) for a, e in pairs])), 4),
            "min_recall@10": min(recall_at(a, e, 10) for a, e in pairs),
            "latency_ms": latency_summary(times)}
        logger.info("probe %g: %s", probe, out[str(probe)])
    return out


def bench_baselines(index_dir: Path, n_queries: int, rounds: int, k: int = 5) -> dict[str, Any]:
    """Build time and single-query latency of rank_bm25, bm25s and the ensemble over the index's passages."""
    from indexer import Config, Engine

    from . import baselines

    questions = query_set(n_queries)
    eng = Engine.open(index_dir, Config.from_env(reranker=""))
    try:
        gen = eng._state()
        rss0 = current_rss_mb()
        systems, build = baselines.build_all(gen.passages, gen.vectors, eng.encoder)
        rss_built = current_rss_mb()
        for name, s in systems.items():
            s.search(questions[0], k)
        out: dict[str, Any] = {"passages": len(gen.passages), "queries": len(questions), "rounds": rounds, "k": k,
                               "build_seconds": build, "rss_added_by_baselines_mb": round(rss_built - rss0, 1),
                               "systems": {}}
        for name, s in systems.items():
            p50, p95 = [], []
            for _ in range(rounds):
                times = []
                for q in questions:
                    t = time.perf_counter()
                    s.search(q, k)
                    times.append(time.perf_counter() - t)
                summ = latency_summary(times)
                p50.append(summ["p50"])
                p95.append(summ["p95"])
            out["systems"][name] = {"p50_ms": median_runs(p50), "p95_ms": median_runs(p95)}
            logger.info("%s: p50 %.1f ms", name, statistics.median(p50))
    finally:
        eng.close()
    out["loadavg_after"] = loadavg()
    return out


# ---------------------------------------------------------------------------------------------------- start-up
def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def partyqa_command() -> list[str]:
    """The ``partyqa`` console script beside this Python, else ``python -m indexer.cli``."""
    script = Path(sys.executable).with_name("partyqa")
    return [str(script)] if script.exists() else [sys.executable, "-m", "indexer.cli"]


def time_to_first_answer(index_dir: Path, question: str, timeout: float = 120.0) -> float:
    """Seconds from spawning ``partyqa serve`` to the first HTTP 200 from /api/search (hybrid)."""
    port = free_port()
    cmd = partyqa_command() + ["--index-dir", str(index_dir), "serve", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/api/search?" + urllib.parse.urlencode({"q": question, "mode": "hybrid"})
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"`{' '.join(cmd)}` exited with {proc.returncode} before answering")
            try:
                with urllib.request.urlopen(url, timeout=30) as resp:
                    if resp.status == 200:
                        json.loads(resp.read())
                        return time.perf_counter() - t0
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"no answer from {url} within {timeout:.0f}s")
            time.sleep(0.05)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of another process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_http(index_dir: Path, n_queries: int, rounds: int, mode: str = "keyword",
               log: Path | None = None) -> dict[str, Any]:
    """What the web layer and HTTP add to one question: each question goes through ``Engine.search`` in-process,
    through the Flask app called in-process (WSGI, no network: request checks, search, citations, JSON) and
    through a real ``partyqa serve`` on loopback (waitress; a new connection per question and the JSON decoded, as
    :func:`bench.serve_client.search` does), the three ways back to back per question so that the machine's load
    hits all alike. Reports medians and p95 per way and, per question, the HTTP and WSGI times minus the engine's
    on the same run, with the load average around the run; and the CPU time each way spends per question (this
    process's, plus for HTTP the server's from /proc), which a loaded machine stretches far less than wall time."""
    import io as _io

    from werkzeug.test import EnvironBuilder

    from indexer import Config, Engine
    from webui import create_app

    from .serve_client import Server, search as http_search

    questions = query_set(n_queries)
    load_before = loadavg()
    log = log or RESULTS / "http-overhead.server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    server = Server(index_dir, log)
    try:
        with Engine.open(index_dir, Config.from_env(reranker="")) as eng:
            app = create_app(eng, eng.config)
            environs = {q: EnvironBuilder(path="/api/search", query_string={"q": q, "mode": mode, "k": 5})
                        .get_environ() for q in questions}

            def engine(q: str) -> None:
                eng.search(q, k=5, mode=mode)

            def wsgi(q: str) -> None:
                status: list[str] = []
                environ = {**environs[q], "wsgi.input": _io.BytesIO(b"")}
                b"".join(app(environ, lambda s, h, e=None: status.append(s)))
                if not status[0].startswith("200"):
                    raise RuntimeError(f"/api/search answered {status[0]} in-process")

            def http(q: str) -> None:
                code, body, _ = http_search(server.url, q, mode)
                if code != 200:
                    raise RuntimeError(f"/api/search answered HTTP {code}: {body.get('error')}")

            ways = {"engine": engine, "wsgi": wsgi, "http": http}
            http_search(server.url, questions[0], "hybrid")  # the server's warm-up (model load) is over
            for q in questions:  # warm: every question's terms decoded once in both processes
                for way in ways.values():
                    way(q)
            times: dict[str, list[float]] = {name: [] for name in ways}
            cpu = dict.fromkeys(ways, 0.0)
            server_cpu = _cpu_seconds(server.proc.pid)
            for _ in range(rounds):
                for q in questions:
                    for name, way in ways.items():
                        c0, t0 = time.process_time(), time.perf_counter()
                        way(q)
                        times[name].append(time.perf_counter() - t0)
                        cpu[name] += time.process_time() - c0
            server_cpu = _cpu_seconds(server.proc.pid) - server_cpu
            passages = eng.stats()["passages"]
    finally:
        server.stop()
    n = len(times["engine"])
    cpu_ms = {"engine": cpu["engine"] * 1000 / n, "wsgi": cpu["wsgi"] * 1000 / n,
              "http_client": cpu["http"] * 1000 / n, "http_server": server_cpu * 1000 / n}
    cpu_ms["http"] = cpu_ms["http_client"] + cpu_ms["http_server"]
    eng_t = times["engine"]
    return {"passages": passages, "mode": mode, "k": 5, "queries": len(questions), "rounds": rounds,
            "ways_ms": {name: latency_summary(xs) for name, xs in times.items()},
            # per question, on the same run: what the web layer (wsgi) and web + HTTP (http) add to the search
            "web_minus_engine_ms": latency_summary([w - e for w, e in zip(times["wsgi"], eng_t)]),
            "http_minus_engine_ms": latency_summary([h - e for h, e in zip(times["http"], eng_t)]),
            "cpu_ms_per_question": {name: round(v, 3) for name, v in cpu_ms.items()},
            "loadavg_before": load_before, "loadavg_after": loadavg(), "machine": machine(),
            "command": f"python -m bench.speed http --index <index> --queries {n_queries} --rounds {rounds}"}


def bench_startup(index_dir: Path, runs: int) -> dict[str, Any]:
    """Median over runs of the time from `partyqa serve` to the first answered search."""
    from indexer import Config, Engine

    with Engine.open(index_dir, Config.from_env(reranker="")) as eng:
        passages = eng.stats()["passages"]
    q = query_set(1)[0]
    times = [time_to_first_answer(index_dir, q) for _ in range(runs)]
    return {"passages": passages, "seconds": median_runs(times), "question": q, "command": "partyqa serve",
            "loadavg_after": loadavg()}


# ---------------------------------------------------------------------------------------------------- driver
def _child(args: list[str], out: Path) -> dict[str, Any]:
    """Run one step in a fresh interpreter (its own peak RSS) and read back its JSON."""
    cmd = [sys.executable, "-m", "bench.speed", *args, "--out", str(out)]
    logger.info("$ %s", " ".join(cmd[1:]))
    subprocess.run(cmd, check=True, cwd=ROOT)
    return read_json(out)


def run_all(sizes: Sequence[int], work: Path, out_dir: Path, queries: int, rounds: int, baseline_queries: int,
            startup_runs: int, components: bool, components_size: int | None = None,
            startup_size: int | None = None, concurrency_seconds: float = 0) -> dict[str, Any]:
    """Every speed step for every size; writes speed-<label>.json (+ speed-components.json, speed-startup.json and,
    with ``concurrency_seconds``, concurrency.json and speed-http.json on the largest size)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "steps"
    result: dict[str, Any] = {"sizes": {}}
    for size in sizes:
        label = size_label(size)
        build = _child(["build", "--size", str(size), "--work", str(work)], tmp / f"build-{label}.json")
        index_dir = build["index_dir"]
        n_q = queries if size <= 20000 else max(queries // 2, 20)
        query = _child(["query", "--index", index_dir, "--queries", str(n_q), "--rounds", str(rounds)],
                       tmp / f"query-{label}.json")
        entry: dict[str, Any] = {"build": build, "query": query}
        if size >= min(ann_threshold(), 10000):  # 10k: recall on distinct passages (IVF built in memory)
            entry["ann"] = _child(["ann", "--index", index_dir], tmp / f"ann-{label}.json")
        if baseline_queries:
            n_b = baseline_queries if size <= 20000 else max(baseline_queries // 4, 10)
            entry["baselines"] = _child(["baselines", "--index", index_dir, "--queries", str(n_b),
                                         "--rounds", str(min(rounds, 2) if size <= 20000 else 1)],
                                        tmp / f"baselines-{label}.json")
        write_json(out_dir / f"speed-{label}.json", {**entry, "machine": machine()})
        result["sizes"][label] = entry
    built = {size_label(s): result["sizes"][size_label(s)]["build"]["index_dir"] for s in sizes}
    if concurrency_seconds:
        label = size_label(max(sizes))
        cmd = [sys.executable, "-m", "bench.concurrency", "--index", built[label], "--clients", "1,8",
               "--seconds", str(concurrency_seconds), "--out", str(out_dir / "concurrency.json")]
        logger.info("$ %s", " ".join(cmd[1:]))
        subprocess.run(cmd, check=True, cwd=ROOT)
        result["concurrency"] = read_json(out_dir / "concurrency.json")
        # what the web layer and HTTP add to a keyword question, on the largest index (issue 20: at most +3 ms)
        result["http"] = _child(["http", "--index", built[label], "--queries", "100", "--rounds", str(rounds)],
                                out_dir / "speed-http.json")
    if components:
        label = size_label(components_size or min(sizes, key=lambda s: abs(s - 10000)))
        result["components"] = _child(["components", "--index", built[label]], tmp / "components.json")
        write_json(out_dir / "speed-components.json", {**result["components"], "size": label, "machine": machine()})
    if startup_runs:
        label = size_label(startup_size or min(sizes, key=lambda s: abs(s - 10000)))
        result["startup"] = _child(["startup", "--index", built[label], "--runs", str(startup_runs)],
                                   tmp / "startup.json")
        write_json(out_dir / "speed-startup.json", {**result["startup"], "size": label, "machine": machine()})
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: one step (build/query/baselines/components/startup) or all of them."""
    ap = argparse.ArgumentParser(description="PartyQA speed benchmarks")
    sub = ap.add_subparsers(dest="step", required=True)
    b = sub.add_parser("build")
    b.add_argument("--size", type=int, required=True)
    b.add_argument("--work", type=Path, default=WORK)
    b.add_argument("--reindex-runs", type=int, default=3)
    for name in ("query", "baselines"):
        p = sub.add_parser(name)
        p.add_argument("--index", type=Path, required=True)
        p.add_argument("--queries", type=int, default=200)
        p.add_argument("--rounds", type=int, default=3)
    n = sub.add_parser("ann")
    n.add_argument("--index", type=Path, required=True)
    n.add_argument("--probes", default="0.05,0.1,0.2,0.3,0.4", help="shares of the IVF lists searched")
    c = sub.add_parser("components")
    c.add_argument("--index", type=Path, required=True)
    c.add_argument("--runs", type=int, default=3)
    c.add_argument("--embed-sample", type=int, default=96)
    h = sub.add_parser("http")
    h.add_argument("--index", type=Path, required=True)
    h.add_argument("--queries", type=int, default=100)
    h.add_argument("--rounds", type=int, default=3)
    h.add_argument("--mode", default="keyword", choices=["keyword", "hybrid", "semantic"])
    s = sub.add_parser("startup")
    s.add_argument("--index", type=Path, required=True)
    s.add_argument("--runs", type=int, default=3)
    a = sub.add_parser("all")
    a.add_argument("--sizes", default="1000,10000,100000")
    a.add_argument("--work", type=Path, default=WORK)
    a.add_argument("--queries", type=int, default=200)
    a.add_argument("--rounds", type=int, default=3)
    a.add_argument("--baseline-queries", type=int, default=100)
    a.add_argument("--startup-runs", type=int, default=3)
    a.add_argument("--no-components", action="store_true")
    a.add_argument("--concurrency-seconds", type=float, default=15.0, help="0 = skip bench.concurrency")
    for p in (b, c, h, s, a, n, *[sub.choices[x] for x in ("query", "baselines")]):
        p.add_argument("--out", type=Path, required=(p is not a), default=None if p is not a else RESULTS / "full")
    args = ap.parse_args(argv)
    setup_logging()
    apply_stand_in()
    if args.step == "build":
        if skip_without_shared("speed"):
            return 0
        res = bench_build(args.size, args.work, args.reindex_runs)
    elif args.step == "query":
        res = bench_query(args.index, args.queries, args.rounds)
    elif args.step == "baselines":
        res = bench_baselines(args.index, args.queries, args.rounds)
    elif args.step == "ann":
        res = bench_ann(args.index, [float(x) for x in args.probes.split(",") if x.strip()])
    elif args.step == "components":
        res = bench_components(args.index, args.runs, args.embed_sample)
    elif args.step == "http":
        res = bench_http(args.index, args.queries, args.rounds, args.mode)
    elif args.step == "startup":
        res = bench_startup(args.index, args.runs)
    else:
        if skip_without_shared("speed"):
            return 0
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
        run_all(sizes, args.work, args.out, args.queries, args.rounds, args.baseline_queries, args.startup_runs,
                not args.no_components, concurrency_seconds=args.concurrency_seconds)
        return 0
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
