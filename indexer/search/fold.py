"""Folding: which candidates are one answer shown once (the same article in another version of one regulation, or a
repeat of the same text), and which passage of such a group leads it.

A passage belongs to a *source*: the regulation (or other document) its citation names, with years and edition
markers removed (``versions.family_key``), so that 《纪律处分条例》2018 and 2023 are one source while the 支部工作条例
and the 党员教育管理工作条例 inside one compiled handbook are two. Rules:

* same source (one document, or versions of one regulation): fold when most of the shorter text stands in the
  other (character 4-gram containment >= 0.6) -- an article repeated across versions, an abstract repeating a line;
* two different regulations: never (党章第七条 and 发展党员工作细则第三十二条 share a sentence, but a reader asking
  about the 预备期 must see both);
* otherwise (an essay or notice repeating a passage of another file): fold only a true repeat, when the shared
  shingles are >= 0.6 of the *longer* text too (a passage quoting one sentence of an article is not its copy).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Mapping, Sequence

from indexer.text.analyzer import fold
from indexer.text.cite import cited_document, is_document_name
from indexer.text.versions import VersionInfo, family_key
from indexer.types import Passage

SHINGLE = 4
FOLD_CONTAINMENT = 0.6
FOLD_SCAN = 4  # once k groups are formed, later candidates are checked for folding up to position FOLD_SCAN * k
# Groups formed beyond k before the cut: a group whose current version leads ranks by that version's own score and
# may fall below a later group.
FOLD_SPARE = 2
_NOT_TEXT = re.compile(r"[\s\W_]+", re.UNICODE)
_ARTICLE_IN_PATH = re.compile(r"第[零〇一二三四五六七八九十百千两0-9０-９]+条")
_REGULATION_NAME = re.compile(r"(条例|规定|准则|细则|办法|章程|规则|规程|决定|意见|通知|制度|纲要|规划|法)$")

Group = list[tuple[str, float, dict[str, int]]]
# A question naming a version ("2018年版处分条例…什么时候施行"): the other versions' passages of that regulation keep
# this share of their score, so the named version's own article (2018: "自2018年10月1日起施行") comes before the
# current version's differently worded one. Only families that hold a document of the named year are touched.
OTHER_VERSION_KEEP = 0.5
# A question naming no version: a historical version's passages keep this share of their score, so the article in
# force comes before its outdated wording when the two are not folded as one (1997 第十六条 vs 2023 第十三条 on
# 开除党籍后几年能重新入党 share too little text to fold).
# Measured on the whole party-docs corpus (four 纪律处分条例 versions and others; bench/NOTES.md "Current versions
# first"): 0.98, 0.95 and 0.9 each put the article in force first on 1 more question of quiz, dev, secretary and
# held-out and lost none; 0.95 also lifted dev R@5. No effect on the tuning corpus (one version of each).
HISTORICAL_KEEP = 0.95
HISTORICAL_NOTE = "历史版本，排在现行版本之后"


@lru_cache(maxsize=100_000)
def shingles(text: str) -> frozenset[str]:
    """Character 4-grams of a passage's letters and digits (punctuation and spacing ignored)."""
    s = _NOT_TEXT.sub("", fold(text).lower())
    if len(s) <= SHINGLE:
        return frozenset([s]) if s else frozenset()
    return frozenset(s[i:i + SHINGLE] for i in range(len(s) - SHINGLE + 1))


def near_duplicate(a: str, b: str) -> bool:
    """True when most of the shorter passage's text also stands in the other."""
    if a == b:  # the common case on replicated corpora; equal to the set test below (a set contains itself)
        return bool(shingles(a))
    sa, sb = shingles(a), shingles(b)
    small = min(len(sa), len(sb))
    return small > 0 and len(sa & sb) >= FOLD_CONTAINMENT * small


def repeat(a: str, b: str) -> bool:
    """True when the two texts are one text repeated: the shared shingles cover most of *each* of them."""
    if a == b:
        return bool(shingles(a))
    sa, sb = shingles(a), shingles(b)
    large = max(len(sa), len(sb))
    return large > 0 and min(len(sa), len(sb)) > 0 and len(sa & sb) >= FOLD_CONTAINMENT * large


@lru_cache(maxsize=8192)
def source_of(title: str, section: str) -> tuple[str, bool]:
    """(source key, is a regulation) of a passage: the family key of the document its citation names."""
    name, parts = cited_document({"title": title, "section": section})
    key = family_key(name) or name
    regulation = (is_document_name(name) or bool(_REGULATION_NAME.search(key))
                  or any(_ARTICLE_IN_PATH.match(p) for p in parts))
    return key, regulation


def fold_reason(a: Passage, b: Passage, versions: Mapping[str, VersionInfo] | None = None) -> str | None:
    """Why ``b`` folds under ``a`` -- "version" (same article, another version of one regulation), "repeat" (the same
    text again) -- or None when they are two answers."""
    sa, ra = source_of(a.title, a.section)
    sb, rb = source_of(b.title, b.section)
    if sa == sb:
        if not near_duplicate(a.text, b.text):
            return None
        return "version" if _versions_of_one(versions or {}, a.doc_id, b.doc_id) else "repeat"
    if ra and rb:
        return None
    return "repeat" if repeat(a.text, b.text) else None


