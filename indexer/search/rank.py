"""Ranking: fuse the two halves' candidates, fold near-duplicates, judge whether there is an answer, build hits.

Pure with respect to storage: it reads passages by pid from a mapping, so every backend gets identical hits.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any, Collection, Mapping, Sequence

from indexer.config import Config
from indexer.search.fold import (FOLD_SCAN, fold_duplicates, fold_reason, near_duplicate,  # noqa: F401
                                 prefer_current, prefer_named_version, shingles)
from indexer.search.explain import half_scores
from indexer.search.fuse import Fused, convex, normalise, rrf
from indexer.search.highlight import best_sentence, folded_lower, matched_terms, term_spans
from indexer.search import learned
from indexer.search.query import Query
from indexer.text.analyzer import synonyms
from indexer.text.answers import authority, focus_terms, holds, question_kind, subject_of
from indexer.text.cite import citation
from indexer.text.noise import noise_share
from indexer.text.tails import is_tail_section
from indexer.text.versions import VersionInfo
from indexer.text.windows import windows
from indexer.types import KeywordHit, Passage

# A passage that is all table rows / form lines keeps this share of its fused score (prose keeps all of it): low
# enough that answering prose passes a form repeating the question's words; a table that alone matches still shows.
NOISE_KEEP = 0.3
# Sentence-level meaning (indexer.text.windows, indexer.search.sentences): the semantic score of a candidate with sentence vectors mixes its passage
# cosine (this share) with its best window's cosine, and the fusion gives the semantic half SENTENCE_ALPHA instead of
# config.alpha (SENTENCE_VERBATIM_ALPHA for near-verbatim questions, before config.verbatim_shift). Chosen on the quiz
# and the dev questions over the tuning corpus (the dev, quiz and held-out gold documents, distractor regulations
# and case articles, the seed essay: 2,400 passages; bench/sentences.py, bench/NOTES.md): hybrid R@1 / R@5
# dev 0.50 / 0.71 -> 0.55 / 0.80, quiz 0.80 / 0.96 -> 0.84 / 0.97 against the passage vectors alone (alpha 0.6 and
# 0.7, passage shares 0.15-0.3, verbatim alphas 0.3, 0.4 and 0.7 were each lower on one of them).
SENTENCE_PASSAGE_SHARE = 0.0
SENTENCE_ALPHA = 0.8
SENTENCE_VERBATIM_ALPHA = 0.5  # near-verbatim questions (coverage >= config.verbatim_coverage), before the shift
VERBATIM_MIN_CHARS = 20  # ... that long at least: a short question (入党誓词是什么) is covered by any passage naming it
# Answer kinds and subjects (indexer.text.answers): a candidate among the first ANSWER_SCAN whose best sentence holds
# the kind of answer asked for gains KIND_BONUS of its score; one whose subject is the focus term SUBJECT_BONUS.
# Kind 0.1: dev R@1 / R@5 +1 question each, quiz R@5 +1 (0.2 no better); on the held-out sets it cost 1-2 questions
# of R@1 (within noise, reported). The subject bonus lowered every set it was tried on (0.05-0.5): off.
KIND_BONUS = 0.1
SUBJECT_BONUS = 0.0
ANSWER_SCAN = 30
DEFAULT_ALPHA = Config.__dataclass_fields__["alpha"].default  # the shipped weight SENTENCE_ALPHA stands in for
KIND_LABEL = {"period": "时间或频次", "number": "数字或比例", "definition": "定义或列举", "permission": "可否的规定",
              "verbatim": "原文"}
# Authority (prefer_authority): a candidate within the first AUTHORITY_SCAN whose best sentence shares
# AUTHORITY_OVERLAP of its 4-grams with a better-placed one's, and scores AUTHORITY_MARGIN of it, moves above it when
# its regulation ranks higher.
AUTHORITY_SCAN = 10
AUTHORITY_OVERLAP = 0.8
AUTHORITY_MARGIN = 0.8
# The learned re-ranker of the head (indexer.search.learned, issue 22 round 4): weights over learned.FEATURES (None:
# off), applied with sentence scores and the shipped fusion weight only. A listwise logistic fit (L2 0.001 towards
# the fused order, chosen by 5-fold cross-validation among 0.001 / 0.003 / 0.01) on the dev and branch-secretary
# questions' heads over two corpora at once: the gold-document tuning corpus (1,893 passages, no distractors) and the
# whole party-docs corpus (13,308 passages: 855 case articles and many regulations beside the gold ones); `python -m
# bench.learn fit --index <gold> --joint <whole>:<store> --sets dev,secretary --l2 0.001`, bench/NOTES.md "Ranking
# round 6". The round-4 weights (fitted on the gold-document corpus alone) gave authority no weight (0.06); here it
# is -1.38 (a regulation above an article saying the same). Hybrid R@1 on the whole corpus, round 4 -> these: dev
# 0.515 -> 0.553, secretary 0.539 -> 0.596, report sets heldout 0.537 -> 0.588, heldout2 0.387 -> 0.435, heldout3
# 0.338 -> 0.338, quiz 0.852 -> 0.848; on the gold-document corpus: dev 0.592 -> 0.602, secretary 0.730 -> 0.719,
# heldout 0.775 -> 0.750, heldout2 0.500 -> 0.452, heldout3 0.419 -> 0.405, quiz 0.910 -> 0.910.
LEARNED_NOTE = "综合各项信号排序上调"  # in a hit's why when the re-ranker moved it above candidates fused before it
LEARNED_WEIGHTS: tuple[float, ...] | None = (6.171, -0.129, 0.351, 1.899, 3.849, 0.471, -1.381, -0.335, 2.571, 0.026,
                                             -0.011, 0.037, 0.787, 0.685, -0.199, -0.068)


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


# A question of at most this many words (党员有哪些权利: 党员, 权利) is answered only by a passage that holds all of
# them: one holding half (干部职工的…权利) answers another question, so its coverage counts as 0 (issue 24 item 4:
# over the seed essay alone this question scored 0.33 and said it found an answer; the seed and library example
# questions keep theirs).
SHORT_QUESTION_WORDS = 2


def question_signals(query: Query, passages: Mapping[str, Passage], kw: Sequence[tuple[str, float]],
                     sem: Sequence[tuple[str, float]]) -> Signals:
    """Signals of one question from its candidate lists (already restricted to known passages)."""
    coverage = _coverage(query, [passages[pid].text for pid in {lst[0][0] for lst in (kw, sem) if lst}])
    sem_top = float(sem[0][1]) if sem else 0.0
    agree = bool(kw and sem) and (kw[0][0] in {p for p, _ in sem[:5]} or sem[0][0] in {p for p, _ in kw[:5]})
    return Signals(coverage=coverage, semantic_top=sem_top, agree=agree)


def _coverage(query: Query, texts: Sequence[str]) -> float:
    """The best share of the question's (length-weighted) terms one of ``texts`` holds (0 for a short question's
    passage that lacks any of its words)."""
    coverage = 0.0
    weighted = query.signal_terms
    total = sum(w * len(t) for t, w in weighted)
    if total:
        for text in texts:
            folded = folded_lower(text)
            coverage = max(coverage, sum(w * len(t) for t, w in weighted if t in folded) / total)
    if coverage < 1.0 and sum(1 for _, w in weighted if w >= 1.0) <= SHORT_QUESTION_WORDS:
        coverage = 0.0  # a short question is answered only by a passage holding all its words
    return coverage


def hit_signals(query: Query, pid: str, text: str, kw: Sequence[tuple[str, float]],
                sem: Sequence[tuple[str, float]]) -> Signals:
    """The question's :class:`Signals` as one hit alone gives them (the plain halves, as for the question): the
    share of the question's terms in this passage, this passage's own cosine (a candidate the semantic half did not
    return gets the lowest one it did: its own is no higher), and whether both halves put it in their first five."""
    cosine = dict(sem).get(pid, float(sem[-1][1])) if sem else 0.0
    agree = bool(kw and sem) and pid in {p for p, _ in kw[:5]} and pid in {p for p, _ in sem[:5]}
    return Signals(coverage=_coverage(query, [text]), semantic_top=float(cosine), agree=agree)


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
         sig: Signals | None = None, pending: Collection[str] = (), alpha: float | None = None) -> Fused:
    """The fused candidate list (pid, score, {half: rank}) best first; ``alpha`` replaces ``config.alpha``.

    ``pending``: passages without a vector yet (keyword first, vectors behind). In hybrid mode such a passage's
    keyword evidence stands in for its missing semantic half (see :func:`keyword_only`).
    """
    fused = _fuse(kw, sem, mode, config, sig, alpha)
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
          sig: Signals | None = None, alpha: float | None = None) -> Fused:
    if mode == "keyword":
        return convex({"keyword": kw}, {"keyword": 1.0}, {"keyword": 0.0})
    floor = config.semantic_floor if config.semantic_floor > 0 else None
    if mode == "semantic":
        return convex({"semantic": sem}, {"semantic": 1.0}, {"semantic": floor})
    if config.fusion == "rrf":
        return rrf({"keyword": [p for p, _ in kw], "semantic": [p for p, _ in sem]},
                   weights={"keyword": config.keyword_weight, "semantic": config.semantic_weight}, k=config.rrf_k)
    alpha = semantic_share(config, sig, alpha)
    return convex({"keyword": kw, "semantic": sem}, {"keyword": 1.0 - alpha, "semantic": alpha},
                  {"keyword": 0.0, "semantic": floor})


def semantic_share(config: Config, sig: Signals | None, alpha: float | None = None) -> float:
    """The semantic half's weight for one question: ``config.search_alpha`` when set (used as given), else ``alpha``
    (default ``config.alpha``) lowered for near-verbatim questions."""
    if config.search_alpha >= 0:
        return config.search_alpha
    alpha = config.alpha if alpha is None else alpha
    if sig is not None and config.verbatim_shift and sig.coverage >= config.verbatim_coverage:
        alpha = max(0.0, alpha - config.verbatim_shift)
    return alpha


@lru_cache(maxsize=100_000)
def _noise_keep(text: str, section: str = "") -> float:
    # The share of its fused score a passage keeps (by its noise share), computed once per text. A handbook tail
    # (an attachment, form or converted table after a regulation's last article, indexer.text.tails) is noise whole.
    if is_tail_section(section):
        return NOISE_KEEP
    return 1.0 - (1.0 - NOISE_KEEP) * noise_share(text)


def sentence_semantic(sem: Sequence[tuple[str, float]],
                      sentences: Mapping[str, tuple[float, float, int]]) -> list[tuple[str, float]]:
    """The semantic half re-scored with sentence windows: every candidate of either half that has sentence vectors
    scores ``SENTENCE_PASSAGE_SHARE * passage cosine + (1 - SENTENCE_PASSAGE_SHARE) * best window cosine`` (keyword
    candidates the vector search did not return join the list); the others keep their passage cosine."""
    share = SENTENCE_PASSAGE_SHARE
    scored = {pid: share * cp + (1.0 - share) * cw for pid, (cp, cw, _) in sentences.items()}
    out = [(pid, scored.pop(pid, s)) for pid, s in sem]
    out.extend(scored.items())
    out.sort(key=lambda x: -x[1])
    return out


def answer_bonus(fused: Fused, passages: Mapping[str, Passage], query: Query,
                 sentences: Mapping[str, tuple[float, float, int]], notes: dict[str, list[str]] | None = None) -> Fused:
    """Raise candidates whose best sentence holds the kind of answer the question asks for (a period for 多久, a
    quotation for 誓词 …) and those whose subject is the question's focus term (indexer.text.answers)."""
    if not (KIND_BONUS or SUBJECT_BONUS) or not fused:
        return fused
    kind = question_kind(query.text)
    focus = focus_terms(query.text) if SUBJECT_BONUS else ()
    if kind is None and not focus:
        return fused
    table = synonyms()
    out = list(fused)
    for i, (pid, score, ranks) in enumerate(out[:ANSWER_SCAN]):
        p = passages[pid]
        factor = 1.0
        if kind is not None and KIND_BONUS and holds(_best_text(p, query, sentences.get(pid)), kind):
            factor += KIND_BONUS
            if notes is not None:
                notes.setdefault(pid, []).append(f"含所问的{KIND_LABEL[kind]}")
        if focus:
            subject = subject_of(p.text, p.section)
            if any(t in subject or any(x in subject for x in table.get(t, ())) for t in focus):
                factor += SUBJECT_BONUS
        out[i] = (pid, score * factor, ranks)
    out.sort(key=itemgetter(1), reverse=True)
    return out


