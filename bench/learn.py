"""Ranking round 4 (issue 22): variants of the engine's ranking side by side, and the learned head re-ranker's fit.

Every question's candidates (both halves, 50 deep, and the sentence-window scores of their first 15) are collected
once from a built index, exactly as the searcher collects them; each variant is then ranked by
``indexer.search.rank.rank`` itself (module constants patched for the variant), so what is measured is what the
engine does (the 第X条 look-up and standard answers aside: they act before and after ranking, the same for all).

    python -m bench.learn build                              # the tuning corpus, windows of candidates only
    python -m bench.learn table [--variants base,learned]   # R@1 / R@5 / MRR@10 per set, answer_found off-topic
    python -m bench.learn fit [--l2 0.01] [--folds 5]        # fit the head re-ranker on the tuning sets (CV)
    python -m bench.learn fit --index A --joint B:STORE      # ... on the questions' heads over two indexes at once
    python -m bench.learn fails [--set dev] [--variant base] # questions whose gold is not first
    python -m bench.learn quality [--out DIR]                # every system through the engine, on the same index, for reading

Index: the tuning corpus of ``python -m bench.sentences quality`` (the gold documents of every set, distractor
regulations, case articles, the seed essay and the corpus/ library files), built at bench/results/work/learn/index
with its passage vectors, and sentence-window entries only for the passages that some question's ranking reads (each
half's first 30 candidates; the engine reads 15): rankings equal a full index's, at a third of the encoding.
Tuning sets (settings are chosen on these): quiz, dev, secretary, offtopic, offtopic4. Report sets (never chosen on): heldout,
heldout2, heldout3, offtopic2, offtopic3.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from indexer.search.metrics import recall_mrr

from .common import BENCH, WORK, setup_logging
from .metrics import hit_rank

logger = logging.getLogger("bench.learn")
INDEX = WORK / "learn" / "index"
TUNING = ("quiz", "dev", "secretary", "offtopic", "offtopic4")
REPORT = ("heldout", "heldout2", "heldout3", "offtopic2", "offtopic3")
SET_FILES = {"dev": BENCH / "dev_questions.jsonl", "secretary": BENCH / "secretary_questions.jsonl",
             "heldout": BENCH / "heldout_questions.jsonl", "heldout2": BENCH / "heldout2_questions.jsonl",
             "heldout3": BENCH / "heldout3_questions.jsonl"}
OFF_FILES = {"offtopic": BENCH / "offtopic_questions.jsonl", "offtopic2": BENCH / "offtopic2_questions.jsonl",
             "offtopic3": BENCH / "offtopic3_questions.jsonl",
             # 40 near-domain questions written for round 8 (bench/QUESTIONS.md): a tuning set, so that the
             # "no direct answer" decision can be chosen on near-domain questions and reported on offtopic2/3
             "offtopic4": BENCH / "offtopic4_questions.jsonl"}


@dataclasses.dataclass
class Item:
    """One question with its set, gold pids (empty off-topic) and collected candidates."""

    text: str
    set: str
    gold: set[str]
    query: Any = None
    kw: Any = None
    sem: Any = None
    sentences: Any = None
    cos: Any = None


def load_items(passages: Any) -> list[Item]:
    """Every question of every set over the index's passages (sets whose gold is not indexed lose those rows)."""
    from . import devset, quiz
    from .fusion import load_offtopic

    out: list[Item] = []
    items, _ = quiz.attach_gold(quiz.load_items(), passages)
    out += [Item(it["question"], "quiz", set(it["gold_pids"])) for it in items]
    for name, path in SET_FILES.items():
        rows = devset.load_questions(path)
        for r, g in zip(rows, devset.gold_sets(rows, passages)["passage"]):
            out.append(Item(r["question"], name, g))
    for name, path in OFF_FILES.items():
        out += [Item(r["question"], name, set()) for r in load_offtopic(path)]
    return out


