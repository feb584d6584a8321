"""What the home page shows of the library: documents grouped by category with counts and index state, curated
example questions (corpus/examples.json), and which kinds of documents would answer a question nothing answered."""
from __future__ import annotations

import json
import logging
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Sequence

from .jobs import doc_state

logger = logging.getLogger(__name__)

EXAMPLES_NAME = "examples.json"
BUNDLED_CORPUS = Path(__file__).resolve().parents[1] / "corpus"
OTHER = "其他文档"
MAX_EXAMPLES_PER_CATEGORY = 8
DOCS_SHOWN = 15  # documents listed per category on the home page

# Which regulation answers which kind of question: (words in the question, the kind of document, title keys that
# identify it among the indexed titles). The first rows that match name the documents to look for.
KIND_HINTS: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...] = (
    (("处分", "违纪", "纪律", "开除", "警告", "留党察看"), "《中国共产党纪律处分条例》", ("纪律处分条例",)),
    (("八项规定", "公款", "公车", "吃喝", "节礼", "四风"), "中央八项规定及其实施细则", ("八项规定",)),
    (("党费", "交纳", "缴纳"), "《关于中国共产党党费收缴、使用和管理的规定》", ("党费",)),
    (("入党", "预备期", "预备党员", "发展党员", "入党积极分子", "转正", "誓词", "介绍人"),
     "《中国共产党发展党员工作细则》或党章", ("发展党员", "章程")),
    (("支委会", "支部委员会", "三会一课", "党小组", "支部书记", "党支部", "组织生活会", "主题党日"),
     "《中国共产党支部工作条例（试行）》", ("支部工作条例",)),
    (("问责",), "《中国共产党问责条例》", ("问责条例",)),
    (("廉洁", "自律"), "《中国共产党廉洁自律准则》", ("廉洁自律",)),
    (("党内政治生活", "民主生活会", "批评与自我批评"), "《关于新形势下党内政治生活的若干准则》", ("政治生活",)),
    (("教育管理", "学习教育", "党员培训", "流动党员"), "《中国共产党党员教育管理工作条例》", ("教育管理",)),
    (("权利", "义务", "党员标准", "党的纲领", "总纲", "党旗", "党徽", "章程", "党章"), "《中国共产党章程》", ("章程",)),
    (("二十大", "中国式现代化", "新时代", "报告"), "党的二十大报告", ("二十大", "第二十次全国代表大会")),
)
GENERAL_KINDS = "党章、党内法规（条例、规定、细则、准则）和党的重要报告"


def _examples_path(corpus_dir: Any) -> Path | None:
    """corpus/examples.json of the served corpus, else of the bundled corpus."""
    for folder in (corpus_dir, BUNDLED_CORPUS):
        if folder:
            path = Path(str(folder)) / EXAMPLES_NAME
            if path.is_file():
                return path
    return None


def load_examples(corpus_dir: Any) -> list[dict[str, str]]:
    """The curated example questions (question, doc, article, category); [] when there is no examples.json or it
    cannot be read (logged)."""
    path = _examples_path(corpus_dir)
    if path is None:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return []
    if isinstance(data, dict):  # {"examples": [...]} or {"category": [...]}
        if isinstance(data.get("examples"), list):
            data = data["examples"]
        else:
            data = [{**e, "category": e.get("category") or cat} if isinstance(e, dict) else {"question": e,
                                                                                                "category": cat}
                    for cat, rows in data.items() if isinstance(rows, list) for e in rows]
    out = []
    for row in data if isinstance(data, list) else []:
        if isinstance(row, dict) and isinstance(row.get("question"), str) and row["question"].strip():
            out.append({"question": row["question"].strip(), "doc": str(row.get("doc") or ""),
                        "article": str(row.get("article") or ""), "category": str(row.get("category") or "")})
    return out


def _doc_keys(doc_id: str, title: str) -> set[str]:
    """Names an examples.json ``doc`` may use for a document: its id, file name, stem and title."""
    p = PurePosixPath(doc_id)
    return {doc_id, p.name, p.stem, title}