def prefer_authority(fused: Fused, passages: Mapping[str, Passage], query: Query,
                     sentences: Mapping[str, tuple[float, float, int]],
                     notes: dict[str, list[str]] | None = None) -> Fused:
    """Among the first AUTHORITY_SCAN candidates, one whose best sentence repeats a better-placed candidate's (most
    of its 4-grams) and that scores at least AUTHORITY_MARGIN of it moves above it when its regulation ranks higher
    (党章 before 条例 before 细则 before 办法, indexer.text.answers.authority): the same answer is cited from its
    highest source."""
    head = list(fused[:int(AUTHORITY_SCAN)])
    if len(head) < 2:
        return fused
    best = [_best_text(passages[pid], query, sentences.get(pid)) for pid, _, _ in head]
    level = [authority(passages[pid].title, passages[pid].section) for pid, _, _ in head]
    for j in range(1, len(head)):
        for i in range(j):
            if level[j] < level[i] and head[j][1] >= AUTHORITY_MARGIN * head[i][1] \
                    and _same_sentence(best[i], best[j]):
                if notes is not None:
                    notes.setdefault(head[j][0], []).append("与其他法规答案相同，上位法规优先")
                for seq in (head, best, level):
                    seq.insert(i, seq.pop(j))
                head[i] = (head[i][0], head[i + 1][1], head[i][2])  # it takes the place, and the score, it moved to
                break
    return head + list(fused[int(AUTHORITY_SCAN):])


