"""Adding documents (issue 12): keyword indexing throughput, time until an upload is searchable and until it is
embedded, search latency while it embeds, and the cost of a generation commit.

* ``keyword``  -- passages/s of the keyword half alone (whoosh + jieba) on the upload's ~1,500 passages: one
  process, and tokenized in worker processes (workers started beforehand, as a server does at start).
* ``upload``   -- an index holding the shipped seed essay; the regulation files are submitted as one job
  (``Engine.jobs.submit_add``, what ``POST /api/documents`` does); times until a phrase found only in them is
  returned by a hybrid search, until the job is keyword-ready, and until it is done (every vector committed).
  Meanwhile a client asks a hybrid question (dev questions) every 0.5 s: p50/p95 before the upload and during
  the job. The embedding cache starts empty (``--cached``: the shared bench cache, so the embedding
  stage is near-instant and only the commits are timed).
* ``commit``   -- preparing the next generation of the finished index: a full copy vs hard links.

    .venv/bin/python -m bench.ingest_speed                 # all three, ~1,500 passages (~3-5 min: the model)
    .venv/bin/python -m bench.ingest_speed --only keyword  # seconds
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from .common import (DEV_QUESTIONS, PARTY_DOCS, RESULTS, SEED, WORK, latency_summary, machine, setup_logging,
                     skip_without_shared)

logger = logging.getLogger("bench.ingest_speed")

REGULATION_DIRS = ("xtjeyvc-8gui", "xtjeyvc-dangfa")  # 党内法规 files: what a branch secretary would upload


def upload_files(target: int) -> tuple[list[Path], list[Any]]:
    """Regulation files in a stable order until they hold ``target`` passages; (files, their passages)."""
    from indexer.ingest import files as ingest
    from indexer.ingest.prepare import prepare

    files, passages = [], []
    for sub in REGULATION_DIRS:
        for path in sorted((PARTY_DOCS / sub).iterdir()):
            if path.suffix.lower() not in ingest.SUPPORTED_EXTENSIONS:
                continue
            raws, _ = ingest.load_file_checked(path, doc_id=path.name)
            for raw in raws:
                passages.extend(prepare(raw)[1])
            files.append(path)
            if len(passages) >= target:
                return files, passages
    return files, passages


def bench_keyword(passages: list[Any], runs: int) -> dict[str, Any]:
    """Keyword index build of ``passages``: one process vs worker processes (median of ``runs``)."""
    from indexer.text.analyzer import segmenter
    from indexer.backends.local.keyword import WhooshKeywordIndex
    from indexer.backends.local.tokenize_pool import tokenizer_pool, warm_tokenizers

    segmenter()
    warm_tokenizers()
    tokenizer_pool().submit(int).result()
    out: dict[str, Any] = {"passages": len(passages)}
    work = WORK / "ingest-keyword"
    for label, parallel in (("one_process", False), ("workers", True)):
        times, cpu = [], []
        for i in range(runs):
            shutil.rmtree(work, ignore_errors=True)
            kw = WhooshKeywordIndex.create(work / f"{label}-{i}")
            t0, c0 = time.perf_counter(), time.process_time()
            kw.add(passages, parallel=parallel)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            kw.close()
        med = statistics.median(times)
        # This process's CPU time is the critical path when the workers get cores of their own (a shared machine
        # may not give them any: then wall time is no better than one process).
        out[label] = {"seconds": [round(t, 3) for t in times], "median_s": round(med, 3),
                      "passages_per_s": round(len(passages) / med),
                      "main_process_cpu_s": round(statistics.median(cpu), 3),
                      "passages_per_main_cpu_s": round(len(passages) / statistics.median(cpu))}
    shutil.rmtree(work, ignore_errors=True)
    return out


def _questions() -> list[str]:
    return [json.loads(line)["question"] for line in DEV_QUESTIONS.read_text("utf-8").splitlines() if line.strip()]


class Asker(threading.Thread):
    """Users asking hybrid questions, one every ``interval`` seconds, recording (phase, latency s).

    Not back to back: questions go ahead of passage batches on the model thread, so a client asking without pause
    holds the embedding to one slice per 0.3 s (measured: ~1.3 passages/s instead of ~10).
    """

    def __init__(self, eng: Any, questions: list[str], interval: float):
        super().__init__(daemon=True)
        self.eng, self.questions, self.interval = eng, questions, interval
        self.phase = "before"
        self.samples: list[tuple[str, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            q = self.questions[i % len(self.questions)]
            t0 = time.perf_counter()
            self.eng.search(q, k=5, mode="hybrid")
            took = time.perf_counter() - t0
            self.samples.append((self.phase, took))
            i += 1
            self.stop.wait(max(0.0, self.interval - took))

    def summary(self, phase: str) -> dict[str, Any]:
        return latency_summary([s for p, s in self.samples if p == phase])


def bench_upload(files: list[Path], phrase: str, cached: bool, interval: float) -> dict[str, Any]:
    """Submit ``files`` as one job to a seeded index; time searchable / keyword-ready / done, and search latency."""
    from indexer import Config, Engine

    root = WORK / "ingest-upload"
    shutil.rmtree(root, ignore_errors=True)
    (root / "seed").mkdir(parents=True)
    shutil.copy(SEED, root / "seed" / SEED.name)
    index = root / "index"
    index.mkdir()
    if cached:
        from .common import embcache_dir

        (index / "cache").symlink_to(embcache_dir().resolve())
    eng = Engine.open(index, Config())
    eng.index(root / "seed")
    assert not [h for h in eng.search(phrase, k=3, mode="keyword") if phrase in h["text"]], "phrase not unique"
    commits: list[float] = []
    commit = eng._writer.commit_vectors

    def timed_commit(*args: Any) -> list[str]:
        t0 = time.perf_counter()
        try:
            return commit(*args)
        finally:
            commits.append(time.perf_counter() - t0)

    eng._writer.commit_vectors = timed_commit  # type: ignore[method-assign]
    eng.jobs  # the server's queue and background embedder, started before the upload (as at server start)
    asker = Asker(eng, _questions(), interval)
    asker.start()
    time.sleep(15)
    asker.phase = "during"
    t0 = time.perf_counter()
    job = eng.jobs.submit_add(files)
    searchable = keyword_ready = None
    while True:
        now = time.perf_counter() - t0  # a search that finds the phrase found it searchable when it started
        if searchable is None and any(phrase in h["text"] for h in eng.search(phrase, k=5, mode="hybrid")):
            searchable = now
        state = job.to_dict()["state"]
        if keyword_ready is None and state in ("keyword-ready", "embedding", "done"):
            keyword_ready = now
        if state in ("done", "failed"):
            break
        time.sleep(0.1)
    done = time.perf_counter() - t0
    asker.stop.set()
    asker.join()
    d = job.to_dict()
    result = {
        "files": len(files), "passages": d["passages_total"], "state": d["state"], "summary": d["summary"],
        "embedding_cache": "shared bench cache" if cached else "empty", "question_interval_s": interval,
        "seconds_until_searchable": round(searchable or done, 2), "seconds_until_keyword_ready": round(keyword_ready, 2),
        "seconds_until_done": round(done, 2), "pending_after": eng.stats()["pending_vectors"],
        "vector_commits": len(commits), "vector_commit_ms": latency_summary(commits),
        "hybrid_search_before": asker.summary("before"), "hybrid_search_during": asker.summary("during"),
    }
    eng.close()
    return result


def bench_commit(index: Path, runs: int) -> dict[str, Any]:
    """Preparing the next generation of ``index``'s current one: full copy vs the hard-linked copy."""
    from indexer.index.generations import _link_or_copy

    current = json.loads((index / "CURRENT").read_text("utf-8"))["generation"]
    gen = index / f"gen-{current:08d}"
    out: dict[str, Any] = {"generation_bytes": sum(p.stat().st_size for p in gen.rglob("*") if p.is_file())}
    for label, copy in (("copy", shutil.copy2), ("hard_links", _link_or_copy)):
        times = []
        for _ in range(runs):
            dest = index / "bench-copy.tmp"
            shutil.rmtree(dest, ignore_errors=True)
            t0 = time.perf_counter()
            shutil.copytree(gen, dest, copy_function=copy)
            times.append((time.perf_counter() - t0) * 1000)
            shutil.rmtree(dest, ignore_errors=True)
        out[f"{label}_ms"] = round(statistics.median(times), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and write bench/results/ingest_speed.json."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passages", type=int, default=1500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", choices=("keyword", "upload", "commit"))
    ap.add_argument("--cached", action="store_true", help="use the shared embedding cache (times commits only)")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between the client's questions")
    args = ap.parse_args(argv)
    setup_logging()
    if skip_without_shared("ingest_speed"):
        return 0
    files, passages = upload_files(args.passages)
    phrase = "到基层调研要深入了解真实情况"  # 八项规定 (xtjeyvc-8gui/00.md): not in the seed essay
    result: dict[str, Any] = {"machine": machine(), "files": [f"{f.parent.name}/{f.name}" for f in files],
                              "phrase": phrase}
    if args.only in (None, "keyword"):
        result["keyword"] = bench_keyword(passages, args.runs)
        logger.warning("keyword: %s", result["keyword"])
    if args.only in (None, "upload"):
        result["upload"] = bench_upload(files, phrase, args.cached, args.interval)
        logger.warning("upload: %s", result["upload"])
    if args.only in (None, "commit", "upload") and (WORK / "ingest-upload" / "index" / "CURRENT").exists():
        result["commit"] = bench_commit(WORK / "ingest-upload" / "index", args.runs)
        logger.warning("commit: %s", result["commit"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "ingest_speed.json"
    if args.only and out.exists():  # a partial run updates its part of the last full run's file
        result = {**json.loads(out.read_text("utf-8")), **result}
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1), "utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