def match_doc(name: str, docs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The indexed document an examples.json ``doc`` names (by id, file name, stem or title), or None."""
    if not name:
        return None
    stem = PurePosixPath(name).stem
    for d in docs:
        keys = _doc_keys(str(d["doc_id"]), str(d.get("title") or ""))
        if name in keys or stem in keys:
            return d
    return None


def _folder(doc_id: str) -> str:
    parent = PurePosixPath(doc_id).parent
    return "" if str(parent) == "." else str(parent)


def library(docs: Sequence[Mapping[str, Any]], examples: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """The library for the home page: categories (from examples.json, a document's own ``category``, else its
    folder) with their documents, counts and state, and the example questions whose document is indexed."""
    category_of: dict[str, str] = {}
    for ex in examples:
        d = match_doc(ex.get("doc", ""), docs)
        if d is not None and ex.get("category"):
            category_of.setdefault(str(d["doc_id"]), ex["category"])
    groups: dict[str, list[dict[str, Any]]] = {}
    pending = 0
    for d in docs:
        doc_id = str(d["doc_id"])
        cat = category_of.get(doc_id) or str(d.get("category") or "") or _folder(doc_id) or OTHER
        state, label = doc_state(dict(d))
        pending += state != "done"
        groups.setdefault(cat, []).append({"doc_id": doc_id, "title": d.get("title") or doc_id,
                                           "passages": d.get("passages") or 0, "state": state, "state_label": label,
                                           "version_status": d.get("version_status"),
                                           "version_label": d.get("version_label")})
    order = list(dict.fromkeys([ex["category"] for ex in examples if ex.get("category") in groups] + list(groups)))
    if OTHER in order:  # the catch-all goes last
        order.remove(OTHER)
        order.append(OTHER)
    # Per category, one question of each document in turn (its first, then its second...), so that a category of
    # twelve regulations does not show three questions about the first.
    per_doc: dict[str, dict[str, list[str]]] = {}
    for ex in examples:
        if match_doc(ex.get("doc", ""), docs) is None and ex.get("doc"):
            continue  # its document is not indexed: the library cannot answer it
        cat = ex.get("category") or OTHER
        qs = per_doc.setdefault(cat, {}).setdefault(ex.get("doc", ""), [])
        if ex["question"] not in qs:
            qs.append(ex["question"])
    shown: dict[str, list[str]] = {}
    for cat, by_doc in per_doc.items():
        picked = shown.setdefault(cat, [])
        depth = 0
        while len(picked) < MAX_EXAMPLES_PER_CATEGORY and any(depth < len(q) for q in by_doc.values()):
            for q in by_doc.values():
                if depth < len(q) and len(picked) < MAX_EXAMPLES_PER_CATEGORY and q[depth] not in picked:
                    picked.append(q[depth])
            depth += 1
    categories = [{"name": c, "documents": groups[c], "count": len(groups[c]), "shown": DOCS_SHOWN,
                   "passages": sum(int(x["passages"] or 0) for x in groups[c]), "examples": shown.get(c, [])}
                  for c in order]
    extra = [{"name": c, "documents": [], "count": 0, "shown": DOCS_SHOWN, "passages": 0, "examples": qs}
             for c, qs in shown.items() if c not in groups]
    return {"categories": categories + extra, "documents": len(docs), "pending": pending,
            "curated": bool(shown), "examples": [q for qs in shown.values() for q in qs]}


def answer_kinds(question: str, titles: Iterable[str]) -> dict[str, Any]:
    """Which documents would answer ``question``: (kinds named for it, those of them that are not indexed).

    ``{"kinds": ["《中国共产党纪律处分条例》"], "missing": [...], "general": GENERAL_KINDS}``; kinds is empty when
    no hint matches."""
    titles = list(titles)
    kinds: list[str] = []
    missing: list[str] = []
    for words, kind, keys in KIND_HINTS:
        if any(w in question for w in words) and kind not in kinds:
            kinds.append(kind)
            if not any(k in t for t in titles for k in keys):
                missing.append(kind)
        if len(kinds) >= 2:
            break
    return {"kinds": kinds, "missing": missing, "general": GENERAL_KINDS}