def _same_sentence(a: str, b: str) -> bool:
    sa, sb = shingles(a), shingles(b)
    small = min(len(sa), len(sb))
    return small >= 4 and len(sa & sb) >= AUTHORITY_OVERLAP * small


def _best_text(p: Passage, query: Query, sentence: tuple[float, float, int] | None) -> str:
    # the passage's best sentence: its best-matching window when it has sentence vectors, else the lexical choice
    if sentence is not None and sentence[2] >= 0:
        spans = windows(p.text)
        if sentence[2] < len(spans):
            return p.text[spans[sentence[2]][0]:spans[sentence[2]][1]]
    b0, b1 = best_sentence(p.text, query.text, query.hit_terms)
    return p.text[b0:b1]


def demote_noise(fused: Fused, passages: Mapping[str, Passage]) -> Fused:
    """Scale each candidate's score by how much of it is prose, then reorder (stable for equal scores)."""
    out = [(pid, s * _noise_keep(passages[pid].text, passages[pid].section), r) for pid, s, r in fused]
    out.sort(key=itemgetter(1), reverse=True)  # reverse keeps equal scores in order, as sorting on -score did
    return out


def rerank(reranker: Any, passages: Mapping[str, Passage], question: str, fused: Fused, k: int) -> Fused:
    """Reorder the head of the fused list with a cross-encoder (when one is configured)."""
    if reranker is None:
        return fused
    head = fused[: max(k * 4, 20)]
    rr = reranker.rerank(question, [passages[pid].text for pid, _, _ in head])
    order = sorted(range(len(head)), key=lambda i: -rr[i])
    return [(head[i][0], float(rr[i]), head[i][2]) for i in order] + fused[len(head):]


