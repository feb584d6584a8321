"""Answer presentation: where matched terms occur in a passage and which sentence best answers the question."""
from __future__ import annotations

import math
import re
from typing import Sequence

from .analyzer import fold
from .noise import is_noise_line
from .split import sentence_spans

_CJK_OR_WORD = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[A-Za-z0-9]+")


def term_spans(text: str, terms: Sequence[str]) -> list[list[int]]:
    """Non-overlapping, sorted [start, end] spans in ``text`` where any of ``terms`` occurs (longest term wins)."""
    lowered = fold(text).lower()  # same length as text: traditional / full-width text still gets its spans
    taken = [False] * len(text)
    spans: list[list[int]] = []
    for term in sorted({t.lower() for t in terms if t.strip()}, key=len, reverse=True):
        pos = lowered.find(term)
        while pos != -1:
            end = pos + len(term)
            if not any(taken[pos:end]):
                spans.append([pos, end])
                for i in range(pos, end):
                    taken[i] = True
            pos = lowered.find(term, end)
    return sorted(spans)


def matched_terms(text: str, terms: Sequence[str]) -> list[str]:
    """The query terms that occur in ``text``, in query order."""
    lowered = fold(text).lower()
    return [t for t in dict.fromkeys(terms) if t and t.lower() in lowered]


def _units(text: str) -> list[str]:
    """Characters of CJK text and whole Latin/number words, for overlap scoring."""
    return [u.lower() for u in _CJK_OR_WORD.findall(text)]  # findall: no match objects (a third of ranking)


def _bigrams(units: list[str]) -> set[tuple[str, str]]:
    return set(zip(units, units[1:]))


def best_sentence(text: str, question: str, terms: Sequence[str]) -> tuple[int, int]:
    """Span [start, end) of the sentence in ``text`` that best answers ``question``.

    Score = matched query terms (longer terms count more, as rarer) + character-bigram overlap with the question,
    which also catches paraphrases that share no whole jieba word.
    """
    spans = sentence_spans(text)
    if not spans:
        return 0, len(text)
    q_bigrams = _bigrams(_units(fold(question)))
    lowered_terms = [t.lower() for t in dict.fromkeys(terms) if t.strip()]
    best, best_score = spans[0], float("-inf")
    # Folded once: fold keeps lengths, and its same-length phrases are all Han characters, so they never span
    # the punctuation or newline between two sentences -- a slice of the folded text is the folded slice.
    folded = fold(text)
    for start, end in spans:
        sentence = folded[start:end]
        low = sentence.lower()
        term_score = sum(math.log1p(len(t)) * 2.0 for t in lowered_terms if t in low)
        units = _units(sentence)
        overlap = len(q_bigrams & _bigrams(units)) if q_bigrams else 0
        # Tiny fragments (headings, "等等。") rarely answer anything: damp them; a table row or form line never
        # answers while any prose sentence is there.
        length_factor = min(1.0, len(units) / 12.0)
        score = (term_score + overlap) * (0.5 + 0.5 * length_factor)
        if is_noise_line(sentence):
            score = score * 0.01 - 1.0
        if score > best_score:
            best, best_score = (start, end), score
    return best
