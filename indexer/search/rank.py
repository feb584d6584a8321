"""Ranking: fuse the two halves' candidates, fold near-duplicates, judge whether there is an answer, build hits.

Pure with respect to storage: it reads passages by pid from a mapping, so every backend gets identical hits.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any, Collection, Mapping, Sequence

from indexer.config import Config
from indexer.search.fuse import Fused, convex, normalise, rrf
from indexer.search.highlight import best_sentence, folded_lower, matched_terms, term_spans
from indexer.search.query import Query
from indexer.text.analyzer import fold
from indexer.text.cite import citation
from indexer.text.noise import noise_share
from indexer.text.versions import VersionInfo
from indexer.types import KeywordHit, Passage

# A passage that is all table rows / form lines keeps this share of its fused score (prose keeps all of it): low
# enough that answering prose passes a form repeating the question's words; a table that alone matches still shows.
NOISE_KEEP = 0.3
# Near-duplicate test: character 4-gram shingles; two passages are one answer when this share of the smaller
# one's shingles occurs in the other (article text repeated across versions, an abstract repeating a paragraph).
SHINGLE = 4
FOLD_CONTAINMENT = 0.6
FOLD_SCAN = 4  # once k groups are formed, later candidates are checked for folding up to position FOLD_SCAN * k
_NOT_TEXT = re.compile(r"[\s\W_]+", re.UNICODE)


class Results(list):
    """The hits of one question, best first (a plain list of hit dicts), plus what is known about the answer."""

    def __init__(self, hits: Sequence[dict[str, Any]] = (), answer_found: bool = True, confidence: float = 0.0,
                 doc_counts: Mapping[str, int] | None = None, signals: "Signals | None" = None):
        super().__init__(hits)
        self.answer_found = answer_found
        self.confidence = confidence
        self.doc_counts = dict(doc_counts or {})  # candidates per document for this question
        self.signals = signals

    def envelope(self) -> dict[str, Any]:
        """The per-question fields the JSON APIs put beside the hit list."""
        return {"answer_found": self.answer_found, "confidence": round(float(self.confidence), 4)}


@dataclass
class Signals:
    """What the two halves say about one question, for the fusion weight and the answer confidence."""

    coverage: float  # share of the question's (length-weighted) terms in the best keyword or semantic passage
    semantic_top: float  # cosine of the best semantic passage (0 when the half did not run)
    agree: bool  # the best passage of each half is among the other half's first five


def question_signals(query: Query, passages: Mapping[str, Passage], kw: Sequence[tuple[str, float]],
                     sem: Sequence[tuple[str, float]]) -> Signals:
    """Signals of one question from its candidate lists (already restricted to known passages)."""
    coverage = 0.0
    weighted = query.signal_terms
    total = sum(w * len(t) for t, w in weighted)
    if total:
        for pid in {lst[0][0] for lst in (kw, sem) if lst}:
            text = folded_lower(passages[pid].text)
            coverage = max(coverage, sum(w * len(t) for t, w in weighted if t in text) / total)
    sem_top = float(sem[0][1]) if sem else 0.0
    agree = bool(kw and sem) and (kw[0][0] in {p for p, _ in sem[:5]} or sem[0][0] in {p for p, _ in kw[:5]})
    return Signals(coverage=coverage, semantic_top=sem_top, agree=agree)


# Logistic models of "a correct passage is in the top 5", one per mode (the signals a mode has differ), as
# (bias, coverage, agree, (semantic top cosine - SEMANTIC_CENTRE) per 0.1). Fitted by `python -m bench.fusion fit`
# on the tuning halves of the quiz, the dev questions and the off-topic questions; see bench/NOTES.md.
SEMANTIC_CENTRE = 0.8
CONFIDENCE_MODELS: dict[str, tuple[float, float, float, float]] = {
    "hybrid": (-6.468, 2.507, 1.528, 4.954),
    "keyword": (-3.472, 6.426, 0.0, 0.0),
    "semantic": (-6.091, 2.09, 0.0, 4.925),
}


def confidence_features(sig: Signals) -> tuple[float, float, float]:
    """The confidence models' inputs: coverage, agreement of the halves, semantic top cosine (centred, per 0.1)."""
    return sig.coverage, float(sig.agree), 10 * (sig.semantic_top - SEMANTIC_CENTRE) if sig.semantic_top else 0.0


def answer_confidence(sig: Signals, mode: str) -> float:
    """A probability-like confidence that the top hit answers the question (logistic in the signals)."""
    bias, *coef = CONFIDENCE_MODELS[mode]
    z = bias + sum(c * x for c, x in zip(coef, confidence_features(sig)))
    return 1.0 / (1.0 + math.exp(-z))


def fuse(kw: Sequence[tuple[str, float]], sem: Sequence[tuple[str, float]], mode: str, config: Config,
         sig: Signals | None = None, pending: Collection[str] = ()) -> Fused:
    """The fused candidate list (pid, score, {half: rank}) best first.

    ``pending``: passages without a vector yet (keyword first, vectors behind). In hybrid mode such a passage's
    keyword evidence stands in for its missing semantic half (see :func:`keyword_only`).
    """
    fused = _fuse(kw, sem, mode, config, sig)
    if mode == "hybrid" and pending and kw:
        fused = keyword_only(fused, kw, set(pending), config)
    return fused