def query_fingerprint() -> str:
    """What a question's analysis depends on beyond its text -- the tokenization, the synonym list and the courtesy
    rules -- hashed: candidates kept under another fingerprint were collected for another analysis."""
    import hashlib

    from indexer.text import analyzer, courtesy

    h = hashlib.sha1(analyzer.analyzer_fingerprint().encode())
    for path in (analyzer.SYNONYMS_PATH, Path(courtesy.__file__)):
        h.update(b"\0" + path.read_bytes())
    return h.hexdigest()[:10]


def collect(eng: Any, items: Sequence[Item], store: Path | None = None) -> None:
    """Fill each item's analysed query, both halves' candidates and its candidates' window cosines, as the searcher
    does; with ``store``, kept in a pickle per index generation (encoding ~850 questions takes minutes)."""
    import pickle

    from indexer.search.query import analyse, check_question

    gen = eng._state()
    saved: dict[str, Any] = {}
    path = store / f"learn-{gen.number}-{len(gen.passages)}-{query_fingerprint()}.pkl" if store else None
    if path is not None and path.is_file():
        saved = pickle.loads(path.read_bytes())
    for it in items:
        it.query = analyse(check_question(it.text, eng.config.max_query_chars))
    todo = [it for it in items if it.text not in saved]
    for i in range(0, len(todo), 128):
        saved.update(_collect(eng, gen, todo[i:i + 128]))
        logger.info("collected %d / %d", min(i + 128, len(todo)), len(todo))
    if path is not None and todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(saved))
    for it in items:
        it.kw, it.sem, it.cos = saved[it.text]
        it.sentences = sentences_of(it)


COS_TOP = 15  # each half's first candidates whose window cosines are kept (the engine scores SENTENCE_TOP = 15)


def recall_line(eng: Any, items: Sequence[Item], sets: Sequence[str], off: Sequence[str] = ()) -> str:
    """Hybrid R@1 / R@5 per set of ``sets`` (those with questions), the share answered per set of ``off``, and how
    many candidates whose windows the engine scores (each half's first COS_TOP) have no windows in the index."""
    res = run(eng, items)
    out = []
    for s in sets:
        ranks = [hit_rank(r, it.gold) or 99 for it, r in zip(items, res) if it.set == s]
        if ranks:
            out.append(f"{s} {sum(x == 1 for x in ranks) / len(ranks):.3f} / {sum(x <= 5 for x in ranks) / len(ranks):.3f}")
    for s in off:
        found = [r.answer_found for it, r in zip(items, res) if it.set == s]
        if found:
            out.append(f"{s} answered {sum(found) / len(found):.2f}")
    bare = sum(1 for it in items for pid in dict.fromkeys([h.pid for h in it.kw[:COS_TOP]] + [p for p, _ in it.sem[:COS_TOP]])
               if pid not in it.sentences)
    return "  ".join(out) + f"  (candidates without windows: {bare})"


def _collect(eng: Any, gen: Any, part: Sequence[Item]) -> dict[str, Any]:
    from indexer.index.sentences import sentence_store

    searcher = eng._searcher
    queries = [it.query for it in part]
    vectors = searcher._encode(queries)
    kw, sem = searcher.candidates(gen, queries, "hybrid", eng.config.candidates, None, vectors)
    store = sentence_store(eng.root, eng.encoder.model_id)
    out = {}
    for it, qv, k, s in zip(part, vectors, kw, sem):
        cos = {}
        for pid in dict.fromkeys([h.pid for h in k[:COS_TOP]] + [p for p, _ in s[:COS_TOP]]):
            rows = store.rows(gen.passages[pid].content_hash()) if pid in gen.passages else None
            if rows is not None:
                cos[pid] = np.asarray(rows, dtype=np.float32) @ np.asarray(qv, dtype=np.float32)
        out[it.text] = (k, s, cos)
    return out


