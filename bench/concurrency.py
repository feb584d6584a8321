"""Several clients searching one index at once: throughput, p50/p95 and (HTTP) the server's memory.

Two ways in, both on an existing index (e.g. the 100k index that ``bench.speed build`` leaves):

* ``threads`` -- N threads calling ``Engine.search`` on one shared Engine (the library's own concurrency);
* ``http``    -- N clients calling ``/api/search`` of a real ``partyqa serve`` (waitress, 8 threads), whose RSS is
  read from /proc while it serves.

Each phase first answers every question once with one client (warm caches, model loaded), then runs 1 client and
N clients for ``--seconds`` each over the dev questions and quiz stems of :func:`bench.speed.query_set`.

    .venv/bin/python -m bench.concurrency --index bench/results/work/speed-100k/index --clients 8 --seconds 20
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from .bench_load import summarize
from .common import RESULTS, apply_stand_in, loadavg, machine, setup_logging, write_json

logger = logging.getLogger("bench.concurrency")


def _proc_mb(pid: int, key: str) -> float | None:
    """VmRSS / VmHWM of another process in MB (None when /proc does not say)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _run_threads(search: Any, questions: Sequence[str], clients: int, seconds: float, mode: str) -> dict[str, Any]:
    """``clients`` threads calling ``search(question, mode)`` back to back for ``seconds``; summary of latencies."""
    records: list[dict] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(i: int) -> None:
        n = i * 7  # clients start at different questions, as real users do
        while not stop.is_set():
            q = questions[n % len(questions)]
            n += 1
            t0 = time.monotonic()
            try:
                ok, error = search(q, mode), None
            except Exception as exc:  # noqa: BLE001 - an error is a result here, counted and shown
                ok, error = False, repr(exc)
            rec = {"ms": (time.monotonic() - t0) * 1000, "ok": ok, "error": error}
            with lock:
                records.append(rec)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=300)
    out = summarize(records, time.monotonic() - start)
    errors = [r["error"] for r in records if r["error"]]
    if errors:
        out["first_error"] = errors[0]
    return out


def bench_threads(index_dir: Path, questions: Sequence[str], clients: Sequence[int], seconds: float,
                  modes: Sequence[str]) -> dict[str, Any]:
    """Threads against one in-process Engine."""
    from indexer import Config, Engine

    out: dict[str, Any] = {}
    with Engine.open(index_dir, Config.from_env(reranker="")) as eng:
        def search(q: str, mode: str) -> bool:
            return len(eng.search(q, k=5, mode=mode)) > 0

        for mode in modes:
            for q in questions:  # warm: model loaded, every question's terms decoded once
                search(q, mode)
            out[mode] = {str(n): {**_run_threads(search, questions, n, seconds, mode), "loadavg_after": loadavg()}
                         for n in clients}
            logger.info("threads %s: %s", mode, {n: (r["throughput_rps"], r["p50_ms"], r["p95_ms"])
                                                 for n, r in out[mode].items()})
    return out


def bench_http(index_dir: Path, questions: Sequence[str], clients: Sequence[int], seconds: float,
               modes: Sequence[str], log: Path) -> dict[str, Any]:
    """HTTP clients against a real ``partyqa serve`` on loopback; its RSS after each phase."""
    from .serve_client import Server, search as http_search

    server = Server(index_dir, log)
    out: dict[str, Any] = {"server_rss_mb_started": _proc_mb(server.proc.pid, "VmRSS")}
    try:
        def search(q: str, mode: str) -> bool:
            status, body, _ = http_search(server.url, q, mode)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body.get('error')}")
            return len(body.get("results", [])) > 0

        for mode in modes:
            for q in questions:
                search(q, mode)
            out[mode] = {}
            for n in clients:
                res = _run_threads(search, questions, n, seconds, mode)
                res["server_rss_mb"] = _proc_mb(server.proc.pid, "VmRSS")
                # file-backed pages (the memory-mapped vectors, shared with the page cache) apart from private ones
                res["server_rss_anon_mb"] = _proc_mb(server.proc.pid, "RssAnon")
                res["server_rss_file_mb"] = _proc_mb(server.proc.pid, "RssFile")
                res["loadavg_after"] = loadavg()
                out[mode][str(n)] = res
            logger.info("http %s: %s", mode, {n: (r["throughput_rps"], r["p50_ms"], r["p95_ms"])
                                              for n, r in out[mode].items()})
        out["server_peak_rss_mb"] = _proc_mb(server.proc.pid, "VmHWM")
    finally:
        server.stop()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; writes one JSON file."""
    from .speed import query_set

    ap = argparse.ArgumentParser(description="PartyQA concurrent search benchmark")
    ap.add_argument("--index", type=Path, required=True, help="an existing index directory")
    ap.add_argument("--clients", default="1,8", help="comma list of client counts")
    ap.add_argument("--seconds", type=float, default=20.0, help="per phase")
    ap.add_argument("--modes", default="hybrid,keyword")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--ways", default="threads,http", help="threads, http or both")
    ap.add_argument("--out", type=Path, default=RESULTS / "full" / "concurrency.json")
    args = ap.parse_args(argv)
    setup_logging()
    apply_stand_in()
    questions = query_set(args.queries)
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    ways = {w.strip() for w in args.ways.split(",")}
    if "both" in ways:
        ways = {"threads", "http"}
    if not ways <= {"threads", "http"}:
        ap.error(f"--ways: threads, http or both, not {args.ways!r}")
    from indexer import Config, Engine

    with Engine.open(args.index, Config.from_env(reranker="")) as eng:
        passages = eng.stats()["passages"]
    res: dict[str, Any] = {"index": str(args.index), "passages": passages, "queries": len(questions),
                           "seconds_per_phase": args.seconds, "clients": clients, "k": 5, "machine": machine()}
    if "threads" in ways:
        res["threads"] = bench_threads(args.index, questions, clients, args.seconds, modes)
    if "http" in ways:
        res["http"] = bench_http(args.index, questions, clients, args.seconds, modes,
                                 args.out.with_suffix(".server.log"))
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