def keyword_only(fused: Fused, kw: Sequence[tuple[str, float]], pending: Collection[str], config: Config) -> Fused:
    """Rescore pending passages as keyword-only: the missing semantic half gets the keyword half's value.

    Scoring the missing half 0 would sink a new document below every embedded passage with a weaker keyword
    match until its vectors land (convex: at most (1 - alpha) = 0.6 of the top); instead convex gives it its
    normalised keyword score (so the keyword half's best passage scores 1.0, like a passage both halves rank
    first), RRF counts its keyword rank for both halves.
    """
    if config.fusion == "rrf":
        ranks = {pid: pos for pos, (pid, _) in enumerate(kw, start=1)}
        both = config.keyword_weight + config.semantic_weight
        stand_in = {pid: both / (config.rrf_k + r) for pid, r in ranks.items() if pid in pending}
    else:
        stand_in = {pid: s for (pid, _), s in zip(kw, normalise([s for _, s in kw])) if pid in pending}
    if not stand_in:
        return fused
    out = [(pid, stand_in.get(pid, score), ranks) for pid, score, ranks in fused]
    out.sort(key=lambda x: (-x[1], min(x[2].values()), x[0]))
    return out


def _fuse(kw: Sequence[tuple[str, float]], sem: Sequence[tuple[str, float]], mode: str, config: Config,
          sig: Signals | None = None) -> Fused:
    if mode == "keyword":
        return convex({"keyword": kw}, {"keyword": 1.0}, {"keyword": 0.0})
    floor = config.semantic_floor if config.semantic_floor > 0 else None
    if mode == "semantic":
        return convex({"semantic": sem}, {"semantic": 1.0}, {"semantic": floor})
    if config.fusion == "rrf":
        return rrf({"keyword": [p for p, _ in kw], "semantic": [p for p, _ in sem]},
                   weights={"keyword": config.keyword_weight, "semantic": config.semantic_weight}, k=config.rrf_k)
    alpha = semantic_share(config, sig)
    return convex({"keyword": kw, "semantic": sem}, {"keyword": 1.0 - alpha, "semantic": alpha},
                  {"keyword": 0.0, "semantic": floor})


def semantic_share(config: Config, sig: Signals | None) -> float:
    """The semantic half's weight for one question: ``config.alpha``, lowered for near-verbatim questions."""
    alpha = config.alpha
    if sig is not None and config.verbatim_shift and sig.coverage >= config.verbatim_coverage:
        alpha = max(0.0, alpha - config.verbatim_shift)
    return alpha


@lru_cache(maxsize=100_000)
def _noise_keep(text: str) -> float:
    # The share of its fused score a passage keeps (by its noise share), computed once per text.
    return 1.0 - (1.0 - NOISE_KEEP) * noise_share(text)


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


def demote_noise(fused: Fused, passages: Mapping[str, Passage]) -> Fused:
    """Scale each candidate's score by how much of it is prose, then reorder (stable for equal scores)."""
    out = [(pid, s * _noise_keep(passages[pid].text), r) for pid, s, r in fused]
    out.sort(key=itemgetter(1), reverse=True)  # reverse keeps equal scores in order, as sorting on -score did
    return out


def fold_duplicates(fused: Fused, passages: Mapping[str, Passage], k: int,
                    versions: Mapping[str, VersionInfo]) -> list[list[tuple[str, float, dict[str, int]]]]:
    """Group near-identical candidates (best first) until ``k`` groups are formed; within a group of versions of
    one regulation the current version leads, else the best-ranked passage."""
    groups: list[list[tuple[str, float, dict[str, int]]]] = []
    # A text met before in this list has the same fate again: the group it joined (no group before that one
    # matched it then, and groups are only ever appended), the group it started (it is its own near duplicate
    # unless it has no letters at all), or none (k groups were full and none matched; no group is added after
    # k). On the 7-replica 100k bench index this leaves 10 of the 83 near_duplicate calls a question.
    fate: dict[str, int] = {}
    for pos, item in enumerate(fused):
        if len(groups) >= k and pos >= FOLD_SCAN * k:
            break  # versions of a kept article rank beside it; scanning all 100 candidates doubled ranking time
        text = passages[item[0]].text
        known = fate.get(text)
        if known is not None:
            if known >= 0:
                groups[known].append(item)
            continue
        for g, group in enumerate(groups):
            if near_duplicate(passages[group[0][0]].text, text):
                group.append(item)
                fate[text] = g
                break
        else:
            if len(groups) >= k:
                fate[text] = -1
                continue  # only candidates that fold into a kept group matter past k
            groups.append([item])
            if shingles(text):
                fate[text] = len(groups) - 1
    for group in groups:
        # the first member from a current version, else the best-ranked (the first)
        lead = next((i for i, (pid, _, _) in enumerate(group) if _is_current(versions, passages[pid].doc_id)), 0)
        if lead:
            best_score = group[0][1]
            group.insert(0, group.pop(lead))
            group[0] = (group[0][0], best_score, {**group[1][2], **group[0][2]})
    return groups


