"""Chinese text analysis: jieba words plus dictionary sub-words, for the whoosh index and for query terms."""
from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from whoosh.analysis import CompositeAnalyzer, LowercaseFilter, StopFilter, Token, Tokenizer

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
USERDICT_PATH = DATA_DIR / "userdict.txt"
STOPWORDS_PATH = DATA_DIR / "stopwords.txt"
SYNONYMS_PATH = DATA_DIR / "synonyms.txt"

# Sub-words are looked up only inside Chinese words, and at most this long.
_MAX_SUBWORD = 8
_HAN_WORD = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+$")
# Full-width ASCII (！..～) and the ideographic space map one-to-one onto ASCII, so offsets stay valid.
_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20

_jieba_lock = threading.Lock()
_jieba_dt: Any = None


def segmenter() -> Any:
    """Return jieba's default tokenizer, initialised once (lazily) with the party-building user dictionary."""
    global _jieba_dt
    if _jieba_dt is None:
        with _jieba_lock:
            if _jieba_dt is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.dt.initialize()
                if USERDICT_PATH.is_file():
                    jieba.dt.load_userdict(str(USERDICT_PATH))
                else:
                    logger.warning("user dictionary %s is missing; domain terms may be split", USERDICT_PATH)
                _jieba_dt = jieba.dt
    return _jieba_dt


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """The stopword set from indexer/data/stopwords.txt (lines starting with '#' are comments)."""
    try:
        lines = STOPWORDS_PATH.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        logger.warning("stopword list %s unreadable (%s); using none", STOPWORDS_PATH, exc)
        return frozenset()
    return frozenset(w.strip().lower() for w in lines if w.strip() and not w.startswith("#"))


def _has_word_char(word: str) -> bool:
    return any(c.isalnum() for c in word)


def word_spans(text: str) -> Iterator[tuple[str, int, int]]:
    """Yield (word, start, end) for jieba's words and, inside each Chinese word, every dictionary sub-word.

    This is jieba's search mode generalised: all dictionary sub-words of length 2..8 (not only 2 and 3),
    so e.g. "八项规定" is found inside "中央八项规定精神". Order: each word, then its sub-words by start,
    longest first, so start offsets never decrease. Whitespace and punctuation are skipped.
    """
    dt = segmenter()
    freq = dt.FREQ
    norm = text.translate(_FULLWIDTH)
    for word, start, end in dt.tokenize(norm, mode="default", HMM=True):
        if not _has_word_char(word):
            continue
        yield word, start, end
        n = end - start
        if n > 2 and _HAN_WORD.match(word):
            for i in range(n - 1):
                for j in range(min(n, i + _MAX_SUBWORD), i + 1, -1):
                    if j - i == n:
                        continue
                    sub = word[i:j]
                    if freq.get(sub):
                        yield sub, start + i, start + j


class JiebaTokenizer(Tokenizer):
    """Whoosh tokenizer over :func:`word_spans`: strictly increasing positions and exact character offsets."""

    def __call__(  # type: ignore[override]
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        **kwargs: Any,
    ) -> Iterator[Token]:
        """Yield one reused Token per word/sub-word of ``value``."""
        t = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        if not tokenize:
            t.original = t.text = value
            t.boost = 1.0
            if positions:
                t.pos = start_pos
            if chars:
                t.startchar = start_char
                t.endchar = start_char + len(value)
            yield t
            return
        pos = start_pos
        for word, start, end in word_spans(value):
            t.text = word
            t.boost = 1.0
            t.stopped = False
            if keeporiginal:
                t.original = word
            if positions:
                t.pos = pos
                pos += 1
            if chars:
                t.startchar = start_char + start
                t.endchar = start_char + end
            yield t


def ChineseAnalyzer() -> CompositeAnalyzer:
    """Whoosh analyzer: jieba words + sub-words, lowercased, stopwords (incl. single characters) dropped."""
    return JiebaTokenizer() | LowercaseFilter() | StopFilter(stoplist=stopwords(), minsize=1, renumber=True)


@lru_cache(maxsize=1)
def _analyzer() -> CompositeAnalyzer:
    return ChineseAnalyzer()


def tokenize(text: str) -> list[str]:
    """Index-time tokens of ``text``: words and dictionary sub-words, lowercased, without stopwords."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize() needs str, got {type(text).__name__}")
    return [t.text for t in _analyzer()(text)]


def query_terms(text: str) -> list[str]:
    """Unique query tokens of ``text`` in first-seen order (same analysis as indexing)."""
    seen: dict[str, None] = {}
    for term in tokenize(text):
        seen.setdefault(term, None)
    return list(seen)


@lru_cache(maxsize=1)
def synonyms() -> dict[str, tuple[str, ...]]:
    """Query expansions from indexer/data/synonyms.txt: a word users type -> the wording regulations use."""
    table: dict[str, tuple[str, ...]] = {}
    try:
        lines = SYNONYMS_PATH.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        logger.warning("synonym list %s unreadable (%s); no query expansion", SYNONYMS_PATH, exc)
        return table
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#"):
            table[parts[0]] = tuple(parts[1:])
    return table


def expand_query(text: str) -> str:
    """The question plus the regulation wording of abbreviations and colloquial words it contains.

    "支委会多久开一次会" -> "支委会多久开一次会 党支部委员会 支部委员会 每月 每季度 每年 定期". Matching is on the
    raw text (longest entries first, each expansion once), so it works whatever jieba makes of the abbreviation.
    """
    table = synonyms()
    extra: list[str] = []
    rest = text
    for word in sorted(table, key=len, reverse=True):
        if word in rest:
            rest = rest.replace(word, " ")
            extra.extend(e for e in table[word] if e not in text and e not in extra)
    return f"{text} {' '.join(extra)}" if extra else text
