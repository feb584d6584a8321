"""Run the benchmark suite and print one JSON object with the headline figures.

    .venv/bin/python -m bench.run --quick     # < 1 min once the embedding cache is warm: CMRC subset + latency at 1k
    .venv/bin/python -m bench.run             # full (make bench): quality, speed at 1k/10k/100k, diagnostics, report
    .venv/bin/python -m bench.run --only speed --sizes 1000,10000

The full run writes bench/results/full/*.json and regenerates docs/BENCHMARKS.md (``python -m bench.report``).
The quick run writes bench/results/quick/summary.json. Both skip, saying why, without ../shared/bench.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .common import (RESULTS, WORK, apply_stand_in, machine, now_iso, read_json, setup_logging, shared_missing,
                     write_json)

logger = logging.getLogger("bench.run")

QUICK_CMRC_CONTEXTS = 848  # all of them: the same distractors as the full run
QUICK_CMRC_QUESTIONS = 150
HEADLINE_METRICS = ("R@1", "R@5", "R@10", "MRR@10")


def quality_headline(res: dict[str, Any], kind: str, low: str | None = "low_overlap") -> dict[str, Any]:
    """{system: {R@1, R@5, R@10, MRR@10[, low_overlap_R@5]}} of one quality result."""
    out = {}
    for system, body in res["systems"].items():
        m = body["metrics"]["all"][kind]
        row = {k: m[k] for k in HEADLINE_METRICS}
        if low and low in body["metrics"]:
            row[f"{low}_R@5"] = body["metrics"][low][kind]["R@5"]
        out[system] = row
    return out


def latency_headline(entry: dict[str, Any]) -> dict[str, Any]:
    """{mode or baseline: {p50, p95}} in ms of one size's speed entry."""
    out = {}
    for mode, m in entry["query"]["modes"].items():
        out[mode] = {"p50": m["p50_ms"]["median"], "p95": m["p95_ms"]["median"],
                     "search_many_per_query": m["search_many_ms_per_query"]["median"]}
    for name, m in entry.get("baselines", {}).get("systems", {}).items():
        out[name] = {"p50": m["p50_ms"]["median"], "p95": m["p95_ms"]["median"]}
    return out


def run_quick(work: Path, out_dir: Path, contexts: int = QUICK_CMRC_CONTEXTS,
              questions: int = QUICK_CMRC_QUESTIONS, size: int = 1000) -> dict[str, Any]:
    """CMRC subset quality for every system, then latency at ~``size`` passages; returns the headline dict."""
    from . import quality, speed

    t0 = time.perf_counter()
    res = quality.run_cmrc(work, contexts, questions)
    t_quality = time.perf_counter() - t0
    write_json(out_dir / "quality-cmrc.json", res)
    sp = speed.run_all([size], work, out_dir, queries=30, rounds=2, baseline_queries=20, startup_runs=0,
                       components=False)
    label = speed.size_label(size)
    head = {"cmrc": quality_headline(res, "context"),
            "latency_ms": {label: latency_headline(e) for label, e in sp["sizes"].items()},
            "n": {"cmrc_contexts": res["contexts"], "cmrc_passages": res["index"]["passages"],
                  "cmrc_questions": res["questions"], "cmrc_newly_embedded": res["index"]["passages_encoded"],
                  "latency_passages": sp["sizes"][label]["build"]["passages"],
                  "latency_queries": sp["sizes"][label]["query"]["queries"]},
            "seconds": {"quality": round(t_quality, 1), "total": round(time.perf_counter() - t0, 1)}}
    return head


