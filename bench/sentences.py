"""Research: score passages by their best sentence window as well as by the whole (issue 22, item 1).

    python -m bench.sentences encode [--top 20]   # windows of the candidates of every question, into the cache
    python -m bench.sentences grid                 # variants side by side (tuning half / held-out)
    python -m bench.sentences cost [--n 96]        # encoding time: passages alone vs their sentence windows
    python -m bench.sentences quality              # every system on the tuning corpus (+ new sets' gold documents)

Uses the tuning index of ``python -m bench.fusion build`` (bench/results/work/fusion/index) and the shared
embedding cache; window vectors are cached by their text's hash like passage vectors.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .common import WORK, setup_logging, write_json

logger = logging.getLogger("bench.sentences")
INDEX = WORK / "fusion" / "index"


def _engine(index: Path) -> Any:
    from .fusion import open_index

    return open_index(index)


def _cache(eng: Any) -> Any:
    from indexer.embed.cache import EmbeddingCache

    return EmbeddingCache(eng.root / "cache", eng.encoder.model_id)


def _questions(eng: Any, extra: Sequence[Path] = ()) -> list[Any]:
    from . import devset
    from .fusion import Question, is_tuning, party_questions

    qs = party_questions(eng._state().passages)
    for path in extra:
        if not path.is_file():
            continue
        rows = devset.load_questions(path) if "offtopic" not in path.name else None
        name = path.stem.replace("_questions", "")
        if rows is None:
            continue
        gold = devset.gold_sets(rows, eng._state().passages)["passage"]
        for r, g in zip(rows, gold):
            qs.append(Question(r["question"], f"{name}:{r['line']}", name, g, False,
                               f"{r['set']}/{'low' if r['low_overlap'] else 'high'}"))
    return qs


def union(kw: Sequence[Any], sem: Sequence[tuple[str, float]], top: int) -> list[str]:
    """The pids of both halves' first ``top`` candidates, keyword first."""
    out = dict.fromkeys([h.pid for h in kw[:top]] + [p for p, _ in sem[:top]])
    return list(out)


def cmd_encode(args: argparse.Namespace) -> int:
    from indexer.embed.cache import embed_passages
    from indexer.text.windows import window_key, window_texts

    from .fusion import collect

    eng = _engine(args.index)
    qs = _questions(eng, args.extra)
    cands = collect(eng, qs)
    passages = eng._state().passages
    order: list[str] = []
    seen: set[str] = set()
    # dev (tuning) first, then the rest: the grid can run on a partial cache
    for q, (kw, sem) in sorted(zip(qs, cands), key=lambda x: (x[0].set != "dev", x[0].set)):
        for pid in union(kw, sem, args.top):
            if pid not in seen:
                seen.add(pid)
                order.append(pid)
    items = []
    for pid in order:
        p = passages[pid]
        items.extend((window_key(t), t) for t in window_texts(p.title, p.section, p.text))
    cache = _cache(eng)
    have = set(cache.get_many([k for k, _ in items]))
    todo = [it for it in items if it[0] not in have]
    logger.info("%d passages, %d windows, %d to encode", len(order), len(items), len(todo))
    t0 = time.perf_counter()
    step = 256
    for i in range(0, len(todo), step):
        embed_passages(eng.encoder, cache, todo[i:i + step], batch_size=16)
        logger.info("  %d / %d windows (%.1f/s)", min(i + step, len(todo)), len(todo),
                    min(i + step, len(todo)) / (time.perf_counter() - t0))
    eng.close()
    return 0


@dataclasses.dataclass
class Cand:
    """What a variant needs of one candidate: its halves' raw scores and the windows' cosines."""

    pid: str
    kw: float | None
    cos_p: float
    cos_w: list[float]
    kind_w: bool = False  # the best window holds the kind of answer the question asks for
    kind_l: bool = False  # the lexical best sentence does
    subject: bool = False  # the question's focus term is the passage's subject
    noise: float = 1.0  # the share of its score the passage keeps as noise (rank._noise_keep)


