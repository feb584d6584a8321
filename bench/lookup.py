"""Article look-up: does a question naming a regulation and an article get that article first?

The set (bench/lookup_questions.jsonl, written for this bench, paraphrased): ``question``, ``gold_doc`` (path under
party-docs), ``gold_article`` (``第二十七条``), optional ``gold_version`` (year), ``gold_regulation`` (a part of the
sub-regulation's name inside a compiled handbook), ``missing`` (the article does not exist: right when there are no
hits and a message says so) and ``kind`` tags (current, historical, handbook, short, arabic, topic, missing,
quoted: the question quotes the article's text, part: a numbered section ...); ``item`` rows name a numbered rule
of a regulation written without 第X条 (``gold_answer``: how the rule's answer sentence starts, ``二、`` / ``12.``),
``heading`` rows a named part (``gold_section``: 总纲, 总则, 附则) and ``part`` rows a numbered section
(``gold_section``: the section's heading).

The index holds every file of ../shared/bench/party-docs, keyword half only: a hashing stand-in replaces the
embedding model, so no model is needed and the semantic half is noise. The look-up does not depend on the
semantic half, so the figures hold for every mode; the run also reports them with the look-up switched off (what
ranking alone does), and checks that ordinary questions (bench/dev, heldout, heldout2, off-topic, off-topic2 and
secretary questions) are not touched: the look-up must fire on none of them that names no article.

    .venv/bin/python -m bench.lookup                 # builds bench/results/work/lookup-index (~1 min), prints a table
    .venv/bin/python -m bench.lookup --reuse -v      # reuse the index, list every miss
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from .common import BENCH, PARTY_DOCS, WORK, HashEncoder, fresh_engine, setup_logging, symlink_corpus

logger = logging.getLogger("bench.lookup")

QUESTIONS = BENCH / "lookup_questions.jsonl"
ORDINARY = tuple(BENCH / f"{name}_questions.jsonl" for name in ("dev", "heldout", "heldout2", "offtopic", "offtopic2",
                                                                   "secretary"))
MODES = ("keyword", "hybrid", "semantic")
K = 10


def load(path: Path = QUESTIONS) -> list[dict[str, Any]]:
    """The look-up questions."""
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def party_files(party_docs: Path = PARTY_DOCS) -> list[tuple[str, Path]]:
    """Every document of party-docs as (relative name, path): Markdown and text files, not the licence."""
    return sorted((str(p.relative_to(party_docs)), p) for p in party_docs.rglob("*")
                  if p.is_file() and p.suffix in (".md", ".txt") and "LICENSE" not in p.name)


def build(index_dir: Path, party_docs: Path = PARTY_DOCS) -> Any:
    """A fresh keyword-first index of party-docs with the hashing stand-in as its model."""
    import indexer.engine

    indexer.engine.load_encoder = lambda cfg: HashEncoder()  # type: ignore[assignment]
    corpus = symlink_corpus(index_dir.parent / (index_dir.name + "-corpus"), party_files(party_docs))
    eng = fresh_engine(index_dir, cache_dir=None)
    report = eng.index(corpus)
    if report.errors:
        logger.warning("%d file(s) not indexed: %s", len(report.errors), report.errors[:3])
    return eng


def open_index(index_dir: Path) -> Any:
    """An existing bench index, opened with the stand-in model."""
    import indexer.engine
    from indexer import Engine

    indexer.engine.load_encoder = lambda cfg: HashEncoder()  # type: ignore[assignment]
    return Engine.open(index_dir)


def hit_article(hit: dict[str, Any]) -> str | None:
    """The article label (``第二十七条``) a hit's section ends in, else None."""
    from indexer.text.articles import article_number, int_to_cn

    for part in reversed(hit["section"].split(" > ")):
        n = article_number(part)
        if n:
            return f"第{int_to_cn(n)}条"
    return None


def is_gold(hit: dict[str, Any], row: dict[str, Any]) -> bool:
    """The hit is the named article of the named document (and sub-regulation); for a numbered rule of a
    regulation without 第X条 (``gold_answer``), the hit's answer sentence starts with the rule's number; for a named
    part (``gold_section``: 总纲, 附则 ...), the hit's section path has it."""
    if hit["doc_id"] != row["gold_doc"]:
        return False
    if row.get("gold_answer"):
        return hit["best_sentence"].lstrip(" \u3000").startswith(row["gold_answer"])
    if row.get("gold_section"):
        return any(row["gold_section"] in part for part in hit["section"].split(" > "))
    return (hit_article(hit) == row["gold_article"]
            and (not row.get("gold_regulation") or row["gold_regulation"] in hit["citation"]))


