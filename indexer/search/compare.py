"""版本对照: one article across every indexed version of its regulation, paired by content, differences marked.

Article numbers shift between versions (2018 第七条 is 2015 第七条's successor, but 2023 第一百零一条 is 2018's
第八十八条), so each version's counterpart is the article whose text shares most character 4-grams with the asked
one, not the one with the same number. Differences are character runs from :class:`difflib.SequenceMatcher`.
"""
from __future__ import annotations

import difflib
import re
from functools import lru_cache
from typing import Any, Mapping

from indexer.text.cite import citation
from indexer.text.numerals import int_to_cn
from indexer.search.lookup import Catalog, Unit

__all__ = ["article_text", "counterpart", "diff_segments", "compare_article"]

MIN_SIMILARITY = 0.25  # below this share of shared 4-grams a version has no counterpart (the article is new there)
_NOT_TEXT = re.compile(r"[\s\W_]+", re.UNICODE)
_LABEL = re.compile(r"^\s*第[零〇一二两三四五六七八九十百千0-9]+条\s*")


def article_text(unit: Unit, article: int, passages: Mapping[str, Any], texts: Mapping[str, str]) -> str:
    """The whole article as the document has it (all its passages), or '' when the unit has no such article."""
    pids = unit.articles.get(article)
    if not pids:
        return ""
    ps = [passages[p] for p in pids]
    text = texts.get(unit.doc_id, "")
    return text[ps[0].start:ps[-1].end] if text else "\n".join(p.text for p in ps)


@lru_cache(maxsize=8192)
def _grams(text: str) -> frozenset[str]:
    s = _NOT_TEXT.sub("", _LABEL.sub("", text))
    return frozenset(s[i:i + 4] for i in range(max(1, len(s) - 3))) if s else frozenset()


def similarity(a: str, b: str) -> float:
    """Share of 4-grams the two article texts have in common (of the smaller one's), labels ignored."""
    ga, gb = _grams(a), _grams(b)
    return len(ga & gb) / min(len(ga), len(gb)) if ga and gb else 0.0


def counterpart(text: str, unit: Unit, passages: Mapping[str, Any], texts: Mapping[str, str],
                near: int | None = None) -> tuple[int | None, float]:
    """(article number, similarity) of ``unit``'s article most like ``text``; (None, best) below the threshold.
    Ties go to the number nearest ``near``."""
    best, best_n = 0.0, None
    for n in unit.articles:
        s = similarity(text, article_text(unit, n, passages, texts))
        if s > best or (s == best and best_n is not None and near is not None and abs(n - near) < abs(best_n - near)):
            best, best_n = s, n
    return (best_n, best) if best >= MIN_SIMILARITY else (None, best)


def diff_segments(base: str, other: str) -> list[dict[str, str]]:
    """``other`` as runs against ``base``: ``{"kind": "same" | "added" | "removed", "text"}`` in reading order."""
    sm = difflib.SequenceMatcher(None, base, other, autojunk=False)
    out: list[dict[str, str]] = []
    for op, a0, a1, b0, b1 in sm.get_opcodes():
        if op == "equal":
            out.append({"kind": "same", "text": other[b0:b1]})
            continue
        if a1 > a0:
            out.append({"kind": "removed", "text": base[a0:a1]})
        if b1 > b0:
            out.append({"kind": "added", "text": other[b0:b1]})
    return out


def compare_article(catalog: Catalog, passages: Mapping[str, Any], texts: Mapping[str, str], doc_id: str,
                    article: int, versions: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The asked article of ``doc_id`` beside its counterpart in every other indexed version (newest first), each
    with the differences against the asked one; None when the document has no such article."""
    unit = next((u for u in catalog.units if u.doc_id == doc_id and article in u.articles), None)
    if unit is None:
        return None
    base = article_text(unit, article, passages, texts)
    versions = versions or {}
    rows = []
    for other in catalog.family(unit):
        if other is unit:
            n, sim, text = article, 1.0, base
        elif other.doc_id == unit.doc_id:
            continue
        else:
            n, sim = counterpart(base, other, passages, texts, near=article)
            text = article_text(other, n, passages, texts) if n else ""
        pid = other.articles[n][0] if n else None
        p = passages[pid] if pid else None
        info = versions.get(other.doc_id)
        rows.append({"doc_id": other.doc_id, "regulation": other.name, "year": other.year,
                     "version_label": other.label or None,
                     "version_status": getattr(info, "status", None), "asked": other is unit,
                     "article": f"第{int_to_cn(n)}条" if n else None, "pid": pid,
                     "citation": citation(p) if p is not None else None, "similarity": round(sim, 3),
                     "text": text, "segments": diff_segments(base, text) if text and other is not unit else []})
    return {"doc_id": doc_id, "regulation": unit.name, "article": f"第{int_to_cn(article)}条", "versions": rows}


def article_versions(engine: Any, doc_id: str, article: int | str) -> dict[str, Any] | None:
    """:func:`compare_article` on an engine's current generation; ``article`` as 7, "7", "第七条" or "七".
    KeyError for an unknown document; None when it has no such article."""
    from indexer.text.numerals import cn_to_int

    n = article if isinstance(article, int) else cn_to_int(str(article).strip().removeprefix("第").removesuffix("条"))
    from indexer.search.lookup import catalog_of

    gen = engine._state()
    if doc_id not in gen.manifest["documents"]:
        raise KeyError(doc_id)
    if not n:
        return None
    versions = engine._searcher.versions(gen)
    return compare_article(catalog_of(engine._searcher, gen, versions), gen.passages, gen.texts, doc_id, n, versions)