def build_table(eng: Any, qs: Sequence[Any], cands: Sequence[Any], top: int) -> list[list[Cand]]:
    """Per question, the candidates of both halves' top lists with exact passage and window cosines."""
    from indexer.search.highlight import best_sentence
    from indexer.search.query import analyse
    from indexer.search.rank import _noise_keep, question_signals
    from indexer.text.analyzer import synonyms
    from indexer.text.answers import focus_terms, holds, question_kind, subject_of
    from indexer.text.windows import window_key, window_texts, windows

    gen = eng._state()
    vecs = gen.vectors
    cache = _cache(eng)
    qv = eng.encoder.encode_queries([q.text for q in qs])
    out = []
    for i, (q, (kw, sem)) in enumerate(zip(qs, cands)):
        kws = {h.pid: h.score for h in kw}
        known = {pid: gen.passages[pid] for pid in [h.pid for h in kw] + [p for p, _ in sem] if pid in gen.passages}
        q.coverage = question_signals(analyse(q.text), known, [(h.pid, h.score) for h in kw if h.pid in known],
                                      [(p, s) for p, s in sem if p in known]).coverage
        rows = []
        for pid in union(kw, sem, top):
            p = gen.passages[pid]
            pv = vecs.get(pid)
            cp = float(pv @ qv[i]) if pv is not None else 0.0
            keys = [window_key(t) for t in window_texts(p.title, p.section, p.text)]
            got = cache.get_many(keys)
            cw = [float(got[k] @ qv[i]) for k in keys if k in got]
            kind = question_kind(q.text)
            spans = windows(p.text)
            best_w = p.text[slice(*spans[int(np.argmax(cw))])] if cw and len(cw) == len(spans) else p.text
            b0, b1 = best_sentence(p.text, q.text, analyse(q.text).hit_terms)
            subj = subject_of(p.text, p.section)
            focus = focus_terms(q.text)
            is_subj = any(t in subj or any(x in subj for x in synonyms().get(t, ())) for t in focus)
            rows.append(Cand(pid, kws.get(pid), cp, cw, holds(best_w, kind), holds(p.text[b0:b1], kind), is_subj,
                             _noise_keep(p.text, p.section)))
        out.append(rows)
    return out


def rank_variant(rows: Sequence[Cand], alpha: float, lam: float, floor: float | None = None, kind_b: float = 0.0,
                 subj_b: float = 0.0, lexical_kind: bool = False, verbatim_alpha: float | None = None,
                 coverage: float = 0.0) -> list[str]:
    """Convex fusion of the keyword score and a semantic score lam * passage + (1 - lam) * best window, then noise
    demotion and the answer-kind and subject bonuses."""
    from indexer.search.fuse import normalise

    kw = [(c.pid, c.kw) for c in rows if c.kw is not None]
    sem = [(c.pid, lam * c.cos_p + (1 - lam) * (max(c.cos_w) if c.cos_w else c.cos_p)) for c in rows]
    if coverage >= 0.7:
        alpha = alpha - 0.1 if verbatim_alpha is None else verbatim_alpha
    score: dict[str, float] = {c.pid: 0.0 for c in rows}
    for pid, s in zip([p for p, _ in kw], normalise([s for _, s in kw])):
        score[pid] += (1 - alpha) * s
    for pid, s in zip([p for p, _ in sem], normalise([s for _, s in sem], floor)):
        score[pid] += alpha * s
    for c in rows:
        score[c.pid] *= c.noise * (1 + kind_b * ((c.kind_l if lexical_kind else c.kind_w))) * (1 + subj_b * c.subject)
    return sorted(score, key=lambda p: -score[p])


def metrics_of(ranked: Sequence[Sequence[str]], gold: Sequence[set[str]]) -> dict[str, float]:
    """R@1, R@5, MRR@10 of ranked pid lists."""
    r1 = r5 = mrr = 0.0
    for lst, g in zip(ranked, gold):
        for i, pid in enumerate(lst[:10], start=1):
            if pid in g:
                r1 += i == 1
                r5 += i <= 5
                mrr += 1 / i
                break
    n = max(1, len(gold))
    return {"R@1": round(r1 / n, 3), "R@5": round(r5 / n, 3), "MRR": round(mrr / n, 3), "n": len(gold)}


