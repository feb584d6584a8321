"""Choosing the fusion default and the answer-confidence model on *tuning* questions, reporting on the others.

Each question's two candidate lists (keyword and semantic, 50 deep, exactly what the engine fuses) are collected
once from a built index; every variant is then ranked by ``indexer.search.rank.rank`` itself, so what is chosen here is
what the engine does.

    .venv/bin/python -m bench.fusion build  # the tuning corpus: the curated regulation corpus + seed (2,355 passages)
    .venv/bin/python -m bench.fusion grid   # every grid point, tuning and held-out halves side by side
    .venv/bin/python -m bench.fusion fit    # logistic fit of the answer confidence (tuning half of every set)

The tuning corpus is the curated regulation corpus of tests/test_quality.py (the gold documents of the dev, quiz and
held-out questions, distractor regulations, 15 case articles, the seed essay); ``--index`` points grid/fit at another
index, e.g. the whole party-docs index of a full run (bench/results/work/party/index).

Tuning questions: the half of the quiz items, of the dev questions and of the off-topic questions whose
``stable_key`` is even. Held out: the other halves and every question of bench/heldout_questions.jsonl.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import devset, quiz
from .common import BENCH, WORK, apply_stand_in, setup_logging, skip_without_shared, stable_key
from indexer.search.metrics import recall_mrr

from .metrics import hit_rank

OFFTOPIC = BENCH / "offtopic_questions.jsonl"
HELDOUT = BENCH / "heldout_questions.jsonl"


def is_tuning(key: str) -> bool:
    """The stable half of a set that settings may be chosen on."""
    return int(stable_key(key)[:8], 16) % 2 == 0


def load_offtopic(path: Path = OFFTOPIC) -> list[dict[str, Any]]:
    """The off-topic questions (nothing in the corpus answers them), each with ``kind``."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@dataclasses.dataclass
class Question:
    """One question with its gold pids (empty for off-topic) and the set and split it belongs to."""

    text: str
    key: str
    set: str
    gold: set[str]
    tuning: bool
    subset: str = ""


def party_questions(passages: Any) -> list[Question]:
    """Quiz, dev, held-out and off-topic questions over the party-docs index."""
    out: list[Question] = []
    items, _ = quiz.attach_gold(quiz.load_items(), passages)
    for it in items:
        out.append(Question(it["question"], f"quiz:{it['id']}", "quiz", set(it["gold_pids"]),
                            is_tuning(f"quiz:{it['id']}")))
    for name, path in (("dev", devset.DEV_QUESTIONS), ("heldout", HELDOUT)):
        if not path.is_file():
            continue
        rows = devset.load_questions(path)
        gold = devset.gold_sets(rows, passages)["passage"]
        for r, g in zip(rows, gold):
            key = f"{name}:{r['line']}"
            out.append(Question(r["question"], key, name, g, name == "dev" and is_tuning(key),
                                f"{r['set']}/{'low' if r['low_overlap'] else 'high'}"))
    if OFFTOPIC.is_file():
        for i, r in enumerate(load_offtopic()):
            key = f"off:{i}"
            out.append(Question(r["question"], key, "offtopic", set(), is_tuning(key), r.get("kind", "")))
    return out


def collect(eng: Any, questions: Sequence[Question]) -> list[tuple[list, list]]:
    """Both halves' raw candidate lists for every question (one batched query encoding)."""
    from indexer.search.query import analyse

    reader = eng._state().reader
    depth = eng.config.candidates
    texts = [" ".join(q.text.split())[: eng.config.max_query_chars] for q in questions]
    sem = reader.vector_search_many(eng.encoder.encode_queries(texts), depth)
    kw = reader.keyword_search_many([analyse(t).terms for t in texts], depth)
    return list(zip(kw, sem))


def run_variant(eng: Any, questions: Sequence[Question], cands: Sequence[tuple[list, list]], mode: str,
                k: int = 10, **overrides: Any) -> list[Any]:
    """Rank every question with one configuration; returns the Results."""
    from indexer.search.query import analyse
    from indexer.search.rank import rank

    cfg = dataclasses.replace(eng.config, **overrides)
    gen = eng._state()
    versions = eng._searcher.versions(gen)
    return [rank(gen.passages, analyse(" ".join(q.text.split())), kw, sem, k, mode, cfg, versions=versions)
            for q, (kw, sem) in zip(questions, cands)]


def table(questions: Sequence[Question], results: Sequence[Any], tuning: bool | None) -> dict[str, dict[str, float]]:
    """R@5 and MRR@10 per set (on-topic sets) and answer_found rates, for the tuning or held-out half (or all)."""
    out: dict[str, dict[str, float]] = {}
    for name in ("quiz", "dev", "heldout", "offtopic"):
        rows = [(q, r) for q, r in zip(questions, results) if q.set == name and (tuning is None or q.tuning == tuning)]
        if not rows:
            continue
        found = sum(1 for _, r in rows if r.answer_found) / len(rows)
        if name == "offtopic":
            out[name] = {"n": len(rows), "false_answer_rate": round(found, 3)}
            continue
        ranks = [hit_rank(r, q.gold) for q, r in rows]
        out[name] = {"n": len(rows), **recall_mrr(ranks, (5,), digits=3, depth=10), "answer_found": round(found, 3)}
    return out