def prefer_named_version(fused: Sequence[tuple[str, float, dict[str, int]]], passages: Mapping[str, Passage],
                         versions: Mapping[str, VersionInfo], year: int | None,
                         notes: dict[str, list[str]] | None = None) -> list[tuple[str, float, dict[str, int]]]:
    """Lower the passages of other versions of a regulation the question names a version of (``year``); reorder."""
    if not year or not versions:
        return list(fused)
    named = {info.family for info in versions.values() if info.year == year}
    if not named:
        return list(fused)
    out = []
    for pid, score, ranks in fused:
        info = versions.get(passages[pid].doc_id)
        if info is not None and info.family in named:
            if info.year != year:
                score *= OTHER_VERSION_KEEP
            elif notes is not None:
                notes.setdefault(pid, []).append(f"问题指明{year}年版")
        out.append((pid, score, ranks))
    out.sort(key=lambda c: -c[1])  # stable: equal scores keep their order
    return out


def prefer_current(fused: Sequence[tuple[str, float, dict[str, int]]], passages: Mapping[str, Passage],
                   versions: Mapping[str, VersionInfo],
                   notes: dict[str, list[str]] | None = None) -> list[tuple[str, float, dict[str, int]]]:
    """Lower the passages of historical versions (a newer version of the regulation is in the library); reorder."""
    if HISTORICAL_KEEP >= 1.0 or not versions:
        return list(fused)
    out, lowered = [], set()
    for pid, score, ranks in fused:
        info = versions.get(passages[pid].doc_id)
        if info is not None and info.status != "current":
            score *= HISTORICAL_KEEP
            lowered.add(pid)
        out.append((pid, score, ranks))
    before = {pid: i for i, (pid, _, _) in enumerate(fused)}
    out.sort(key=lambda c: -c[1])  # stable: equal scores keep their order
    if notes is not None:
        for i, (pid, _, _) in enumerate(out):
            if pid in lowered and i > before[pid]:  # the rank line says why it fell behind
                notes.setdefault(pid, []).append(HISTORICAL_NOTE)
    return out


def fold_duplicates(fused: Sequence[tuple[str, float, dict[str, int]]], passages: Mapping[str, Passage], k: int,
                    versions: Mapping[str, VersionInfo], year: int | None = None) -> list[Group]:
    """Group candidates (best first) that are one answer; at most ``k`` groups, each led by the version the question
    names (``year``, e.g. 2018 for "2018年版处分条例…"), else its current version (a group of versions of one
    regulation), else by a regulation a copy repeats, else its best-ranked member; groups rank by the lead's own
    score and ranks."""
    groups: list[Group] = []
    limit = k + FOLD_SPARE
    # A (text, source) met before in this list has the same fate again: the group it joined (no group before that
    # one took it then, and groups are only appended), the group it started, or none (no group took it when the
    # groups were full). On the 7-replica 100k bench index most candidates are such repeats.
    fate: dict[tuple[str, str, str], int] = {}
    for pos, item in enumerate(fused):
        if len(groups) >= limit and pos >= FOLD_SCAN * k:
            break  # versions of a kept article rank beside it; scanning all 100 candidates doubled ranking time
        p = passages[item[0]]
        key = (p.text, p.title, p.section)
        known = fate.get(key)
        if known is not None:
            if known >= 0:
                groups[known].append(item)
            continue
        for g, group in enumerate(groups):
            if fold_reason(passages[group[0][0]], p, versions) is not None:
                group.append(item)
                fate[key] = g
                break
        else:
            if len(groups) >= limit:
                fate[key] = -1
                continue  # only candidates that fold into a kept group matter past the limit
            groups.append([item])
            if shingles(p.text):
                fate[key] = len(groups) - 1
    for group in groups:
        lead = next((i for i, (pid, _, _) in enumerate(group) if year and _is_year(versions, passages[pid].doc_id, year)),
                    None)
        if lead is None:
            lead = next((i for i, (pid, _, _) in enumerate(group) if _is_current(versions, passages[pid].doc_id)), 0)
        if not lead and not _is_regulation(passages[group[0][0]]):
            # a list or article repeating a regulation's text: the regulation leads, the copy is listed under it
            lead = next((i for i, (pid, _, _) in enumerate(group) if _is_regulation(passages[pid])), 0)
        if lead:
            group.insert(0, group.pop(lead))  # it keeps its own score and ranks: the group ranks by them
    groups.sort(key=lambda g: -g[0][1])  # stable: equal scores keep their order
    return groups[:k]


def _is_regulation(p: Passage) -> bool:
    return source_of(p.title, p.section)[1]


def _is_current(versions: Mapping[str, VersionInfo], doc_id: str) -> bool:
    info = versions.get(doc_id)
    return info is not None and info.status == "current"


def _is_year(versions: Mapping[str, VersionInfo], doc_id: str, year: int) -> bool:
    info = versions.get(doc_id)
    return info is not None and info.year == year


def _versions_of_one(versions: Mapping[str, VersionInfo], a: str, b: str) -> bool:
    va, vb = versions.get(a), versions.get(b)
    return a != b and va is not None and vb is not None and va.family == vb.family