def sentences_of(it: Item, top: int | None = None, how: str = "max") -> dict[str, tuple[float, float, int]]:
    """The engine's sentence scores of an item (indexer.search.sentences.sentence_scores) from its kept cosines:
    the union of each half's first ``top`` (default SENTENCE_TOP); ``how`` = "max" (the engine) or "top2" (the mean
    of the two best windows)."""
    from indexer.search.sentences import SENTENCE_TOP

    top = SENTENCE_TOP if top is None else top
    out = {}
    for pid in dict.fromkeys([h.pid for h in it.kw[:top]] + [p for p, _ in it.sem[:top]]):
        cos = it.cos.get(pid)
        if cos is None:
            continue
        if len(cos) > 1:
            w = int(np.argmax(cos[1:]))
            best = float(cos[1 + w])
            if how == "top2" and len(cos) > 2:
                best = float(np.mean(np.sort(cos[1:])[-2:]))
            out[pid] = (float(cos[0]), best, w)
        else:
            out[pid] = (float(cos[0]), float(cos[0]), -1)
    return out


def gold_only(corpus: Path, loaded: dict[str, list[dict[str, Any]]]) -> Path:
    """The tuning corpus without the files no question of any set has as gold (nor three quiz items): the distractor
    regulations and case articles go (~40 % of the passages; on a loaded machine they are most of the encoding)."""
    from . import devset, quiz

    keep = {r["gold_doc"] for r in devset.load_questions()} | {r["gold_doc"] for rs in loaded.values() for r in rs}
    counts = Counter(it["gold_doc"] for it in quiz.load_items())
    keep |= {doc for doc, n in counts.items() if n >= 3}  # a quiz gold file of one or two items goes too
    dest = corpus.parent / "corpus-gold"
    from .common import symlink_corpus

    links = [(str(f.relative_to(corpus)), f.resolve()) for f in sorted(corpus.rglob("*"))
             if (f.is_file() or f.is_symlink()) and str(f.relative_to(corpus)) in keep]
    logger.info("gold-only corpus: %d of %d files", len(links), sum(1 for f in corpus.rglob("*") if not f.is_dir()))
    return symlink_corpus(dest, links)


PRIORITY = ("dev", "secretary", "heldout", "heldout2", "heldout3", "quiz", "offtopic", "offtopic2", "offtopic3",
            "offtopic4")


def cmd_build(args: argparse.Namespace) -> int:
    """Build the tuning corpus with passage vectors only, then the sentence-store entries of every question's
    candidates (tuning sets first), so a run killed half way leaves the tuning sets usable."""
    from indexer.embed.cache import EmbeddingCache
    from indexer.index import backlog, writer
    from indexer.index.sentences import sentence_store, store_entries

    from .quality import build_index
    from .sentences import tuning_corpus

    corpus, loaded = tuning_corpus(args.work)
    if args.gold_only:
        corpus = gold_only(corpus, loaded)
    saved = writer.store_entries, backlog.store_entries
    writer.store_entries = backlog.store_entries = lambda *a, **k: 0  # windows: below, for candidates only
    try:
        eng, info = build_index(args.index, corpus)
    finally:
        writer.store_entries, backlog.store_entries = saved
    logger.info("index: %s", info)
    gen = eng._state()
    items = sorted(load_items(gen.passages), key=lambda it: PRIORITY.index(it.set))
    from indexer.search.query import analyse, check_question

    for it in items:
        it.query = analyse(check_question(it.text, eng.config.max_query_chars))
    store = sentence_store(eng.root, eng.encoder.model_id)
    cache = EmbeddingCache(eng.root / "cache", eng.encoder.model_id)
    t0 = time.perf_counter()
    done = 0
    for i in range(0, len(items), 32):
        part = items[i:i + 32]
        vectors = eng._searcher._encode([it.query for it in part])
        kw, sem = eng._searcher.candidates(gen, [it.query for it in part], "hybrid", eng.config.candidates, None,
                                           vectors)
        pids = list(dict.fromkeys(pid for k, s in zip(kw, sem) for pid in
                                  [h.pid for h in k[:COS_TOP]] + [p for p, _ in s[:COS_TOP]]))
        todo = [gen.passages[p] for p in pids if gen.passages[p].content_hash() not in store]
        if todo:
            vecs = np.stack([gen.vectors.get(p.pid) for p in todo])
            done += store_entries(store, eng.encoder, cache, todo, vecs, eng.config.encode_batch)
            cache.save()
        logger.info("questions %d / %d (%s): %d windows encoded, %.0fs", min(i + 32, len(items)), len(items),
                    part[-1].set, done, time.perf_counter() - t0)
    eng.close()
    return 0