def cmd_grid(args: argparse.Namespace) -> int:
    from .fusion import collect

    eng = _engine(args.index)
    qs = [q for q in _questions(eng, args.extra) if q.gold]
    cands = collect(eng, qs)
    table = build_table(eng, qs, cands, args.top)
    sets = sorted({q.set for q in qs})
    variants = [("kw", 0.0, 1.0), ("sem-p", 1.0, 1.0), ("sem-w", 1.0, 0.0), ("sem-.5", 1.0, 0.5),
                ("now", 0.4, 1.0)]
    for a in args.alphas:
        for lam in args.lams:
            variants.append((f"a{a}-l{lam}", a, lam))
    for kb in args.bonus:
        variants.append((f"k{kb}", args.alphas[0], args.lams[0], kb, 0.0))
        variants.append((f"s{kb}", args.alphas[0], args.lams[0], 0.0, kb))
    for va in args.verbatim:
        variants.append((f"v{va}", args.alphas[0], args.lams[0], 0.1, 0.0, False, va))
    for name, alpha, lam, *extra in variants:
        line = [f"{name:10s}"]
        for s in sets:
            for tuning in ((True, False) if s in ("dev", "quiz") else (None,)):
                idx = [i for i, q in enumerate(qs) if q.set == s and (tuning is None or q.tuning == tuning)]
                padded = (list(extra) + [0.0, 0.0, False, None][len(extra):])[:4]
                m = metrics_of([rank_variant(table[i], alpha, lam, None, *padded, coverage=qs[i].coverage)
                                for i in idx], [qs[i].gold for i in idx])
                tag = s + ("" if tuning is None else ("-t" if tuning else "-h"))
                line.append(f"{tag} {m['R@1']:.3f}/{m['R@5']:.3f}")
        print("  ".join(line), flush=True)
    eng.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("cmd", choices=["encode", "grid", "cost", "quality"])
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--out", type=Path, default=WORK / "tuning" / "results")
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--index", type=Path, default=INDEX)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--extra", type=Path, nargs="*", default=[])
    ap.add_argument("--sets", default="", help="quality: comma list of the held-out / new sets to add (default all; "
                    "quiz and dev always run), e.g. heldout3")
    ap.add_argument("--alphas", type=float, nargs="*", default=[0.4, 0.5, 0.6])
    ap.add_argument("--lams", type=float, nargs="*", default=[1.0, 0.5, 0.0])
    ap.add_argument("--bonus", type=float, nargs="*", default=[])
    ap.add_argument("--verbatim", type=float, nargs="*", default=[])
    args = ap.parse_args(argv)
    setup_logging()
    return {"encode": cmd_encode, "grid": cmd_grid, "cost": cmd_cost, "quality": cmd_quality}[args.cmd](args)



