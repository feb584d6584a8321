"""问答对 (question-answer pairs) imported as FAQ entries (issue 26): a csv / xlsx / jsonl file of question, answer
and optional source becomes one document per pair, and each question a standard question of its entry.

An entry is a document of a bulk ``.jsonl`` file written into the index's data folder (``问答-<name>.jsonl``), with
id ``问答/<name>/<n>``, the question as its title and ``问：…\\n答：…`` as its text, so both halves match the question
as well as the answer. Entries are listed, filtered (``--doc 问答/``) and deleted like documents; importing the
file again replaces its entries (a changed answer, a pair removed). Each question is then linked to its entry's
first passage (:meth:`indexer.curator.Curator.link_questions`): that question, or a close paraphrase, returns the
entry first, marked ``standard_answer``.

The add is one crash-safe write and the links another; a kill between leaves the entries searchable without their
links, and importing the file again (an unchanged add) links them.
"""
from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.index import journal
from indexer.questions import read_questions
from indexer.types import PartyQAError

if TYPE_CHECKING:
    from indexer.engine import Engine

logger = logging.getLogger(__name__)

FAQ_PREFIX = "问答"  # doc ids of FAQ entries start with 问答/
ANSWER_KEYS = ("answer", "答案", "回答", "答", "a", "A")
SOURCE_KEYS = ("source", "来源", "出处", "依据")
MAX_PAIRS = 2000  # per file: each question's vector lives in the manifest (~1 kB), rewritten by every write


def _field(row: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = row.get(key)
        if value is not None and str(value).strip():
            return " ".join(str(value).split()) if key in SOURCE_KEYS else str(value).strip()
    return ""


def read_pairs(path: str | Path) -> list[dict[str, str]]:
    """The (question, answer, source) pairs of a csv / xlsx (columns 问题, 答案, optional 来源) or jsonl file
    (question, answer, source); a pair without an answer refuses the file, naming its rows (bilingual)."""
    p = Path(path)
    if p.suffix.lower() not in (".csv", ".xlsx", ".jsonl"):
        raise PartyQAError(f"{p.name}：问答对文件须为 csv、xlsx 或 jsonl / {p.name}: a question-answer file must be .csv, "
                           f".xlsx or .jsonl")
    rows = read_questions(p)
    pairs, missing = [], []
    for n, row in enumerate(rows, start=1):
        answer = _field(row, ANSWER_KEYS)
        if not answer:
            missing.append(n)
            continue
        pairs.append({"question": " ".join(row["question"].split()), "answer": answer,
                      "source": _field(row, SOURCE_KEYS)})
    if missing:
        listed = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
        raise PartyQAError(f"{p.name}：第 {listed} 个问答对缺少答案（列名：答案 或 answer） / {p.name}: pair(s) {listed} "
                           f"have no answer (column 答案 or answer)")
    if not pairs:
        raise PartyQAError(f"{p.name}：没有问答对 / {p.name}: no question-answer pairs")
    if len(pairs) > MAX_PAIRS:
        raise PartyQAError(f"{p.name}：问答对过多（最多 {MAX_PAIRS}） / {p.name}: too many pairs (at most {MAX_PAIRS})")
    return pairs


def entry_name(path: str | Path) -> str:
    """The name of an imported file's entries: its stem without characters a doc id should not hold."""
    stem = re.sub(r"[\s/\\#?%]+", "_", Path(path).stem).strip("_.") or "faq"
    return stem[:60]


def entries(pairs: list[dict[str, str]], name: str) -> list[dict[str, Any]]:
    """The jsonl documents of the pairs: id ``问答/<name>/<n>``, title = question, text ``问：…\\n答：…``."""
    out = []
    for n, pair in enumerate(pairs, start=1):
        text = f"问：{pair['question']}\n答：{pair['answer']}"
        if pair["source"]:
            text += f"\n来源：{pair['source']}"
        out.append({"id": f"{FAQ_PREFIX}/{name}/{n}", "title": pair["question"], "text": text,
                    "faq_question": pair["question"], "faq_source": pair["source"]})
    return out


def import_faq(eng: "Engine", path: str | Path, wait: bool = False, who: str | None = None,
               job: str | None = None) -> dict[str, Any]:
    """Import a 问答对 file: its entries added (replacing those of an earlier import of the same name), each
    question linked to its entry. Returns ``{"file", "entries", "linked", "report"}``; audited as ``import``."""
    pairs = read_pairs(path)
    name = entry_name(path)
    with journal.audited(eng.root, "import", {"faq": Path(path).name, "pairs": len(pairs)}, who=who,
                         job=job) as end:
        with tempfile.TemporaryDirectory(prefix="partyqa-faq-") as tmp:
            bulk = Path(tmp) / f"{FAQ_PREFIX}-{name}.jsonl"
            bulk.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries(pairs, name)), "utf-8")
            report = eng.add([bulk], wait=wait)
        if report.errors:
            raise PartyQAError(f"问答对未能导入 / the pairs could not be imported: {report.errors}")
        links = []
        for n, pair in enumerate(pairs, start=1):
            passages = eng.passages(f"{FAQ_PREFIX}/{name}/{n}")
            links.append((pair["question"], passages[0]["pid"]))
        linked = eng.curator.link_questions(links, who=who, job=job, replace_docs=f"{FAQ_PREFIX}/{name}/")
        end["entries"] = len(pairs)
    logger.info("imported %d question-answer pairs from %s", len(pairs), path)
    return {"file": Path(path).name, "entries": [f"{FAQ_PREFIX}/{name}/{n}" for n in range(1, len(pairs) + 1)],
            "linked": len(linked), "report": report.to_dict()}