def build_hit(rank: int, p: Passage, question: str, q_terms: Sequence[str], kw_terms: Sequence[str] | None,
              score: float, ranks: Mapping[str, int], sentence: tuple[float, float, int] | None = None) -> dict[str, Any]:
    """One hit record: the passage, where it ranked in each half, matched terms and the best answering sentence
    (its best-matching sentence window when it has sentence vectors: the window held the dev and held-out gold span
    for 154 of 183 questions, the lexical choice for 144)."""
    terms = list(kw_terms or matched_terms(p.text, q_terms))
    folded = folded_lower(p.text)
    terms = [t for t in terms if t.lower() in folded] or terms
    spans = windows(p.text) if sentence is not None and sentence[2] >= 0 else ()
    if is_tail_section(p.section):  # a form or attachment never gives the answer sentence
        b0, b1 = 0, 0
    elif sentence is not None and 0 <= sentence[2] < len(spans):
        b0, b1 = spans[sentence[2]]
    else:
        b0, b1 = best_sentence(p.text, question, terms)
    return {
        "rank": rank, "pid": p.pid, "doc_id": p.doc_id, "title": p.title, "section": p.section,
        "citation": _citation(p.title, p.section),
        "text": p.text, "score": round(float(score), 6),
        "keyword_rank": ranks.get("keyword"), "semantic_rank": ranks.get("semantic"),
        "terms": terms, "best_sentence": p.text[b0:b1], "best_span": [b0, b1] if b1 > b0 else None,
        "highlights": term_spans(p.text, terms), "start": p.start, "end": p.end, "ordinal": p.ordinal,
    }