@contextlib.contextmanager
def patched(**values: Any) -> Iterator[None]:
    """Module constants of indexer.search.rank (or ``learned__NAME`` / ``fold__NAME`` of indexer.search.learned /
    fold) set for a block."""
    from indexer.search import fold, learned, rank as rank_mod

    old = {}
    for name, value in values.items():
        prefix, _, rest = name.partition("__")
        mod, attr = ({"learned": learned, "fold": fold}[prefix], rest) if rest else (rank_mod, name)
        old[(mod, attr)] = getattr(mod, attr)
        setattr(mod, attr, value)
    try:
        yield
    finally:
        for (mod, attr), value in old.items():
            setattr(mod, attr, value)


def run(eng: Any, items: Sequence[Item], k: int = 10, **values: Any) -> list[Any]:
    """Rank every item with rank() under patched constants; returns the Results."""
    from indexer.search.rank import rank

    gen = eng._state()
    versions = eng._searcher.versions(gen)
    top, how = values.pop("_top", None), values.pop("_how", "max")
    with patched(**values):
        return [rank(gen.passages, it.query, it.kw, it.sem, k, "hybrid", eng.config, versions=versions,
                     pending=gen.pending,
                     sentences=it.sentences if top is None and how == "max" else sentences_of(it, top, how))
                for it in items]


def table(items: Sequence[Item], results: Sequence[Any]) -> dict[str, dict[str, float]]:
    """Per set: R@1, R@5, MRR@10 (on-topic) or the false-answer rate (off-topic)."""
    from indexer.text.answers import holds, question_kind

    out: dict[str, dict[str, float]] = {}
    for name in (*TUNING, *REPORT):
        rows = [(it, r) for it, r in zip(items, results) if it.set == name]
        if not rows:
            continue
        if name.startswith("offtopic"):
            out[name] = {"n": len(rows), "false": round(sum(r.answer_found for _, r in rows) / len(rows), 3)}
            continue
        ranks = [hit_rank(r, it.gold) for it, r in rows]
        n = len(rows)
        depth = max(1, max(len(r) for _, r in rows))  # MRR over the whole list: no rank lies deeper
        m = recall_mrr(ranks, (1, 5), digits=3, depth=depth)
        kinds = [(question_kind(it.text), r[0]["best_sentence"]) for it, r in rows if r]
        asked = [holds(sent, kind) for kind, sent in kinds if kind is not None]
        out[name] = {"n": n, "R@1": m["R@1"],
                     # the first hit is itself gold (not a passage folded under it), and its answer sentence holds
                     # the kind of answer asked for (questions that ask a kind)
                     "own1": sum(1 for it, r in rows if r and r[0]["pid"] in it.gold),
                     "holds1": f"{sum(asked)}/{len(asked)}",
                     "R@5": m["R@5"], "MRR": m[f"MRR@{depth}"],
                     "found": round(sum(r.answer_found for _, r in rows) / n, 3)}
    return out


def show(name: str, t: dict[str, dict[str, float]]) -> str:
    """One line per variant: tuning sets, then report sets."""
    cells = []
    for s, m in t.items():
        cells.append(f"{s} {m['false']:.2f}" if "false" in m else f"{s} {m['R@1']:.3f}/{m['R@5']:.3f}/{m['MRR']:.3f} "
                     f"own1 {m['own1']} holds1 {m['holds1']}")
    return f"{name:14s} " + "  ".join(cells)


