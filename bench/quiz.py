"""Party quiz items (``party-quiz/quiz_items.aligned.jsonl``, ``auto_confidence == "high"``) as retrieval questions.

Stems become questions by a fixed rule (:func:`stem_to_question`):

1. a run of blanks joined by 、，, 和 与 及 (``（）、（）、（）``) becomes 哪些;
2. every other blank -- ``（）``/``()`` with only spaces or underscores inside, ``__`` or more, or 3+ spaces
   (the XXQG bank's blank, no-break spaces) -- becomes 什么;
3. trailing punctuation is dropped and a full-width question mark appended.

The options are not added (they would put the answer into the query).

Gold passage (:func:`gold_passages`): the items carry ``auto_gold_doc`` and ``auto_gold_snippet``, a window of
the gold file in SOURCES.md's normalised form (NFKC, no whitespace, no quotes) around the matched answer. Among
the gold document's passages that contain every answer part (normalised the same way), the gold is the one
sharing the longest common substring with the snippet (all of them on a tie). Items with no such passage are
dropped and counted. The document-level gold is any passage of ``auto_gold_doc``.
"""
from __future__ import annotations

import difflib
import json
import re
import unicodedata
from pathlib import Path
from typing import Any, Mapping, Sequence

from .common import QUIZ

_BLANK = r"(?:[（(][\s_\u3000\u00a0]*[）)]|_{2,}|[ \u3000\u00a0]{3,})"
_BLANK_RUN = re.compile(_BLANK + r"(?:\s*[、，,和与及]\s*" + _BLANK + r")+")
_BLANK_ONE = re.compile(_BLANK)
_TRAILING = re.compile(r"[\s。．.；;，,：:！!？?]+$")
_DROP = re.compile(r"[\s\u3000\u00a0\"'“”‘’]")
_ANSWER_SPLIT = re.compile(r"[；;、，,\s]+")
MIN_COMMON = 10  # a gold passage must share at least this many characters in a row with the snippet


def normalise(text: str) -> str:
    """SOURCES.md's matching form: NFKC, then no whitespace (incl. U+3000, U+00A0) and no ASCII/curly quotes."""
    return _DROP.sub("", unicodedata.normalize("NFKC", text or ""))


def stem_to_question(stem: str) -> str:
    """A quiz stem as a question: blanks -> 哪些/什么, trailing punctuation -> ？ (see the module docstring)."""
    q = _BLANK_RUN.sub("哪些", stem.strip())
    q = _BLANK_ONE.sub("什么", q)
    q = " ".join(q.split())
    return _TRAILING.sub("", q) + "？"


def answer_parts(answer: str) -> list[str]:
    """The normalised parts of an answer (split on ；、， and spaces), empty parts dropped."""
    return [p for p in (normalise(x) for x in _ANSWER_SPLIT.split(answer or "")) if p]


def load_items(path: Path = QUIZ) -> list[dict[str, Any]]:
    """High-confidence items with a stem, a gold document (without the ``party-docs/`` prefix) and a question."""
    items = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("auto_confidence") != "high" or not (row.get("question") or "").strip():
                continue
            gold = (row.get("auto_gold_doc") or "").removeprefix("party-docs/")
            if not gold:
                continue
            items.append({"id": row["id"], "src": row.get("src", ""), "type": row.get("type", ""),
                          "stem": row["question"].strip(), "question": stem_to_question(row["question"]),
                          "answer": row.get("answer") or "", "gold_doc": gold,
                          "snippet": row.get("auto_gold_snippet") or ""})
    return items


def longest_common(a: str, b: str) -> int:
    """Length of the longest common substring of a and b."""
    m = difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return m.size


def gold_passages(item: Mapping[str, Any], doc_passages: Sequence[tuple[str, str]]) -> set[str]:
    """Pids of the gold passage(s) among (pid, text) of the item's gold document (empty when none qualifies)."""
    parts = answer_parts(item["answer"])
    snippet = normalise(item["snippet"])
    best, gold = 0, set()
    for pid, text in doc_passages:
        norm = normalise(text)
        if not parts or not all(p in norm for p in parts):
            continue
        common = longest_common(norm, snippet)
        if common > best:
            best, gold = common, {pid}
        elif common == best and common:
            gold.add(pid)
    return gold if best >= MIN_COMMON else set()


def attach_gold(items: Sequence[dict[str, Any]], passages: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Items whose gold document is indexed and whose gold passage was found, each with ``gold_pids``/``doc_pids``;
    plus counts of the items dropped and why."""
    by_doc: dict[str, list[tuple[str, str]]] = {}
    for pid, p in passages.items():
        by_doc.setdefault(p.doc_id, []).append((pid, p.text))
    kept, dropped = [], {"gold_doc_not_indexed": 0, "no_passage_with_answer": 0}
    for it in items:
        doc = by_doc.get(it["gold_doc"])
        if not doc:
            dropped["gold_doc_not_indexed"] += 1
            continue
        gold = gold_passages(it, doc)
        if not gold:
            dropped["no_passage_with_answer"] += 1
            continue
        kept.append({**it, "gold_pids": gold, "doc_pids": {pid for pid, _ in doc}})
    return kept, dropped


def gold_sets(items: Sequence[dict[str, Any]]) -> dict[str, list[set[str]]]:
    """Gold pids per item: ``passage`` (the passage holding the answer) and ``doc`` (any passage of the gold doc)."""
    return {"passage": [it["gold_pids"] for it in items], "doc": [it["doc_pids"] for it in items]}


def subsets(items: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    """Item indices of all items and of the fill-in-the-blank bank (tk.json) versus the choice banks."""
    idx = range(len(items))
    return {"all": list(idx),
            "fill_in": [i for i in idx if items[i]["src"].startswith("autoAnswerDangjian")],
            "choice": [i for i in idx if not items[i]["src"].startswith("autoAnswerDangjian")]}