def _is_current(versions: Mapping[str, VersionInfo], doc_id: str) -> bool:
    info = versions.get(doc_id)
    return info is not None and info.status == "current"


def rerank(reranker: Any, passages: Mapping[str, Passage], question: str, fused: Fused, k: int) -> Fused:
    """Reorder the head of the fused list with a cross-encoder (when one is configured)."""
    if reranker is None:
        return fused
    head = fused[: max(k * 4, 20)]
    rr = reranker.rerank(question, [passages[pid].text for pid, _, _ in head])
    order = sorted(range(len(head)), key=lambda i: -rr[i])
    return [(head[i][0], float(rr[i]), head[i][2]) for i in order] + fused[len(head):]


def build_hit(rank: int, p: Passage, question: str, q_terms: Sequence[str], kw_terms: Sequence[str] | None,
              score: float, ranks: Mapping[str, int]) -> dict[str, Any]:
    """One hit record: the passage, where it ranked in each half, matched terms and the best answering sentence."""
    terms = list(kw_terms or matched_terms(p.text, q_terms))
    folded = folded_lower(p.text)
    terms = [t for t in terms if t.lower() in folded] or terms
    b0, b1 = best_sentence(p.text, question, terms)
    return {
        "rank": rank, "pid": p.pid, "doc_id": p.doc_id, "title": p.title, "section": p.section,
        "citation": _citation(p.title, p.section),
        "text": p.text, "score": round(float(score), 6),
        "keyword_rank": ranks.get("keyword"), "semantic_rank": ranks.get("semantic"),
        "terms": terms, "best_sentence": p.text[b0:b1], "best_span": [b0, b1],
        "highlights": term_spans(p.text, terms), "start": p.start, "end": p.end, "ordinal": p.ordinal,
    }


@lru_cache(maxsize=4096)
def _citation(title: str, section: str) -> str:
    # A passage's citation depends on its title and section only; its regex tests were ~3% of rank().
    return citation({"title": title, "section": section})


def _also_in(pid: str, p: Passage, versions: Mapping[str, VersionInfo]) -> dict[str, Any]:
    # One entry of a hit's also_in: a replicated corpus folds ~6 copies into each hit.
    return {"pid": pid, "doc_id": p.doc_id, "title": p.title, "section": p.section,
            **_version_fields(versions, p.doc_id)}


def _version_fields(versions: Mapping[str, VersionInfo], doc_id: str) -> dict[str, Any]:
    info = versions.get(doc_id)
    return {"version_status": info.status if info else None, "version_label": info.label if info else None}


def rank(passages: Mapping[str, Passage], query: Query, kw_hits: Sequence[KeywordHit],
         sem_hits: Sequence[tuple[str, float]], k: int, mode: str, config: Config, reranker: Any = None,
         versions: Mapping[str, VersionInfo] | None = None, pending: Collection[str] = ()) -> Results:
    """The top-k hits of one question from both halves' candidates (a document filter is applied by the backends).

    Candidates the committed passage store does not list (a backend row of an uncommitted write) are dropped.
    ``pending``: passages still waiting for their vectors, ranked keyword-only in hybrid mode. ``query`` is the
    question as :func:`indexer.search.query.analyse` analysed it, once for both halves and this ranking.
    """
    versions = versions or {}
    # The candidates' passages, each looked up once in the store: below, fusion, noise, folding, hits and counts
    # read them from this dict of ~100 instead of looking each up 4-5 times in the 100k-passage store.
    known: dict[str, Passage] = {}
    kw: list[tuple[str, float]] = []
    sem: list[tuple[str, float]] = []
    if mode != "semantic":
        for h in kw_hits:
            p = passages.get(h.pid)
            if p is not None:
                known[h.pid] = p
                kw.append((h.pid, h.score))
    if mode != "keyword":
        for pid, s in sem_hits:
            p = passages.get(pid)
            if p is not None:
                known[pid] = p
                sem.append((pid, s))
    passages = known
    question = query.text
    sig = question_signals(query, passages, kw, sem)
    fused = demote_noise(fuse(kw, sem, mode, config, sig, pending), passages)
    fused = rerank(reranker, passages, question, fused, k)
    groups = fold_duplicates(fused, passages, k, versions)
    q_terms = query.hit_terms
    kw_terms = {h.pid: h.terms for h in kw_hits}
    hits = []
    for i, group in enumerate(groups, start=1):
        pid, score, ranks = group[0]
        hit = build_hit(i, passages[pid], question, q_terms, kw_terms.get(pid), score, ranks)
        hit.update(_version_fields(versions, hit["doc_id"]))
        hit["also_in"] = [_also_in(other, passages[other], versions) for other, _, _ in group[1:]]
        hits.append(hit)
    confidence = answer_confidence(sig, mode) if hits else 0.0
    counts = Counter([passages[pid].doc_id for pid, _, _ in fused])  # first-seen order, like the loop it replaced
    return Results(hits, answer_found=bool(hits) and confidence >= config.min_confidence, confidence=confidence,
                   doc_counts=counts, signals=sig)