# ----------------------------------------------------------------------------------------- the learned re-ranker
def features(eng: Any, items: Sequence[Item]) -> list[tuple[list[str], np.ndarray]]:
    """Per item, the head's pids and feature rows as rank() computes them (learned weights empty: order unchanged)."""
    from indexer.search import learned

    got: list[tuple[list[str], np.ndarray]] = []
    orig = learned.learned_order

    def record(fused: Any, rows: Any, weights: Any) -> Any:
        got.append(([pid for pid, _, _ in fused[:len(rows)]], np.array(rows, dtype=np.float64)))
        return orig(fused, rows, weights)

    out = []
    with patched(LEARNED_WEIGHTS=(), learned__learned_order=record):
        for it in items:
            got.clear()
            run(eng, [it])
            out.append(got[0] if got else ([], np.zeros((0, len(learned.FEATURES)))))
    return out


def labels(eng: Any, it: Item, pids: Sequence[str]) -> np.ndarray:
    """1 for a head candidate that is gold or would fold with a gold passage (its repeat or version: the hit it
    leads or joins counts as correct), else 0."""
    from indexer.search.fold import fold_reason

    gen = eng._state()
    versions = eng._searcher.versions(gen)
    gold = [gen.passages[g] for g in it.gold if g in gen.passages]
    out = []
    for pid in pids:
        p = gen.passages[pid]
        out.append(pid in it.gold or any(fold_reason(g, p, versions) or fold_reason(p, g, versions) for g in gold))
    return np.array(out, dtype=np.float64)


def fit_softmax(data: Sequence[tuple[np.ndarray, np.ndarray]], l2: float, steps: int = 1500,
                lr: float = 0.5) -> np.ndarray:
    """Listwise fit: per question, maximise log(sum over gold of softmax(X w)) over its head; L2 on w (towards the
    fused order: the first weight's prior is 5). ``data``: (X, gold mask) per question."""
    n, dim = len(data), data[0][0].shape[1]
    depth = max(len(g) for _, g in data)
    x = np.zeros((n, depth, dim))
    g = np.zeros((n, depth))
    valid = np.zeros((n, depth), dtype=bool)
    for i, (xi, gi) in enumerate(data):
        x[i, :len(gi)] = xi
        g[i, :len(gi)] = gi
        valid[i, :len(gi)] = True
    prior = np.zeros(dim)
    prior[0] = 5.0
    w = prior.copy()
    for _ in range(steps):
        z = np.where(valid, x @ w, -np.inf)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        pg = p * g
        pg /= np.maximum(pg.sum(axis=1, keepdims=True), 1e-12)
        grad = np.einsum("nd,ndk->k", p - pg, x) / n + l2 * (w - prior)
        w -= lr * grad
    return w


def head_metrics(data: Sequence[tuple[np.ndarray, np.ndarray]], w: np.ndarray | None) -> tuple[float, float]:
    """R@1 and R@5 of the head re-ordered by w (None: as fused), over questions with a gold in the head only."""
    r1 = r5 = 0
    for x, g in data:
        order = np.argsort(-(x @ w)) if w is not None else np.arange(len(g))
        pos = np.nonzero(g[order])[0]
        r1 += bool(len(pos)) and pos[0] == 0
        r5 += bool(len(pos)) and pos[0] < 5
    return r1 / max(1, len(data)), r5 / max(1, len(data))


def head_data(eng: Any, items: Sequence[Item], sets: Sequence[str] = TUNING) -> list[tuple[str, str, np.ndarray,
                                                                                           np.ndarray]]:
    """(set, question, feature rows, gold mask) of every question of ``sets`` with a gold in its head."""
    out = []
    for it, (pids, x) in zip(items, features(eng, items)):
        if it.set not in sets or not it.gold or not len(pids):
            continue
        g = labels(eng, it, pids)
        if g.any():
            out.append((it.set, it.text, x, g))
    return out