def run_full(work: Path, out_dir: Path, only: set[str], sizes: Sequence[int]) -> dict[str, Any]:
    """Quality on every set, speed at every size, then the report; returns the headline dict."""
    from . import quality, report, speed

    seconds: dict[str, float] = {}
    env = machine()
    if "quality" in only:
        t0 = time.perf_counter()
        res = quality.run_cmrc(work)
        write_json(out_dir / "quality-cmrc.json", {**res, "machine": env})
        for name, r in quality.run_party(work).items():
            write_json(out_dir / f"quality-{name}.json", {**r, "machine": env})
        seconds["quality"] = round(time.perf_counter() - t0, 1)
    if "speed" in only:
        t0 = time.perf_counter()
        speed.run_all(sizes, work, out_dir, queries=200, rounds=3, baseline_queries=100, startup_runs=3,
                      components=True, concurrency_seconds=15)
        from . import encoder_engines, two_processes
        from indexer.embed.e5native import find

        if find() is not None:  # the wheel's binary against the engine `make install` built
            write_json(out_dir / "encoder-engines.json", encoder_engines.run(rounds=5, n_passages=40))
        write_json(out_dir / "two-processes.json", two_processes.run(seconds=15))
        seconds["speed"] = round(time.perf_counter() - t0, 1)
    if "diagnose" in only:
        from . import diagnose

        t0 = time.perf_counter()
        which = [name for name, index in (("tokens", work / "party" / "index"),
                                          ("overlap", work / "speed-10k" / "index"),
                                          ("threads", work / "speed-10k" / "index")) if (index / "CURRENT").exists()]
        if which:
            diagnose.main([*which, "--work", str(work), "--out", str(out_dir)])
        seconds["diagnose"] = round(time.perf_counter() - t0, 1)
    info_path = out_dir / "run.json"
    info = read_json(info_path) if info_path.exists() else {}
    info.setdefault("seconds", {}).update(seconds)
    info.setdefault("commands", []).append(f"{now_iso()} python -m bench.run {' '.join(sys.argv[1:])}".strip())
    info.update({"finished": now_iso(), "machine": env})
    write_json(info_path, info)
    report.write_page(out_dir)
    return headline_from_dir(out_dir)


def headline_from_dir(out_dir: Path) -> dict[str, Any]:
    """The headline JSON of whatever full results exist in out_dir."""
    head: dict[str, Any] = {}
    kinds = {"cmrc": ("context", "low_overlap"), "quiz": ("passage", None), "dev": ("passage", "low_overlap")}
    for name, (kind, low) in kinds.items():
        path = out_dir / f"quality-{name}.json"
        if path.exists():
            head[name] = quality_headline(read_json(path), kind, low)
    lat = {}
    for path in sorted(out_dir.glob("speed-*k.json"), key=lambda p: int(p.stem.split("-")[1][:-1])):
        lat[path.stem.removeprefix("speed-")] = latency_headline(read_json(path))
    if lat:
        head["latency_ms"] = lat
    return head


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description="PartyQA benchmarks (quality against baselines, speed)")
    ap.add_argument("--quick", action="store_true", help="reduced run (< 1 min with a warm embedding cache)")
    ap.add_argument("--only", default="quality,speed,diagnose",
                    help="full run: comma list of quality, speed, diagnose")
    ap.add_argument("--sizes", default="1000,10000,100000", help="full run: index sizes (passages) for speed")
    ap.add_argument("--work", type=Path, default=WORK, help="corpora and indexes (rebuilt every run)")
    ap.add_argument("--out", type=Path, default=None, help="result dir (default bench/results/quick or full)")
    ap.add_argument("--quick-contexts", type=int, default=QUICK_CMRC_CONTEXTS, help=argparse.SUPPRESS)
    ap.add_argument("--quick-questions", type=int, default=QUICK_CMRC_QUESTIONS, help=argparse.SUPPRESS)
    ap.add_argument("--quick-size", type=int, default=1000, help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, default=None, help="embedding cache dir (default bench/results/embcache)")
    ap.add_argument("--stand-in", action="store_true",
                    help="for tests: a hashing stand-in instead of the model (figures meaningless)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    # Environment, so that the per-step child processes inherit the choice.
    if args.cache is not None:
        os.environ["BENCH_EMBCACHE"] = str(args.cache.resolve())
    if args.stand_in:
        os.environ["BENCH_STAND_IN"] = "1"
    setup_logging(args.verbose)
    stand_in = apply_stand_in()
    reason = shared_missing()
    if reason:
        print(json.dumps({"skipped": reason}, ensure_ascii=False))
        print(f"SKIP benchmarks: {reason}", file=sys.stderr)
        return 0
    t0 = time.perf_counter()
    if args.quick:
        out_dir = args.out or RESULTS / "quick"
        head = run_quick(args.work, out_dir, args.quick_contexts, args.quick_questions, args.quick_size)
    else:
        out_dir = args.out or RESULTS / "full"
        only = {s.strip() for s in args.only.split(",") if s.strip()}
        head = run_full(args.work, out_dir, only, [int(s) for s in args.sizes.split(",") if s.strip()])
    head["when"] = now_iso()
    if stand_in:
        head["stand_in"] = True
    head["wall_seconds"] = round(time.perf_counter() - t0, 1)
    write_json(out_dir / "summary.json", head)
    print(json.dumps(head, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
