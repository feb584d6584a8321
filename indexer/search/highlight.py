"""Answer presentation: where matched terms occur in a passage and which sentence best answers the question."""
from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Sequence

from indexer.text.analyzer import fold
from indexer.text.noise import is_noise_line
from indexer.text.structure import sentence_spans

_CJK_OR_WORD = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[A-Za-z0-9]+")
# What a passage's text alone decides (its folded, lowered form; its sentences' units and noise flags) is kept per
# text: every question that hits a passage reuses it, and the 7x-replicated 100k bench index (and real corpora's
# versions and reposts) hit the same text under many pids. Recomputed, hit building was ~60% of rank(); kept, rank()
# went from 1.36 to 0.53 ms p50 a question (hybrid, 200 bench questions, 100k index, warm). Both caches together
# hold ~3.5 KB per passage (measured on 5000 of the bench index's texts, 158 characters on average): 8192 passages
# stay near 30 MB, enough for the hits of ~1500 recent questions.
PASSAGE_CACHE = 8192
_SEP = "\x00"  # never in a unit: joins a sentence's units so a bigram is a substring test at unit boundaries


@lru_cache(maxsize=PASSAGE_CACHE)
def folded_lower(text: str) -> str:
    """``fold(text).lower()``, kept per passage text (the hit builder, highlights and coverage all need it)."""
    return fold(text).lower()


def term_spans(text: str, terms: Sequence[str]) -> list[list[int]]:
    """Non-overlapping, sorted [start, end] spans in ``text`` where any of ``terms`` occurs (longest term wins)."""
    lowered = folded_lower(text)  # same length as text: traditional / full-width text still gets its spans
    taken = bytearray(len(text))  # 1 where a span already covers the character
    spans: list[list[int]] = []
    # Longest term first; among terms of one length the one found earliest, then by text: a set's order follows
    # the per-process string hash, so two overlapping equal-length terms were highlighted differently by two runs.
    wanted = {t.lower() for t in terms if t.strip()}
    for term in sorted(wanted, key=lambda t: (-len(t), lowered.find(t), t)):
        pos = lowered.find(term)
        while pos != -1:
            end = pos + len(term)
            if taken.find(1, pos, end) == -1:
                spans.append([pos, end])
                taken[pos:end] = b"\x01" * (end - pos)
            pos = lowered.find(term, end)
    return sorted(spans)


def matched_terms(text: str, terms: Sequence[str]) -> list[str]:
    """The query terms that occur in ``text``, in query order."""
    lowered = folded_lower(text)
    return [t for t in dict.fromkeys(terms) if t and t.lower() in lowered]


def _units(text: str) -> list[str]:
    """Characters of CJK text and whole Latin/number words, for overlap scoring."""
    return [u.lower() for u in _CJK_OR_WORD.findall(text)]  # findall: no match objects (a third of ranking)


def best_sentence(text: str, question: str, terms: Sequence[str]) -> tuple[int, int]:
    """Span [start, end) of the sentence in ``text`` that best answers ``question``.

    Score = matched query terms (longer terms count more, as rarer) + character-bigram overlap with the question,
    which also catches paraphrases that share no whole jieba word.
    """
    sentences, all_low, all_units = _sentences(text)
    if not sentences:
        return 0, len(text)
    if len(sentences) == 1:  # the only sentence is the best whatever it scores
        return sentences[0][0], sentences[0][1]
    # Only terms and question bigrams found somewhere in the passage can match one of its sentences: test those
    # per sentence (the joined texts keep a separator between sentences, so nothing matches across two). The
    # terms keep their order, so the sum below adds the same numbers in the same order as over all terms.
    lowered_terms = [t.lower() for t in dict.fromkeys(terms) if t.strip()]  # "AB" and "ab" both count, as before
    asked = _asked_noun(question)
    weighted = [(t, math.log1p(len(t)) * (2.0 + ASKED_NOUN_WEIGHT * (t == asked))) for t in lowered_terms
                if t in all_low]
    # pre-filtered on "a\0b" (a rare first character searches fast; a match inside a longer unit only costs a test)
    present = [key for inner, key in _question_bigrams(question) if inner in all_units]
    best, best_score = (sentences[0][0], sentences[0][1]), float("-inf")
    for start, end, low, units, length_weight, noise in sentences:
        term_score = sum(w for t, w in weighted if t in low)
        overlap = sum(1 for key in present if key in units)
        # Tiny fragments (headings, "等等。") rarely answer anything: damp them; a table row or form line never
        # answers while any prose sentence is there.
        score = (term_score + overlap) * length_weight
        if noise:
            score = score * 0.01 - 1.0
        if score > best_score:
            best, best_score = (start, end), score
    return best


# The noun a question asks for (什么方式 / 哪些渠道 / 哪几种形式 -> 方式, 渠道, 形式): the sentence naming it (沟通方式
# 也由职工群众自由选择，如邮件、电话…) is the one that answers, even when another sentence holds more of the other
# words. Its term weight is raised by this much (others: 2.0 per log-length).
ASKED_NOUN_WEIGHT = 2.0
_ASKED = re.compile(r"(?:什么|哪些|哪几种|哪种|哪几|何种|哪类)([\u4e00-\u9fff]{2})")


@lru_cache(maxsize=256)
def _asked_noun(question: str) -> str:
    """The two-character noun right after 什么 / 哪些 / 哪种 … in the question (folded, lowered), or ''; once per
    question, not per candidate passage."""
    m = _ASKED.search(fold(question).lower())
    return m.group(1) if m else ""


@lru_cache(maxsize=256)
def _question_bigrams(question: str) -> tuple[tuple[str, str], ...]:
    """The question's distinct unit bigrams, each as ``a\\0b`` and as ``\\0a\\0b\\0`` (a substring test against
    joined units: the first may match inside longer units, the second only whole units)."""
    units = _units(fold(question))
    return tuple((f"{a}{_SEP}{b}", f"{_SEP}{a}{_SEP}{b}{_SEP}") for a, b in dict.fromkeys(zip(units, units[1:])))


@lru_cache(maxsize=PASSAGE_CACHE)
def _sentences(text: str) -> tuple[tuple[tuple[int, int, str, str, float, bool], ...], str, str]:
    """Per sentence of a passage: (start, end, lowered folded text, units joined as ``\\0u1\\0u2\\0``, length
    weight, is a noise line); plus all sentences' lowered texts and joined units, each joined with a separator."""
    # Folded once: fold keeps lengths, and its same-length phrases are all Han characters, so they never span
    # the punctuation or newline between two sentences -- a slice of the folded text is the folded slice.
    folded = fold(text)
    out = []
    for start, end in sentence_spans(text):
        sentence = folded[start:end]
        units = _units(sentence)
        length_factor = min(1.0, len(units) / 12.0)
        out.append((start, end, sentence.lower(), _SEP + _SEP.join(units) + _SEP, 0.5 + 0.5 * length_factor,
                    is_noise_line(sentence)))
    return tuple(out), _SEP.join(o[2] for o in out), "".join(o[3] for o in out)