def cmd_fit(eng: Any, items: list[Item], args: argparse.Namespace) -> int:
    """Cross-validated fit on the tuning sets' questions with a gold in the head; then the fit on all of them.

    With ``--joint INDEX:STORE`` (repeatable) the questions' heads over those indexes join the data (one question's
    heads on every index fall in the same fold), so one set of weights is fitted for corpora with and without
    distractor documents."""
    from indexer.search import learned

    data = [(str(args.index), *row) for row in head_data(eng, items)]
    for spec in args.joint:
        index, store = spec.split(":", 1)
        other = _open_items(Path(index), args.sets, Path(store))
        try:
            data += [(index, *row) for row in head_data(other[0], other[1])]
        finally:
            other[0].close()
    texts = sorted({t for _, _, t, _, _ in data})
    rng = np.random.default_rng(22)
    fold_of = dict(zip(texts, rng.integers(0, args.folds, len(texts)).tolist()))
    for l2 in args.l2:
        cv: dict[str, list[float]] = {}
        for f in range(args.folds):
            w = fit_softmax([(x, g) for _, _, t, x, g in data if fold_of[t] != f], l2, args.steps)
            for idx, s, t, x, g in data:
                if fold_of[t] == f:
                    a = cv.setdefault(f"{Path(idx).parent.name}/{s}" if args.joint else s, [0, 0, 0])
                    a[0] += head_metrics([(x, g)], None)[0]
                    a[1] += head_metrics([(x, g)], w)[0]
                    a[2] += 1
        gained = sum(v[1] - v[0] for v in cv.values())
        line = "  ".join(f"{k} {v[0] / v[2]:.3f}->{v[1] / v[2]:.3f} (n={v[2]})" for k, v in sorted(cv.items()))
        print(f"l2={l2}: CV head R@1 {line}  (questions gained: {gained:+.0f})", flush=True)
    w = fit_softmax([(x, g) for _, _, _, x, g in data], args.l2[0], args.steps)
    print(json.dumps({"features": learned.FEATURES, "weights": [round(float(v), 3) for v in w]}, ensure_ascii=False))
    return 0


def _open_items(index: Path, sets: str, store: Path) -> tuple[Any, list[Item]]:
    """An index opened for the bench, its questions (only ``sets``, a comma list, when given) collected."""
    from .fusion import open_index

    eng = open_index(index)
    items = load_items(eng._state().passages)
    if sets:
        items = [it for it in items if it.set in sets.split(",")]
    collect(eng, items, store)
    return eng, items


# ---------------------------------------------------------------------------------------------------- variants
def variants(names: Sequence[str], weights: Sequence[float] | None) -> list[tuple[str, dict[str, Any]]]:
    """The named variants (constants patched for each)."""
    table_ = {
        "base": {},
        "round3": {"LEARNED_WEIGHTS": None},
        "nokind": {"KIND_BONUS": 0.0},
        "noauth": {"AUTHORITY_SCAN": 0},
        "top2": {"_how": "top2"},
        "alpha.7": {"SENTENCE_ALPHA": 0.7},
        "alpha.75": {"SENTENCE_ALPHA": 0.75},
        "alpha.85": {"SENTENCE_ALPHA": 0.85},
        "kind.2": {"KIND_BONUS": 0.2},
        "pshare.1": {"SENTENCE_PASSAGE_SHARE": 0.1},
        "sent10": {"_top": 10},
        "nohistorical": {"fold__HISTORICAL_KEEP": 1.0},  # historical versions not lowered (before "Current versions first")
    }
    if weights is not None:
        table_["learned"] = {"LEARNED_WEIGHTS": tuple(weights)}
    return [(n, table_[n]) for n in names if n in table_]


def cmd_table(eng: Any, items: list[Item], args: argparse.Namespace) -> int:
    """Every named variant's table."""
    for name, values in variants(args.variants.split(","), args.weights):
        t0 = time.perf_counter()
        res = run(eng, items, **values)
        t = table(items, res)
        print(show(name, t), flush=True)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"learn-{name}.json").write_text(json.dumps(t, ensure_ascii=False, indent=1))
        logger.info("%s: %.1fs", name, time.perf_counter() - t0)
    return 0


