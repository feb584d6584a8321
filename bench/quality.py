"""Retrieval quality: PartyQA's modes and the peer baselines on the same index, one run per question set.

Sets (see bench/README.md):

* ``cmrc``  -- CMRC 2018 dev, 848 contexts as documents, 3,219 questions, gold = the question's own context;
* ``quiz``  -- high-confidence party quiz items over the whole party-docs corpus, gold = the passage holding the
  answer (and, looser, the gold document);
* ``dev``   -- the paraphrased dev questions (bench/dev_questions.jsonl) over the same party-docs index plus the
  seed essay, gold = the passage of the gold document holding the gold span.

Every system ranks the same passages: the index PartyQA builds is read back (passages and vectors) and handed to
the baselines, so only the ranking differs.

    .venv/bin/python -m bench.quality --sets cmrc,party          # writes bench/results/full/quality-*.json
    .venv/bin/python -m bench.quality --sets heldout3,offtopic3  # the party index, only the named party sets

The party index holds the library files of corpus/ that a set's rows name as gold (``"corpus": true``, see
bench/devset.py) beside party-docs, at the ids ``partyqa index --import corpus/`` gives them; it holds them only
when such a set is evaluated.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import baselines, cmrc, devset, quiz
from .fusion import HELDOUT, OFFTOPIC, load_offtopic
from .common import (BENCH, PARTY_CORPUS_JSONL, PARTY_DOCS, RESULTS, SEED, SEED_ID, WORK, apply_stand_in, fresh_engine,
                     machine, now_iso, setup_logging, skip_without_shared, symlink_corpus, write_json)
from .metrics import score

logger = logging.getLogger("bench.quality")

PARTYQA_MODES = ("keyword", "semantic", "hybrid")
# Question sets written for issues 22/23 (bench/QUESTIONS.md): held out, never used to choose a setting.
NEW_SETS = [("secretary", BENCH / "secretary_questions.jsonl", "Branch-secretary and inspector questions"),
            ("heldout2", BENCH / "heldout2_questions.jsonl", "Held-out paraphrases, second set"),
            ("heldout3", BENCH / "heldout3_questions.jsonl", "Held-out paraphrases and netizen questions, third set")]
OFFTOPIC2 = BENCH / "offtopic2_questions.jsonl"
OFFTOPIC3 = BENCH / "offtopic3_questions.jsonl"
PARTY_SETS = ("quiz", "dev", "heldout", *(name for name, _, _ in NEW_SETS), "offtopic", "offtopic2", "offtopic3")
BASELINES = ("rank_bm25", "bm25s", "ensemble")
K = 10
BATCH = 256


def reranker_configured() -> str:
    """The cross-encoder folder PARTYQA_RERANKER names, or ''."""
    from indexer import Config

    return Config.from_env().reranker or ""


def settings(cfg: Any) -> dict[str, Any]:
    """The settings that change ranking or speed, as recorded with the results."""
    keys = ("model", "fusion", "alpha", "semantic_floor", "verbatim_coverage", "verbatim_shift", "min_confidence",
            "rrf_k", "keyword_weight", "semantic_weight", "candidates", "expand_semantic", "threads",
            "index_threads", "encode_batch", "reranker", "backend")
    return {k: getattr(cfg, k, None) for k in keys}


def build_index(index_dir: Path, corpus: Path) -> tuple[Any, dict[str, Any]]:
    """A brand-new index of ``corpus`` (embeddings from the shared cache); returns (engine, facts about it)."""
    from indexer import Config

    eng = fresh_engine(index_dir, config=Config.from_env(reranker=""))
    t0 = time.perf_counter()
    report = eng.index(corpus, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - t0
    if report.errors:
        logger.warning("%d file(s) not indexed: %s", len(report.errors), report.errors[:5])
    st = eng.stats()
    info = {"documents": st["documents"], "passages": st["passages"], "model": st["model"],
            "index_seconds": round(seconds, 1), "passages_encoded": report.passages_encoded,
            "errors": len(report.errors), "config": settings(eng.config)}
    logger.info("indexed %s: %d documents, %d passages (%d newly embedded) in %.0fs", corpus.name,
                st["documents"], st["passages"], report.passages_encoded, seconds)
    return eng, info


def _engine_rankings(eng: Any, questions: Sequence[str], mode: str, k: int) -> tuple[list[list[Any]], list[bool]]:
    """Each question's ranked hits as pid groups (a hit and the near-duplicates folded into it, shown with it) and
    its answer_found flag."""
    out: list[list[Any]] = []
    found: list[bool] = []
    for start in range(0, len(questions), BATCH):
        results = eng.search_many(list(questions[start:start + BATCH]), k=k, mode=mode)
        out.extend([(h["pid"], *(a["pid"] for a in h.get("also_in", ()))) for h in row] for row in results)
        found.extend(bool(getattr(row, "answer_found", True)) for row in results)
    return out, found


def run_systems(eng: Any, questions: Sequence[str], k: int = K, systems: Sequence[str] | None = None,
                rerank_engine: Any = None) -> tuple[dict[str, list[list[Any]]], dict[str, float], dict[str, float],
                                                    dict[str, list[bool]]]:
    """Top-k pids per question for every system (PartyQA's as pid groups, see ``_engine_rankings``); returns
    (rankings, query seconds, baseline build seconds, PartyQA's answer_found flags)."""
    wanted = list(systems or (*PARTYQA_MODES, *BASELINES))
    rankings: dict[str, list[list[Any]]] = {}
    seconds: dict[str, float] = {}
    found: dict[str, list[bool]] = {}
    for mode in PARTYQA_MODES:
        if mode in wanted:
            t0 = time.perf_counter()
            rankings[mode], found[mode] = _engine_rankings(eng, questions, mode, k)
            seconds[mode] = time.perf_counter() - t0
            logger.info("  %-9s %6.1fs", mode, seconds[mode])
    if rerank_engine is not None:
        t0 = time.perf_counter()
        rankings["hybrid+rerank"], found["hybrid+rerank"] = _engine_rankings(rerank_engine, questions, "hybrid", k)
        seconds["hybrid+rerank"] = time.perf_counter() - t0
    build: dict[str, float] = {}
    if any(b in wanted for b in BASELINES):
        gen = eng._state()  # the bench reads the committed generation to hand the very same passages to peers
        systems_, build = baselines.build_all(gen.passages, gen.vectors, eng.encoder)
        for name in BASELINES:
            if name in wanted:
                t0 = time.perf_counter()
                rankings[name] = systems_[name].search_many(list(questions), k)
                seconds[name] = time.perf_counter() - t0
                logger.info("  %-9s %6.1fs", name, seconds[name])
    return rankings, seconds, build, found


def evaluate_set(name: str, title: str, eng: Any, questions: Sequence[str], ids: Sequence[str],
                 gold: dict[str, list[set[str]]], subsets: dict[str, list[int]], index_info: dict[str, Any],
                 k: int = K, systems: Sequence[str] | None = None, rerank_engine: Any = None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every system on one question set and score it; the result is one JSON-ready dict."""
    limit = eng.config.max_query_chars
    qs = [" ".join(q.split())[:limit] for q in questions]
    logger.info("%s: %d questions", name, len(qs))
    rankings, seconds, build, found = run_systems(eng, qs, k, systems, rerank_engine)
    out: dict[str, Any] = {"set": name, "title": title, "when": now_iso(), "index": index_info, "k": k,
                           "questions": len(qs), "subsets": {s: len(i) for s, i in subsets.items()},
                           "gold_kinds": list(gold), "baseline_build_seconds": build, "systems": {},
                           "per_question": {"ids": list(ids), "ranks": {}}}
    for system, ranks in rankings.items():
        table, per_q = score(ranks, gold, subsets)
        secs = max(seconds[system], 1e-3)
        out["systems"][system] = {"metrics": table, "seconds": round(secs, 3),
                                  "questions_per_second": round(len(qs) / secs, 1)}
        if system in found:
            out["systems"][system]["answer_found_rate"] = round(sum(found[system]) / max(1, len(qs)), 4)
        out["per_question"]["ranks"][system] = per_q
    if extra:
        out.update(extra)
    return out


def _rerank_engine(index_dir: Path) -> Any:
    path = reranker_configured()
    if not path:
        return None
    from indexer import Config, Engine

    return Engine.open(index_dir, Config.from_env(reranker=path))


# ---------------------------------------------------------------------------------------------------- CMRC
def run_cmrc(work: Path, n_contexts: int | None = None, max_questions: int | None = None,
             systems: Sequence[str] | None = None) -> dict[str, Any]:
    """CMRC 2018 dev (or a stable subset of its contexts) indexed and asked by every system."""
    contexts, questions = cmrc.load()
    contexts, questions = cmrc.subset(contexts, questions, n_contexts, max_questions)
    median = cmrc.mark_low_overlap(questions, contexts)
    tag = "cmrc" if n_contexts is None else f"cmrc-{n_contexts}"
    corpus = cmrc.write_corpus(work / tag / "corpus", contexts)
    eng, info = build_index(work / tag / "index", corpus)
    rr = _rerank_engine(work / tag / "index")
    try:
        gold = cmrc.gold_sets(questions, eng._state().passages)
        missing = sum(1 for g in gold["context"] if not g)
        if missing:
            raise RuntimeError(f"{missing} CMRC questions have no indexed passage of their own context")
        return evaluate_set(
            "cmrc", f"CMRC 2018 dev ({len(contexts)} contexts, {info['passages']} passages)", eng,
            [q["question"] for q in questions], [q["id"] for q in questions], gold, cmrc.subsets(questions), info,
            systems=systems, rerank_engine=rr,
            extra={"contexts": len(contexts), "low_overlap_rule": f"character-bigram overlap with the own context "
                   f"< median ({median:.3f})", "overlap_median": round(median, 4)})
    finally:
        eng.close()
        if rr is not None:
            rr.close()


def evaluate_offtopic(eng: Any, index_info: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """Questions nothing in the corpus answers: the share each PartyQA mode still flags answer_found (false answers)."""
    rows = load_offtopic(path or OFFTOPIC)
    qs = [r["question"] for r in rows]
    out: dict[str, Any] = {"set": "offtopic", "title": "Off-topic questions (nothing in the corpus answers them)",
                           "when": now_iso(), "index": index_info, "questions": len(qs), "systems": {},
                           "kinds": sorted({r["kind"] for r in rows})}
    for mode in PARTYQA_MODES:
        _, found = _engine_rankings(eng, qs, mode, 5)
        by_kind: dict[str, list[bool]] = {}
        for r, f in zip(rows, found):
            by_kind.setdefault(r["kind"], []).append(f)
        out["systems"][mode] = {"false_answer_rate": round(sum(found) / max(1, len(found)), 4),
                                "by_kind": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_kind.items())},
                                "false_answers": [q for q, f in zip(qs, found) if f]}
    return out


# ---------------------------------------------------------------------------------------------------- party-docs
def party_files() -> list[str]:
    """The files corpus.jsonl lists, as paths relative to party-docs (its doc ids without the prefix)."""
    out = []
    with open(PARTY_CORPUS_JSONL, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(json.loads(line)["doc_id"].removeprefix("party-docs/"))
    return out


def run_party(work: Path, systems: Sequence[str] | None = None,
              only: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """The whole party-docs corpus plus the seed essay (and the library gold files of the new sets evaluated): the
    quiz items, the dev, held-out and new questions, the off-topic sets; ``only`` names the sets to run (default
    all of ``PARTY_SETS``)."""
    wanted = set(only or PARTY_SETS)
    new_rows = {name: devset.load_questions(path) for name, path, _ in NEW_SETS if name in wanted and path.is_file()}
    files = party_files()
    library = devset.library_links([r for rows in new_rows.values() for r in rows])
    corpus = symlink_corpus(work / "party" / "corpus",
                            [(SEED_ID, SEED)] + [(f, PARTY_DOCS / f) for f in files] + library)
    eng, info = build_index(work / "party" / "index", corpus)
    info["files"] = len(files) + 1 + len(library)
    rr = _rerank_engine(work / "party" / "index")
    results: dict[str, dict[str, Any] | None] = {}
    try:
        passages = eng._state().passages
        items, dropped = quiz.attach_gold(quiz.load_items(), passages)
        logger.info("quiz: %d items kept, dropped %s", len(items), dropped)
        results["quiz"] = None if "quiz" not in wanted else evaluate_set(
            "quiz", f"Party quiz, auto_confidence=high (whole party-docs + seed, {info['passages']} passages)", eng,
            [it["question"] for it in items], [it["id"] for it in items], quiz.gold_sets(items), quiz.subsets(items),
            info, systems=systems, rerank_engine=rr,
            extra={"dropped": dropped, "examples": [{"stem": it["stem"], "question": it["question"]}
                                                    for it in items[:3] + items[-3:]]})
        rows = devset.load_questions()
        problems = devset.check_against_index(eng, rows)
        results["dev"] = None if "dev" not in wanted else evaluate_set(
            "dev", f"Dev questions, paraphrased (whole party-docs + seed, {info['passages']} passages)", eng,
            [r["question"] for r in rows], [str(r["line"]) for r in rows], devset.gold_sets(rows, passages),
            devset.subsets(rows), info, systems=systems, rerank_engine=rr, extra={"index_problems": problems})
        if HELDOUT.is_file() and "heldout" in wanted:
            rows = devset.load_questions(HELDOUT)
            results["heldout"] = evaluate_set(
                "heldout", f"Held-out paraphrases (never used to choose a setting; {info['passages']} passages)", eng,
                [r["question"] for r in rows], [str(r["line"]) for r in rows], devset.gold_sets(rows, passages),
                devset.subsets(rows), info, systems=systems, rerank_engine=rr,
                extra={"index_problems": devset.check_against_index(eng, rows)})
        for name, path, title in NEW_SETS:
            if name in new_rows:
                rows = new_rows[name]
                results[name] = evaluate_set(
                    name, f"{title} ({info['passages']} passages)", eng, [r["question"] for r in rows],
                    [str(r["line"]) for r in rows], devset.gold_sets(rows, passages), devset.subsets(rows), info,
                    systems=systems, rerank_engine=rr, extra={"index_problems": devset.check_against_index(eng, rows)})
        if OFFTOPIC.is_file() and "offtopic" in wanted:
            results["offtopic"] = evaluate_offtopic(eng, info)
        for name, path in (("offtopic2", OFFTOPIC2), ("offtopic3", OFFTOPIC3)):
            if path.is_file() and name in wanted:
                results[name] = {**evaluate_offtopic(eng, info, path), "set": name}
    finally:
        eng.close()
        if rr is not None:
            rr.close()
    return {name: res for name, res in results.items() if res is not None}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the quality sets and write one JSON file per set."""
    ap = argparse.ArgumentParser(description="PartyQA retrieval quality against peer baselines")
    ap.add_argument("--sets", default="cmrc,party", help="comma list of: cmrc, party (every party set) or "
                    "single party sets (" + ", ".join(PARTY_SETS) + ")")
    ap.add_argument("--cmrc-contexts", type=int, default=None, help="stable subset of CMRC contexts (default all)")
    ap.add_argument("--cmrc-questions", type=int, default=None, help="cap on CMRC questions (default all)")
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--out", type=Path, default=RESULTS / "full", help="directory for quality-<set>.json")
    args = ap.parse_args(argv)
    setup_logging()
    apply_stand_in()
    if skip_without_shared("quality"):
        return 0
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    env = machine()
    if "cmrc" in sets:
        res = run_cmrc(args.work, args.cmrc_contexts, args.cmrc_questions)
        write_json(args.out / "quality-cmrc.json", {**res, "machine": env})
    only = [s for s in sets if s in PARTY_SETS]
    if "party" in sets or only:
        for name, res in run_party(args.work, only=None if "party" in sets else only).items():
            write_json(args.out / f"quality-{name}.json", {**res, "machine": env})
    return 0


if __name__ == "__main__":
    sys.exit(main())
