"""The paraphrased dev questions (bench/dev_questions.jsonl): loading, checks, gold passages, the curated regs corpus.

Each line: ``{"question", "gold_doc", "gold_text", "set": "seed"|"regs", "low_overlap": bool}``. ``gold_doc`` is
the seed essay's file name or a path relative to ../shared/bench/party-docs (the doc id the engine gives a file
of a symlinked copy of that tree); ``gold_text`` is a 10-30 character span copied verbatim from the source. A row
with ``"corpus": true`` names a file of the shipped library instead: ``gold_doc`` is its path relative to corpus/
(the doc id ``partyqa index --import corpus/`` gives it); ``library_links`` puts such files into a bench corpus.

A hit is *strict*-correct when it comes from ``gold_doc`` and contains ``gold_text``; *text*-correct when any
passage contains ``gold_text`` (another file quoting the same rule); *doc*-correct when it comes from ``gold_doc``.

``regs_files``/``build_corpus``/``evaluate`` keep the curated 52-file regulation corpus that
tests/test_quality.py uses for its keyword regression test.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .common import CORPUS, DEV_QUESTIONS, PARTY_DOCS, QUIZ, SEED, SEED_ID, stable_key, symlink_corpus
from .metrics import first_rank, metrics

MODES = ("keyword", "semantic", "hybrid")

# Distractors of the curated regulation corpus (paths relative to party-docs). The superseded 纪律处分条例
# versions (2018/2015/2003/1997) are left out: they repeat the 2023 articles verbatim.
REG_DISTRACTORS = [
    "xtjeyvc-dangfa/dangfa001.md", "xtjeyvc-dangfa/dangfa003.md", "xtjeyvc-dangfa/dangfa004.md",
    "xtjeyvc-dangfa/dangfa005.md", "xtjeyvc-dangfa/dangfa006.md", "xtjeyvc-dangfa/dangfa0015.md",
    "xtjeyvc-dangfa/dangfa0016.md", "xtjeyvc-dangfa/dangfa0022.md", "xtjeyvc-dangfa/dangfa0025.md",
    "xtjeyvc-dangfa/dangfa0026.md", "xtjeyvc-dangfa/dangfa0027.md",
    "xtjeyvc-8gui/02.md", "xtjeyvc-8gui/15.md", "xtjeyvc-8gui/18.md", "xtjeyvc-8gui/21.md", "xtjeyvc-8gui/22.md",
    "xtjeyvc-8gui/23.md", "xtjeyvc-8gui/24.md", "xtjeyvc-8gui/26.md", "xtjeyvc-8gui/27.md", "xtjeyvc-8gui/39.md",
    "xtjeyvc-8gui/41.md", "xtjeyvc-8gui/42.md",
    "xtjeyvc-6ji/index.md", "xtjeyvc-4feng/index.md",
    "congress-report/二十大报告.txt", "congress-report/十九大报告.txt",
]
SUPERSEDED = {"xtjeyvc-dangfa/dangfa009.md", "xtjeyvc-dangfa/dangfa0010.md", "xtjeyvc-dangfa/dangfa0011.md",
              "xtjeyvc-dangfa/dangfa0012.md"}
N_CASE_ARTICLES = 15


def load_questions(path: Path = DEV_QUESTIONS) -> list[dict[str, Any]]:
    """Read the dev questions and check that every field is present; each row gets its line number."""
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


def raw_file(doc_id: str, party_docs: Path = PARTY_DOCS, corpus: bool = False) -> Path:
    """The source file of a gold document id (the seed essay, a path relative to party-docs, or with ``corpus`` a path
    relative to the shipped library corpus/)."""
    if corpus:
        return CORPUS / doc_id
    return SEED if doc_id == SEED_ID else party_docs / doc_id


def library_links(rows: Iterable[dict[str, Any]]) -> list[tuple[str, Path]]:
    """(doc id, file) of every library (corpus/) gold document of ``rows`` except the seed essay, which every bench
    corpus already holds under the same id."""
    docs = sorted({r["gold_doc"] for r in rows if r.get("corpus")} - {SEED_ID})
    return [(d, CORPUS / d) for d in docs]


def check_gold_texts(rows: Iterable[dict[str, Any]], party_docs: Path = PARTY_DOCS) -> list[str]:
    """Problems with gold texts: absent from the raw file, or containing whitespace (cleaning may change it)."""
    problems = []
    texts: dict[str, str] = {}
    for r in rows:
        path = raw_file(r["gold_doc"], party_docs, bool(r.get("corpus")))
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


def gold_sets(rows: Sequence[dict[str, Any]], passages: Mapping[str, Any]) -> dict[str, list[set[str]]]:
    """Gold pids per question: ``passage`` (gold doc and gold text), ``text`` (gold text anywhere), ``doc``."""
    by_doc: dict[str, list[str]] = {}
    for pid, p in passages.items():
        by_doc.setdefault(p.doc_id, []).append(pid)
    out: dict[str, list[set[str]]] = {"passage": [], "text": [], "doc": []}
    for r in rows:
        in_doc = set(by_doc.get(r["gold_doc"], []))
        out["doc"].append(in_doc)
        out["passage"].append({pid for pid in in_doc if r["gold_text"] in passages[pid].text})
        out["text"].append({pid for pid, p in passages.items() if r["gold_text"] in p.text})
    return out


def subsets(rows: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    """Question indices of: all, low_overlap, high_overlap, seed (about the seed essay), regs (regulations)."""
    idx = range(len(rows))
    return {"all": list(idx),
            "low_overlap": [i for i in idx if rows[i]["low_overlap"]],
            "high_overlap": [i for i in idx if not rows[i]["low_overlap"]],
            "seed": [i for i in idx if rows[i]["set"] == "seed"],
            "regs": [i for i in idx if rows[i]["set"] == "regs"]}


# ------------------------------------------------------------------------------ the curated regulation corpus
def case_articles(party_docs: Path, n: int) -> list[str]:
    """``n`` 业务探讨 articles picked by a stable hash of their file names (deterministic, topic-blind)."""
    folder = party_docs / "xtjeyvc-yewutantao"
    if not folder.is_dir():
        return []
    names = sorted((p.name for p in folder.glob("*.md")), key=stable_key)
    return [f"xtjeyvc-yewutantao/{s}" for s in names[:n]]


def regs_files(rows: Sequence[dict[str, Any]], party_docs: Path = PARTY_DOCS, with_quiz: bool = True) -> list[str]:
    """Relative paths (under party-docs) of the curated regulation corpus: gold files, quiz gold files, distractors."""
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


def build_corpus(dest: Path, files: Sequence[str], party_docs: Path = PARTY_DOCS, seed: bool = True,
                 library: Sequence[tuple[str, Path]] = ()) -> Path:
    """A fresh corpus dir of symlinks: the seed essay at the top, party-docs files at their relative paths, and
    ``library`` files (``library_links``) at their ids."""
    links = [(SEED_ID, SEED)] if seed else []
    links += [(rel, party_docs / rel) for rel in files]
    links += list(library)
    return symlink_corpus(dest, links)


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


def judge(hits: Sequence[dict[str, Any]], gold_doc: str, gold_text: str | None,
          passages: Mapping[str, Any] | None = None) -> dict[str, int | None]:
    """Ranks of the first strict / document / text match among engine hits (None = not in the list).

    A hit counts with the near-duplicates folded into it (``also_in``, shown with it) when ``passages`` gives
    their text."""
    def shown(h: dict[str, Any]) -> list[tuple[str, str]]:
        extra = [(passages[a["pid"]].doc_id, passages[a["pid"]].text) for a in h.get("also_in", ())
                 if passages is not None and a["pid"] in passages]
        return [(h["doc_id"], h["text"]), *extra]

    out: dict[str, int | None] = {"doc": first_rank(hits, lambda h: any(d == gold_doc for d, _ in shown(h)))}
    if gold_text is not None:
        out["strict"] = first_rank(hits, lambda h: any(d == gold_doc and gold_text in t for d, t in shown(h)))
        out["text"] = first_rank(hits, lambda h: any(gold_text in t for _, t in shown(h)))
    return out


def evaluate(engine: Any, rows: Sequence[dict[str, Any]], modes: Sequence[str] = MODES, k: int = 10,
             doc_only: bool = False) -> dict[str, Any]:
    """Every question in every engine mode: per-question ranks and metric tables (all / low / high overlap)."""
    questions = [r["question"] for r in rows]
    result: dict[str, Any] = {"per_question": [dict(q=r["question"], gold_doc=r["gold_doc"]) for r in rows],
                              "metrics": {}}
    for mode in modes:
        all_hits = engine.search_many(questions, k=k, mode=mode)
        passages = engine._state().passages
        ranks = [judge(h, r["gold_doc"], None if doc_only else r["gold_text"], passages)
                 for h, r in zip(all_hits, rows)]
        for pq, rk in zip(result["per_question"], ranks):
            pq[mode] = rk
        kinds = ["doc"] if doc_only else ["strict", "doc", "text"]
        groups = {"all": list(range(len(rows)))}
        if not doc_only:
            groups["low_overlap"] = [i for i, r in enumerate(rows) if r["low_overlap"]]
            groups["high_overlap"] = [i for i, r in enumerate(rows) if not r["low_overlap"]]
        result["metrics"][mode] = {name: {kind: metrics([ranks[i][kind] for i in idx]) for kind in kinds}
                                   for name, idx in groups.items()}
    return result