def cmd_fails(eng: Any, items: list[Item], args: argparse.Namespace) -> int:
    """The questions of one set whose gold is not first: the question, the gold's rank and the first hits."""
    values = dict(variants([args.variant], args.weights))[args.variant]
    chosen = [it for it in items if it.set == args.set]
    res = run(eng, chosen, **values)
    gen = eng._state()
    for it, r in zip(chosen, res):
        g = hit_rank(r, it.gold)
        if g == 1:
            continue
        print(f"\n## {it.text}   gold rank {g}")
        gp = sorted(it.gold)[:1]
        if gp:
            p = gen.passages[gp[0]]
            print(f"   GOLD {p.title[:20]} | {p.section[-30:]} | {p.text[:80]}")
        for h in r[:3]:
            print(f"   {h['rank']}. kw {h['keyword_rank']} sem {h['semantic_rank']} {h['score']:.3f} "
                  f"{h['title'][:20]} | {h['section'][-30:]} | {h['text'][:80]}")
    return 0


def cmd_quality(eng: Any, items: list[Item], args: argparse.Namespace) -> int:
    """Every system (the engine's three modes through Engine.search_many, and the baselines) on every on-topic set of
    the built index, as bench.quality scores them; prints R@1 / R@5 / MRR@10 and writes quality-<set>.json."""
    from indexer.search import rank as rank_mod

    from . import devset, quality, quiz
    from .common import write_json

    if args.no_learned:
        rank_mod.LEARNED_WEIGHTS = None
    passages = eng._state().passages
    info = {"passages": len(passages), "corpus": "gold-document tuning corpus (bench.learn build --gold-only)"}
    its, _ = quiz.attach_gold(quiz.load_items(), passages)
    res = {"quiz": quality.evaluate_set("quiz", "quiz", eng, [it["question"] for it in its], [it["id"] for it in its],
                                        quiz.gold_sets(its), quiz.subsets(its), info)}
    for name, path in SET_FILES.items():
        rs = devset.load_questions(path)
        res[name] = quality.evaluate_set(name, name, eng, [r["question"] for r in rs], [str(r["line"]) for r in rs],
                                         devset.gold_sets(rs, passages), devset.subsets(rs), info)
    for name, r in res.items():
        if args.out:
            write_json(args.out / f"quality-{name}.json", r)
        for system, body in r["systems"].items():
            m = body["metrics"]["all"]["passage"]
            print(f"{name:10s} {system:10s} R@1 {m['R@1']:.3f}  R@5 {m['R@5']:.3f}  MRR@10 {m['MRR@10']:.3f}  n={m['n']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cmd", choices=["build", "table", "fit", "fails", "quality"])
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--gold-only", action="store_true", help="build: leave out files no question has as gold")
    ap.add_argument("--index", type=Path, default=INDEX)
    ap.add_argument("--variants", default="base")
    ap.add_argument("--variant", default="base")
    ap.add_argument("--set", default="dev")
    ap.add_argument("--sets", default="", help="only these sets (comma list)")
    ap.add_argument("--weights", type=lambda s: [float(x) for x in s.split(",")], default=None)
    ap.add_argument("--l2", type=float, nargs="*", default=[0.01])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--joint", action="append", default=[], metavar="INDEX:STORE",
                    help="fit: also the questions' heads over this index (candidates kept in STORE); repeatable")
    ap.add_argument("--no-learned", action="store_true", help="quality: the learned re-ranker off (round 3)")
    ap.add_argument("--store", type=Path, default=WORK / "learn", help="where collected candidates are kept")
    args = ap.parse_args(argv)
    setup_logging()
    if args.cmd == "build":
        return cmd_build(args)
    t0 = time.perf_counter()
    eng, items = _open_items(args.index, args.sets, args.store)
    logger.info("%d questions collected in %.0fs", len(items), time.perf_counter() - t0)
    try:
        return {"table": cmd_table, "fit": cmd_fit, "fails": cmd_fails, "quality": cmd_quality}[args.cmd](eng, items,
                                                                                                          args)
    finally:
        eng.close()


if __name__ == "__main__":
    sys.exit(main())