def _why(hit: dict[str, Any], p: Passage, group: Sequence[tuple[str, float, dict[str, int]]],
         versions: Mapping[str, VersionInfo], notes: Sequence[str], year: int | None = None) -> list[str]:
    # What the rank line adds to the halves' ranks: the reasons this card stands where it does (shown in Chinese).
    out = list(notes)
    if len(group) > 1 and any(a.get("fold") == "version" for a in hit["also_in"]):
        if _version_fields(versions, p.doc_id)["version_status"] == "current":
            out.append("现行版本，历史版本已合并")
        elif year and hit["version_label"] == f"{year}年版":
            out = [n for n in out if n != f"问题指明{year}年版"] + [f"问题指明{year}年版，其他版本已合并"]
    if is_tail_section(p.section):
        out.append("附件或表格，排序降低")
    elif _noise_keep(p.text, p.section) < 0.999:
        out.append("表格或表单内容，排序降低")
    return out


@lru_cache(maxsize=4096)
def _citation(title: str, section: str) -> str:
    # A passage's citation depends on its title and section only; its regex tests were ~3% of rank().
    return citation({"title": title, "section": section})


def _also_in(pid: str, p: Passage, lead: Passage, versions: Mapping[str, VersionInfo]) -> dict[str, Any]:
    # One entry of a hit's also_in: a replicated corpus folds ~6 copies into each hit. "fold" says why it is there
    # ("version": the same article in another version; "repeat": the same text again).
    return {"pid": pid, "doc_id": p.doc_id, "title": p.title, "section": p.section,
            "fold": fold_reason(lead, p, versions) or "repeat", **_version_fields(versions, p.doc_id)}


def _version_fields(versions: Mapping[str, VersionInfo], doc_id: str) -> dict[str, Any]:
    info = versions.get(doc_id)
    return {"version_status": info.status if info else None, "version_label": info.label if info else None}