def cmd_cost(args: argparse.Namespace) -> int:
    """Encoding time of passages alone vs their sentence windows (same passages, alternating rounds, no cache),
    windows per passage, and the sentence store's bytes per passage."""
    import statistics

    from indexer import Config
    from indexer.embed.encoders import load_encoder, passage_context
    from indexer.ingest.files import load_file
    from indexer.ingest.prepare import prepare
    from indexer.text.windows import window_texts

    from .common import PARTY_DOCS

    files = ["partymate/party_rules.md", "xtjeyvc-dangfa/dangfa008.md", "xtjeyvc-dangfa/dangfa002.md"]
    ps = [p for f in files for raw in load_file(PARTY_DOCS / f) for p in prepare(raw)[1]]
    step = max(1, len(ps) // args.n)
    sample = ps[::step][:args.n]
    enc = load_encoder(Config.from_env())
    ptexts = [passage_context(p.title, p.section, p.text) for p in sample]
    wtexts = [t for p in sample for t in window_texts(p.title, p.section, p.text)]
    enc.encode_passages(ptexts[:8])  # warm
    tp, tw = [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        enc.encode_passages(ptexts, batch_size=16)
        tp.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        enc.encode_passages(wtexts, batch_size=16)
        tw.append(time.perf_counter() - t0)
    p_s, w_s = statistics.median(tp), statistics.median(tw)
    rows = len(sample) + len(wtexts)
    out = {"passages": len(sample), "windows": len(wtexts), "windows_per_passage": round(len(wtexts) / len(sample), 2),
           "passage_seconds": round(p_s, 2), "window_seconds": round(w_s, 2),
           "passages_per_second_before": round(len(sample) / p_s, 2),
           "passages_per_second_after": round(len(sample) / (p_s + w_s), 2),
           "time_ratio_after_before": round((p_s + w_s) / p_s, 2),
           "store_bytes_per_passage": round(rows * 2 * enc.dim / len(sample)),
           "store_mb_at_100k": round(rows * 2 * enc.dim / len(sample) * 100_000 / 2 ** 20),
           "rounds": {"passages": [round(x, 2) for x in tp], "windows": [round(x, 2) for x in tw]},
           "threads": Config.from_env().index_threads}
    print(json.dumps(out, ensure_ascii=False))
    return 0


def tuning_corpus(work: Path, only: str = "") -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    """The tuning corpus (the dev questions' regulations and distractors, the seed essay, the gold documents of the
    held-out and new sets, ``only`` a comma list of them, and the corpus/ library files they name) as a symlink
    dir under ``work``; returns (the dir, the loaded rows of those sets)."""
    from . import devset, quality
    from .fusion import HELDOUT

    rows = devset.load_questions()
    files = devset.regs_files(rows, devset.PARTY_DOCS)
    sets = {"heldout": HELDOUT, **{name: path for name, path, _ in quality.NEW_SETS}}
    if only:
        sets = {name: path for name, path in sets.items() if name in only.split(",")}
    loaded = {name: devset.load_questions(path) for name, path in sets.items() if path.is_file()}
    for rs in loaded.values():
        files += sorted({r["gold_doc"] for r in rs if not r.get("corpus")} - set(files) - {devset.SEED_ID})
    library = devset.library_links([r for rs in loaded.values() for r in rs])
    corpus = devset.build_corpus(work / "tuning" / "corpus", files, devset.PARTY_DOCS, seed=True, library=library)
    return corpus, loaded


def cmd_quality(args: argparse.Namespace) -> int:
    """Every system on the tuning corpus (plus the gold documents of the held-out and new sets, library files of
    corpus/ at their ids): quiz, dev, held-out, held-out 2, held-out 3 and branch-secretary questions (``--sets``),
    one quality-<set>.json each in ``--out``; prints R@1 / R@5 / MRR@10."""
    from . import devset, quality, quiz

    rows = devset.load_questions()
    corpus, loaded = tuning_corpus(args.work, args.sets)
    eng, info = quality.build_index(args.work / "tuning" / "index", corpus)
    passages = eng._state().passages
    items, _ = quiz.attach_gold(quiz.load_items(), passages)
    res = {"quiz": quality.evaluate_set("quiz", "quiz (tuning corpus)", eng, [it["question"] for it in items],
                                        [it["id"] for it in items], quiz.gold_sets(items), quiz.subsets(items), info)}
    for name, rs in [("dev", rows), *loaded.items()]:
        res[name] = quality.evaluate_set(name, f"{name} (tuning corpus)", eng, [r["question"] for r in rs],
                                         [str(r["line"]) for r in rs], devset.gold_sets(rs, passages),
                                         devset.subsets(rs), info)
    eng.close()
    for name, r in res.items():
        write_json(args.out / f"quality-{name}.json", r)
        for system, body in r["systems"].items():
            m = body["metrics"]["all"]["passage"]
            print(f"{name:10s} {system:10s} R@1 {m['R@1']:.3f}  R@5 {m['R@5']:.3f}  MRR@10 {m['MRR@10']:.3f}  n={m['n']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
