"""CMRC 2018 dev as a passage-retrieval set: the 848 contexts are the documents, the 3,219 questions the queries.

The gold of a question is its own context: any passage the engine cut from that context counts. The contexts are
written to a derived jsonl corpus under bench/results/work (git-ignored; the shared data is never copied into the
project tree that git sees). ``low_overlap`` marks the questions whose character-bigram overlap with their own
context is below the median: the half where keyword search is weakest.
"""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

from .common import CMRC_DEV, stable_key

_WORD_CHAR = re.compile(r"[0-9A-Za-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def load(path: Path = CMRC_DEV) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """(contexts, questions) of a SQuAD-format CMRC file; a context is {id, title, text}, a question {id, question, doc_id}."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    contexts: list[dict[str, str]] = []
    questions: list[dict[str, Any]] = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            cid = str(para.get("id") or article["id"])
            contexts.append({"id": cid, "title": article.get("title", ""), "text": para["context"]})
            for qa in para["qas"]:
                questions.append({"id": qa["id"], "question": qa["question"].strip(), "doc_id": cid,
                                  "answers": [a["text"] for a in qa.get("answers", [])]})
    return contexts, questions


def subset(contexts: Sequence[dict[str, str]], questions: Sequence[dict[str, Any]], n_contexts: int | None,
           max_questions: int | None = None) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The first ``n_contexts`` contexts in a stable hashed order and their questions (optionally capped, same order)."""
    if n_contexts is None or n_contexts >= len(contexts):
        chosen = list(contexts)
    else:
        chosen = sorted(contexts, key=lambda c: stable_key(c["id"]))[:n_contexts]
    keep = {c["id"] for c in chosen}
    qs = [q for q in questions if q["doc_id"] in keep]
    if max_questions is not None and len(qs) > max_questions:
        qs = sorted(qs, key=lambda q: stable_key(q["id"]))[:max_questions]
    return chosen, qs


def write_corpus(dest: Path, contexts: Sequence[dict[str, str]]) -> Path:
    """A corpus directory holding one jsonl file, one context a line ({id, title, text}); returns the directory."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*"):
        old.unlink()
    with open(dest / "cmrc2018_dev.jsonl", "w", encoding="utf-8") as fh:
        for c in contexts:
            fh.write(json.dumps({"id": c["id"], "title": c["title"], "text": c["text"]}, ensure_ascii=False) + "\n")
    return dest


def bigrams(text: str) -> set[str]:
    """Character bigrams of a text after dropping everything but CJK characters, letters and digits."""
    chars = "".join(_WORD_CHAR.findall(text.lower()))
    return {chars[i:i + 2] for i in range(len(chars) - 1)}


def overlap(question: str, context: str) -> float:
    """Share of the question's distinct character bigrams that also occur in the context (0 when it has none)."""
    q = bigrams(question)
    return len(q & bigrams(context)) / len(q) if q else 0.0


def mark_low_overlap(questions: Sequence[dict[str, Any]], contexts: Sequence[dict[str, str]]) -> float:
    """Set q["overlap"] and q["low_overlap"] (overlap strictly below the median); return the median."""
    text = {c["id"]: c["text"] for c in contexts}
    for q in questions:
        q["overlap"] = round(overlap(q["question"], text[q["doc_id"]]), 4)
    med = statistics.median(q["overlap"] for q in questions) if questions else 0.0
    for q in questions:
        q["low_overlap"] = q["overlap"] < med
    return med


def gold_sets(questions: Sequence[dict[str, Any]], passages: Mapping[str, Any]) -> dict[str, list[set[str]]]:
    """Gold pids per question: every passage of the question's own context."""
    by_doc: dict[str, set[str]] = {}
    for pid, p in passages.items():
        by_doc.setdefault(p.doc_id, set()).add(pid)
    return {"context": [by_doc.get(q["doc_id"], set()) for q in questions]}


def subsets(questions: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    """Question indices of all, low_overlap (below-median bigram overlap) and high_overlap questions."""
    idx = range(len(questions))
    return {"all": list(idx), "low_overlap": [i for i in idx if questions[i]["low_overlap"]],
            "high_overlap": [i for i in idx if not questions[i]["low_overlap"]]}