def rank(passages: Mapping[str, Passage], query: Query, kw_hits: Sequence[KeywordHit],
         sem_hits: Sequence[tuple[str, float]], k: int, mode: str, config: Config, reranker: Any = None,
         versions: Mapping[str, VersionInfo] | None = None, pending: Collection[str] = (),
         sentences: Mapping[str, tuple[float, float, int]] | None = None) -> Results:
    """The top-k hits of one question from both halves' candidates (a document filter is applied by the backends).

    Candidates the committed passage store does not list (a backend row of an uncommitted write) are dropped.
    ``pending``: passages still waiting for their vectors, ranked keyword-only in hybrid mode. ``query`` is the
    question as :func:`indexer.search.query.analyse` analysed it, once for both halves and this ranking.
    ``sentences``: for candidates of both halves with sentence vectors, (passage cosine, best window cosine, best
    window's index), from :func:`indexer.search.sentences.sentence_scores`; they re-score the semantic half (see
    :func:`sentence_semantic`).
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
    sig = question_signals(query, passages, kw, sem)  # on the plain halves: the confidence model's inputs
    plain_sem = sem  # each hit's own confidence reads the plain halves too
    if sentences and mode != "keyword":
        sem = sentence_semantic(sem, {pid: v for pid, v in sentences.items() if pid in passages})
    alpha = None
    if sentences and mode == "hybrid" and config.alpha == DEFAULT_ALPHA:  # a configured weight is used as given
        verbatim = sig.coverage >= config.verbatim_coverage and len(question) >= VERBATIM_MIN_CHARS
        alpha = SENTENCE_VERBATIM_ALPHA if verbatim else SENTENCE_ALPHA
    fused = demote_noise(fuse(kw, sem, mode, config, sig, pending, alpha), passages)
    notes: dict[str, list[str]] = {}  # why a candidate stands where it does, beyond its halves' ranks
    if mode == "hybrid" and config.fusion != "rrf" and 0.0 < (config.search_alpha if config.search_alpha >= 0
                                                               else config.alpha) < 1.0:
        # (a single half, RRF, or a weight that leaves one half ranks by its own rule alone)
        fused = answer_bonus(fused, passages, query, sentences or {}, notes)
        if LEARNED_WEIGHTS is not None and alpha is not None and config.search_alpha < 0:
            best = {pid: _best_text(passages[pid], query, (sentences or {}).get(pid)) for pid, _, _ in
                    fused[:learned.HEAD]}
            rows = learned.head_features(fused, passages, query, kw, sem, sentences or {}, best,
                                         pending=pending)
            before = {pid: i for i, (pid, _, _) in enumerate(fused[:learned.HEAD])}
            fused = learned.learned_order(fused, rows, LEARNED_WEIGHTS)
            for i, (pid, _, _) in enumerate(fused[:learned.HEAD]):
                if i < before.get(pid, i):  # the rank line says why it passed candidates the fusion put first
                    notes.setdefault(pid, []).append(LEARNED_NOTE)
        fused = prefer_authority(fused, passages, query, sentences or {}, notes)
        if not query.year:  # no version named: the one in force before an outdated one scored a little higher
            fused = prefer_current(fused, passages, versions, notes)
    fused = rerank(reranker, passages, question, fused, k)
    year = query.year if versions else None  # "2018年版…": that version first, and its group's lead
    fused = prefer_named_version(fused, passages, versions, year, notes)
    groups = fold_duplicates(fused, passages, k, versions, year)
    q_terms = query.hit_terms
    halves = half_scores(kw if mode != "semantic" else None, sem if mode != "keyword" else None, config)
    kw_terms = {h.pid: h.terms for h in kw_hits}
    hits = []
    for i, group in enumerate(groups, start=1):
        pid, score, ranks = group[0]
        hit = build_hit(i, passages[pid], question, q_terms, kw_terms.get(pid), score, ranks,
                        (sentences or {}).get(pid))
        hit.update(_version_fields(versions, hit["doc_id"]))
        hit["also_in"] = [_also_in(other, passages[other], passages[pid], versions) for other, _, _ in group[1:]]
        hit["why"] = _why(hit, passages[pid], group, versions, notes.get(pid, ()), year)
        hit.update(halves.get(pid, {}))
        # this hit's own confidence: the answer-confidence model on the signals it alone gives (issue 25: the
        # results page grades the cards' answer marks by it)
        own = hit_signals(query, pid, passages[pid].text, kw, plain_sem)
        hit["confidence"] = round(answer_confidence(own, mode), 4)
        hits.append(hit)
    confidence = answer_confidence(sig, mode) if hits else 0.0
    counts = Counter([passages[pid].doc_id for pid, _, _ in fused])  # first-seen order, like the loop it replaced
    # a form on top is not an answer (it is there because nothing answering matched better)
    found = bool(hits) and confidence >= config.min_confidence and not is_tail_section(hits[0]["section"])
    out = Results(hits, answer_found=found, confidence=confidence, doc_counts=counts, signals=sig)
    out.semantic_share = semantic_share(config, sig, alpha) if mode == "hybrid" and config.fusion != "rrf" else None
    return out