def judge(row: dict[str, Any], hits: Sequence[dict[str, Any]]) -> tuple[bool, bool]:
    """(named article first, named article in the top 3); for a missing article: no hits and a message."""
    if row.get("missing"):
        ok = not hits and bool(getattr(hits, "message", None))
        return ok, ok
    found = getattr(hits, "found", None)
    if row.get("gold_section") and found is not None and found.ref.label == row["gold_section"]:
        # a scraped copy's 总纲 has no heading line the splitter took: the look-up's own passages count
        def ok(h: dict[str, Any]) -> bool:
            return is_gold(h, row) or (h["doc_id"] == row["gold_doc"] and h["pid"] in found.pids)
    else:
        def ok(h: dict[str, Any]) -> bool:
            return is_gold(h, row)
    first = bool(hits) and ok(hits[0])
    return first, any(ok(h) for h in hits[:3])


def run(eng: Any, rows: Sequence[dict[str, Any]], mode: str) -> dict[str, Any]:
    """First / top-3 shares of one mode, overall and per kind tag, with the misses."""
    results = eng.search_many([r["question"] for r in rows], k=K, mode=mode)
    first = top3 = 0
    per_kind: dict[str, list[int]] = {}
    misses = []
    for row, hits in zip(rows, results):
        f, t = judge(row, hits)
        first += f
        top3 += t
        for tag in filter(None, row.get("kind", "").split(",")):
            per_kind.setdefault(tag, [0, 0])
            per_kind[tag][0] += f
            per_kind[tag][1] += 1
        if not f:
            misses.append({"question": row["question"], "gold": f"{row['gold_doc']} {row['gold_article']}",
                           "got": [f"{h['doc_id']} {h['citation']}" for h in hits[:3]],
                           "message": getattr(hits, "message", None)})
    n = len(rows)
    return {"n": n, "first": first / n, "top3": top3 / n,
            "kinds": {k: f"{a}/{b}" for k, (a, b) in sorted(per_kind.items())}, "misses": misses}


def ordinary_questions() -> list[str]:
    """The project's ordinary question sets (none of them names an article)."""
    out: list[str] = []
    for path in ORDINARY:
        if path.exists():
            for line in path.read_text("utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    out.append(row.get("question") or row.get("q"))
    return [q for q in out if q]


def untouched(eng: Any, questions: Sequence[str], mode: str = "keyword") -> dict[str, Any]:
    """How many ordinary questions the look-up fires on, and whether their hit lists equal ranking alone."""
    import indexer.search.lookup as lk

    with_lookup = eng.search_many(list(questions), k=K, mode=mode)
    fired = [q for q, r in zip(questions, with_lookup) if getattr(r, "found", None) is not None]
    saved = lk.lookup
    lk.lookup = lambda *a, **kw: None  # type: ignore[assignment]
    try:
        alone = eng.search_many(list(questions), k=K, mode=mode)
    finally:
        lk.lookup = saved  # type: ignore[assignment]
    changed = sum([h["pid"] for h in a] != [h["pid"] for h in b] for a, b in zip(with_lookup, alone))
    return {"questions": len(questions), "fired": len(fired), "fired_on": fired[:10], "hit_lists_changed": changed}


def main(argv: Sequence[str] | None = None) -> int:
    """Build (or reuse) the index, run the set in every mode with and without the look-up, print a table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, default=WORK / "lookup-index")
    ap.add_argument("--reuse", action="store_true", help="reuse an index built by an earlier run")
    ap.add_argument("--questions", type=Path, default=QUESTIONS)
    ap.add_argument("-v", "--verbose", action="store_true", help="list the misses")
    args = ap.parse_args(argv)
    setup_logging()
    if not (PARTY_DOCS / "corpus.jsonl").exists():
        print(f"SKIP bench.lookup: {PARTY_DOCS} is absent: put the shared bench data at ../shared/bench",
              file=sys.stderr)
        return 0
    eng = open_index(args.index) if args.reuse and (args.index / "CURRENT").exists() else build(args.index)
    rows = load(args.questions)
    import indexer.search.lookup as lk

    table: dict[str, Any] = {}
    for mode in MODES:
        table[mode] = run(eng, rows, mode)
    saved = lk.lookup
    lk.lookup = lambda *a, **kw: None  # type: ignore[assignment]
    try:
        table["keyword, look-up off"] = run(eng, rows, "keyword")
    finally:
        lk.lookup = saved  # type: ignore[assignment]
    table["ordinary"] = untouched(eng, ordinary_questions())
    print(f"article look-up, {len(rows)} questions over party-docs ({eng.stats()['documents']} documents)")
    print(f"{'mode':24} {'first':>7} {'top-3':>7}")
    for mode, res in table.items():
        if mode != "ordinary":
            print(f"{mode:24} {res['first']:7.1%} {res['top3']:7.1%}")
    print("per kind (keyword, first):", json.dumps(table["keyword"]["kinds"], ensure_ascii=False))
    o = table["ordinary"]
    print(f"ordinary questions: {o['questions']}, look-up fired on {o['fired']}, "
          f"hit lists changed {o['hit_lists_changed']}"
          + (f" ({o['fired_on']})" if o["fired"] else ""))
    if args.verbose:
        for mode in MODES:
            for m in table[mode]["misses"]:
                print(mode, json.dumps(m, ensure_ascii=False))
    eng.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