GRID = [
    {"fusion": "rrf"},
    *({"fusion": "convex", "alpha": a, "semantic_floor": f, "verbatim_shift": 0.0}
      for a in (0.2, 0.3, 0.4, 0.5, 0.6) for f in (0.0, 0.7)),
    *({"fusion": "convex", "alpha": a, "semantic_floor": 0.0, "verbatim_shift": s, "verbatim_coverage": c}
      for a in (0.3, 0.4, 0.5) for s in (0.1, 0.2, 0.3) for c in (0.7, 0.8, 0.9)),
]


def build_tuning_index(work: Path) -> Path:
    """Index the tuning corpus (see the module docstring) under ``work``; embeddings come from the shared cache."""
    from .quality import build_index

    rows = devset.load_questions()
    files = devset.regs_files(rows, devset.PARTY_DOCS)
    if HELDOUT.is_file():
        files += sorted({r["gold_doc"] for r in devset.load_questions(HELDOUT)} - set(files) - {devset.SEED_ID})
    corpus = devset.build_corpus(work / "fusion" / "corpus", files, devset.PARTY_DOCS, seed=True)
    eng, _ = build_index(work / "fusion" / "index", corpus)
    eng.close()
    return work / "fusion" / "index"


def open_index(index: Path) -> Any:
    """An engine on a built index (the tuning corpus by default)."""
    from indexer import Config, Engine

    if not (index / "CURRENT").is_file():
        raise SystemExit(f"no index at {index}: run `python -m bench.fusion build` first")
    return Engine.open(index, Config.from_env(reranker=""))


def cmd_grid(args: argparse.Namespace) -> int:
    """Score every grid point on the tuning half, print the held-out half for the chosen one."""
    eng = open_index(args.index)
    qs = party_questions(eng._state().passages)
    cands = collect(eng, qs)
    rows = []
    for mode in ("keyword", "semantic"):
        res = run_variant(eng, qs, cands, mode)
        rows.append(({"mode": mode}, table(qs, res, True), table(qs, res, False)))
    for point in GRID:
        res = run_variant(eng, qs, cands, "hybrid", **point)
        rows.append(({"mode": "hybrid", **point}, table(qs, res, True), table(qs, res, False)))
    for point, tune, held in rows:
        print(json.dumps({"point": point, "tuning": tune, "heldout": held}, ensure_ascii=False))
    return 0


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, steps: int = 20000) -> np.ndarray:
    """Weighted logistic regression by gradient descent (a little L2 on the slopes); returns (bias, *slopes)."""
    xb = np.hstack([np.ones((len(x), 1)), x])
    beta = np.zeros(xb.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-xb @ beta))
        beta -= 0.5 * (xb.T @ (w * (p - y))) / w.sum() + 1e-3 * np.r_[0, beta[1:]]
    return beta


def cmd_fit(args: argparse.Namespace) -> int:
    """Per mode: logistic fit of 'a gold passage is in the top 5' on the signals, tuning half only.

    Off-topic questions (label 0) are weighted up to the on-topic count, so the small set is not drowned out.
    """
    from indexer.search.rank import confidence_features

    eng = open_index(args.index)
    qs = party_questions(eng._state().passages)
    cands = collect(eng, qs)
    tune = np.array([q.tuning for q in qs])
    off = np.array([q.set == "offtopic" for q in qs])
    w = np.where(off, (~off & tune).sum() / max(1, (off & tune).sum()), 1.0) * tune
    models = {}
    for mode, used in (("hybrid", (0, 1, 2)), ("keyword", (0,)), ("semantic", (0, 2))):
        res = run_variant(eng, qs, cands, mode)
        x = np.array([confidence_features(r.signals) for r in res])[:, used]
        y = np.array([1.0 if q.gold and (hit_rank(r, q.gold) or 99) <= 5 else 0.0 for q, r in zip(qs, res)])
        beta = fit_logistic(x, y, w)
        full = [0.0, 0.0, 0.0]
        for i, b in zip(used, beta[1:]):
            full[i] = round(float(b), 3)
        models[mode] = (round(float(beta[0]), 3), *full)
    print(json.dumps(models))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("build", "grid", "fit"))
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--index", type=Path, default=None, help="index for grid/fit (default: the tuning corpus)")
    args = ap.parse_args(argv)
    args.index = args.index or args.work / "fusion" / "index"
    setup_logging()
    apply_stand_in()
    if skip_without_shared("fusion"):
        return 0
    if args.command == "build":
        print(build_tuning_index(args.work))
        return 0
    return {"grid": cmd_grid, "fit": cmd_fit}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
