"""Sentence windows: the short pieces of a passage that are embedded besides the whole passage, so that a question is
matched against the passage's best sentence as well as against the whole (search.sentences, index.sentences).

A window is one sentence, a sentence shorter than ``MIN_WINDOW`` characters joined to the next one; it is embedded
with a short prefix naming its document (``支部工作条例``), not the passage's full title and section path (that
repeated for every sentence made encoding 2.7x as slow). A passage of one window keeps only its passage vector.
"""
from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from indexer.text.cite import cited_document
from indexer.text.structure import sentence_spans

MIN_WINDOW = 12  # characters: shorter sentences (headings, "等等。") join the next one
MAX_WINDOWS = 8  # per passage (passages are at most 350 characters: ~4 windows on average)
PREFIX_CHARS = 10
WINDOW_VERSION = "w1"  # part of every window's cache key: change it when the window or prefix rule changes
_NOTE = re.compile(r"[（(][^（）()]{0,16}[)）]")
_LEAD = re.compile(r"^(?:中国共产党|中共中央|中共)")


def windows(text: str) -> tuple[tuple[int, int], ...]:
    """(start, end) of the sentence windows of a passage text, in order (at most MAX_WINDOWS)."""
    return _windows(text)


@lru_cache(maxsize=8192)
def _windows(text: str) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for s, e in sentence_spans(text):
        if out and (out[-1][1] - out[-1][0] < MIN_WINDOW):
            out[-1][1] = e  # a short piece so far: the next sentence completes it
        else:
            out.append([s, e])
    if len(out) > 1 and out[-1][1] - out[-1][0] < MIN_WINDOW:
        last = out.pop()
        out[-1][1] = last[1]
    if len(out) > MAX_WINDOWS:  # even pieces: join neighbours until MAX_WINDOWS remain
        step = -(-len(out) // MAX_WINDOWS)
        out = [[out[i][0], out[min(i + step, len(out)) - 1][1]] for i in range(0, len(out), step)]
    return tuple((s, e) for s, e in out)


@lru_cache(maxsize=4096)
def prefix(title: str, section: str) -> str:
    """The short context a window is embedded with: its document's name without 中国共产党 and notes, cut."""
    name, _ = cited_document({"title": title, "section": section})
    name = _LEAD.sub("", _NOTE.sub("", name)).strip()
    return name[:PREFIX_CHARS]


def window_texts(title: str, section: str, text: str) -> list[str]:
    """The texts embedded for a passage's windows (empty when the passage is a single window)."""
    spans = windows(text)
    if len(spans) < 2:
        return []
    head = prefix(title, section)
    return [f"{head}：{text[s:e]}" if head else text[s:e] for s, e in spans]


def window_key(embedded: str) -> str:
    """Cache key of one embedded window text."""
    return hashlib.sha1(f"{WINDOW_VERSION}\x1f{embedded}".encode("utf-8")).hexdigest()
