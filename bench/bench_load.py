"""Load benchmark: N concurrent clients search a real `partyqa serve` on loopback, with and without uploads in flight.

    .venv/bin/python bench/bench_load.py                      # small corpus (seed + regulation), 8 clients, 2 x 30 s
    .venv/bin/python bench/bench_load.py --corpus medium      # + real regulations from ../shared/bench/party-docs
    .venv/bin/python bench/bench_load.py --seconds 10 --out /tmp/load.json

Phase "idle": the clients search for --seconds. Phase "upload": the same, while documents are uploaded one after
another through ``POST /api/documents`` (so an upload is being read, embedded and committed during the whole
phase). Prints p50/p95/p99/max latency per phase (client-side, over HTTP), throughput and errors. Everything runs
on a private copy of the corpus and index in a temporary directory; ``--cache-dir`` keeps embeddings between runs.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine as bench_machine  # noqa: E402
from bench.serve_client import LOAD_QUESTIONS, SearchClients, Server, http, search, upload_and_wait  # noqa: E402
from indexer import Config, Engine  # noqa: E402

PARTY_DOCS = ROOT.parent / "shared" / "bench" / "party-docs"
MEDIUM_DOCS = ["congress-report", "partymate", "xtjeyvc-dangfa"]  # folders of party-docs, copied when present


def upload_text(n: int, passages: int) -> str:
    """A distinct generated document of about ``passages`` passages (never seen before, so really embedded)."""
    parts = [f"第{n}号学习简报"]
    for i in range(1, passages + 1):
        parts.append(f"第{i}部分 第{n}号简报第{i}项工作\n第{n}号简报记载：党支部第{i}次组织党员集中学习党章党规，"
                     f"支部委员轮流领学，党员结合岗位职责交流体会，共有{n + i}名党员参加，学习记录由组织委员整理，"
                     f"在第{i + 1}次党员大会上通报，并报上级党委备案。")
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------- load
def run_phase(url: str, clients: int, seconds: float, max_requests: int,
              side: Callable[[threading.Event], list[dict]] | None = None) -> dict[str, Any]:
    """``clients`` threads search for ``seconds`` (at most ``max_requests``); ``side`` runs beside them."""
    stop = threading.Event()
    side_out: list[dict] = []
    start = time.monotonic()
    load = SearchClients(url, clients, LOAD_QUESTIONS, max_requests, stride=3)
    helper = threading.Thread(target=lambda: side_out.extend(side(stop)), daemon=True) if side else None
    if helper:
        helper.start()
    while time.monotonic() - start < seconds:
        time.sleep(0.1)
        if load.count() >= max_requests:
            break
    stop.set()
    records = [_outcome(r) for r in load.stop(timeout=300)]
    if helper:
        helper.join(timeout=900)
    wall = time.monotonic() - start
    return {"records": records, "uploads": side_out, "wall_s": wall}


def _outcome(rec: dict) -> dict:
    """A search record with its latency in ms, ok (200 with results) and, when not ok, the error."""
    ok = rec["status"] == 200 and rec["hits"] > 0
    err = None if ok else rec["error"] if rec["status"] is None else f"{rec['status']} {rec['error']}"
    return {**rec, "ms": (rec["t1"] - rec["t0"]) * 1000, "ok": ok, "error": err}


def uploader(url: str, passages: int, first: int) -> Callable[[threading.Event], list[dict]]:
    """Upload new documents back to back until the phase stops; returns one record per upload."""
    def loop(stop: threading.Event) -> list[dict]:
        out, n = [], first
        while not stop.is_set():
            t0 = time.monotonic()
            # answered 202 at once; the upload counts until its job is done (vectors committed)
            status, job, _ = upload_and_wait(url, f"第{n}号学习简报.txt", upload_text(n, passages).encode("utf-8"),
                                             timeout=900)
            t1 = time.monotonic()
            files = job.get("files") or [{}]
            out.append({"t0": t0, "t1": t1, "s": t1 - t0, "status": status, "file_status": files[0].get("status"),
                        "encoded": (job.get("report") or {}).get("passages_encoded")})
            n += 1
        return out
    return loop


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


def summarize(records: list[dict], wall_s: float) -> dict[str, Any]:
    """Count, errors, throughput and latency percentiles (ms)."""
    ms = [r["ms"] for r in records]
    return {
        "requests": len(records), "errors": sum(1 for r in records if not r["ok"]),
        "throughput_rps": round(len(records) / wall_s, 1) if wall_s else 0.0,
        "p50_ms": round(pct(ms, 50), 1), "p95_ms": round(pct(ms, 95), 1), "p99_ms": round(pct(ms, 99), 1),
        "max_ms": round(max(ms), 1) if ms else float("nan"),
        "mean_ms": round(statistics.fmean(ms), 1) if ms else float("nan"),
    }


# ---------------------------------------------------------------------------- setup
def build_corpus(kind: str, dest: Path) -> Path:
    """The small (seed + regulation fixture) or medium (+ real regulations from party-docs) corpus, copied."""
    dest.mkdir(parents=True)
    shutil.copy(ROOT / "corpus" / "基层党支部工作论文.txt", dest)
    shutil.copy(ROOT / "tests" / "fixtures" / "regulation_sample.txt", dest / "支部工作条例示例.txt")
    if kind == "medium":
        if not PARTY_DOCS.is_dir():
            raise SystemExit("--corpus medium needs ../shared/bench/party-docs beside the project")
        for name in MEDIUM_DOCS:
            if (PARTY_DOCS / name).is_dir():
                shutil.copytree(PARTY_DOCS / name, dest / name)
    return dest


def build_index(corpus: Path, index: Path, cache_dir: Path | None) -> dict[str, Any]:
    """Index the corpus (reusing/refreshing ``cache_dir`` embeddings) and return the index stats."""
    index.mkdir(parents=True)
    if cache_dir and cache_dir.is_dir():
        shutil.copytree(cache_dir, index / "cache")
    t0 = time.monotonic()
    with Engine.open(index, Config()) as eng:
        report = eng.index(corpus, progress=True)
        stats = eng.stats()
    if cache_dir:
        shutil.rmtree(cache_dir, ignore_errors=True)
        shutil.copytree(index / "cache", cache_dir)
    stats.update(build_s=round(time.monotonic() - t0, 1), encoded=report.passages_encoded)
    return stats


def machine() -> str:
    """CPU model and core count."""
    m = bench_machine()
    return f"{m['cpu'] or 'unknown CPU'}, {m['cores']} cores"


def main(argv: list[str] | None = None) -> int:
    """Run both phases and print the table (and JSON with --out)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", choices=["small", "medium"], default="small")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0, help="duration of each phase")
    ap.add_argument("--max-requests", type=int, default=20000, help="cap on searches per phase")
    ap.add_argument("--threads", type=int, default=8, help="waitress threads of the server")
    ap.add_argument("--upload-passages", type=int, default=8, help="passages per uploaded document")
    ap.add_argument("--cache-dir", type=Path, default=None, help="keep the embedding cache here between runs")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="partyqa-load-"))
    server = None
    try:
        corpus = build_corpus(args.corpus, work / "corpus")
        stats = build_index(corpus, work / "index", args.cache_dir)
        print(f"index: {stats['documents']} documents, {stats['passages']} passages, model {stats['model']} "
              f"(built in {stats['build_s']} s, {stats['encoded']} passages encoded)", flush=True)
        server = Server(work / "index", work / "server.log", threads=args.threads)
        for q, mode in LOAD_QUESTIONS:  # warm up: model loaded, caches filled
            status, _, _ = search(server.url, q, mode)
            assert status == 200, f"warm-up search failed ({status})"

        results: dict[str, Any] = {"machine": machine(), "corpus": args.corpus, "clients": args.clients,
                                   "seconds": args.seconds, "server_threads": args.threads, "index": stats,
                                   "command": " ".join([Path(sys.executable).name, "bench/bench_load.py",
                                                        *(argv if argv is not None else sys.argv[1:])])}
        print(f"phase idle: {args.clients} clients x {args.seconds:.0f} s ...", flush=True)
        idle = run_phase(server.url, args.clients, args.seconds, args.max_requests)
        results["idle"] = summarize(idle["records"], idle["wall_s"])
        print(f"phase upload: {args.clients} clients x {args.seconds:.0f} s, uploads back to back ...", flush=True)
        busy = run_phase(server.url, args.clients, args.seconds, args.max_requests,
                         side=uploader(server.url, args.upload_passages, first=1))
        ups = busy["uploads"]
        during = [r for r in busy["records"] if any(r["t0"] < u["t1"] and r["t1"] > u["t0"] for u in ups)]
        results["upload"] = summarize(busy["records"], busy["wall_s"])
        results["upload_overlapping"] = summarize(during, busy["wall_s"])
        results["uploads"] = {"count": len(ups), "ok": sum(1 for u in ups if u["status"] == 202
                                                           and u["file_status"] == "added"),
                              "mean_s": round(statistics.fmean([u["s"] for u in ups]), 2) if ups else None,
                              "max_s": round(max(u["s"] for u in ups), 2) if ups else None,
                              "passages_each": args.upload_passages}
        errors = [r["error"] for r in idle["records"] + busy["records"] if not r["ok"]]
        results["error_examples"] = errors[:5]
        _, health, _ = http("GET", server.url + "api/health")
        results["documents_after"] = health.get("documents")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nmachine: {results['machine']}; corpus {args.corpus}: {stats['documents']} docs, "
          f"{stats['passages']} passages; {args.clients} clients; server threads {args.threads}")
    print(f"{'phase':<22} {'requests':>8} {'errors':>6} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8}")
    for key, label in (("idle", "idle"), ("upload", "upload (all)"), ("upload_overlapping", "upload (overlapping)")):
        s = results[key]
        print(f"{label:<22} {s['requests']:>8} {s['errors']:>6} {s['throughput_rps']:>7} {s['p50_ms']:>8} "
              f"{s['p95_ms']:>8} {s['p99_ms']:>8} {s['max_ms']:>8}")
    u = results["uploads"]
    print(f"uploads: {u['ok']}/{u['count']} succeeded, {u['passages_each']} passages each, mean {u['mean_s']} s, "
          f"max {u['max_s']} s; documents afterwards: {results['documents_after']}")
    if results["error_examples"]:
        print("errors, e.g.:", *results["error_examples"], sep="\n  ")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2), "utf-8")
        print(f"→ {args.out}")
    return 1 if results["idle"]["errors"] or results["upload"]["errors"] or u["ok"] != u["count"] else 0


if __name__ == "__main__":
    sys.exit(main())
