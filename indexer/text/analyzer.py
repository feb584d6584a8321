"""Chinese text analysis: jieba words plus dictionary sub-words, for the whoosh index and for query terms."""
from __future__ import annotations

import hashlib
import logging
import re
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from whoosh.analysis import CompositeAnalyzer, LowercaseFilter, StopFilter, Token, Tokenizer

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
USERDICT_PATH = DATA_DIR / "userdict.txt"
STOPWORDS_PATH = DATA_DIR / "stopwords.txt"
SYNONYMS_PATH = DATA_DIR / "synonyms.txt"
T2S_PATH = DATA_DIR / "t2s_chars.txt"

# Sub-words are looked up only inside Chinese words, and at most this long.
_MAX_SUBWORD = 8
_HAN_WORD = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+$")
# Full-width ASCII (！..～) and the ideographic space map one-to-one onto ASCII, so offsets stay valid.
_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20
# Ideograph look-alikes that PDF extraction and old software emit: Kangxi radicals, CJK radicals
# supplement, CJK compatibility ideographs. Their NFKC forms are single unified ideographs.
_LOOKALIKE_RANGES = ((0x2E80, 0x2EFF), (0x2F00, 0x2FDF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))

# A pasted paragraph can give hundreds of terms; beyond this many, extra terms only cost time.
MAX_QUERY_TERMS = 100
# Weight of a query token that is only a dictionary sub-word of a longer query word (see :func:`weighted_query_terms`).
# At 1.0 a long compound (中国特色社会主义: 8 tokens) outweighed the rarer words that single out the answer.
# Passage R@5 over the whole party-docs corpus, keyword / hybrid: quiz 0.895 / 0.881 -> 0.938 / 0.890 and
# dev questions 0.485 / 0.621 -> 0.495 / 0.631 at 0.3 (0.2-0.5 within one question of it).
SUBWORD_WEIGHT = 0.3

# Bump when a code change alters index-time tokens (segmentation, sub-words, folding); data files are hashed.
ANALYZER_REVISION = 2

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
def analyzer_fingerprint() -> str:
    """Identifies the index-time tokenization: the code revision, the user dictionary, the stopwords, the t2s table.

    An index records it; when it differs (a term was added to userdict.txt, jieba changed ...), the next
    ``partyqa index`` re-tokenizes the keyword half from the stored passages (no re-reading, no re-embedding).
    Computed once per process, like the dictionary and stopwords it describes (they are loaded once too).
    """
    import jieba

    h = hashlib.sha1(f"partyqa-analyzer/{ANALYZER_REVISION}/jieba-{jieba.__version__}".encode())
    for path in (USERDICT_PATH, STOPWORDS_PATH, T2S_PATH):
        h.update(b"\0" + path.name.encode())
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"<missing>")
    return f"{ANALYZER_REVISION}-{h.hexdigest()[:12]}"


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """The stopword set from indexer/text/data/stopwords.txt (lines starting with '#' are comments)."""
    try:
        lines = STOPWORDS_PATH.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        logger.warning("stopword list %s unreadable (%s); using none", STOPWORDS_PATH, exc)
        return frozenset()
    return frozenset(w.strip().lower() for w in lines if w.strip() and not w.startswith("#"))


@lru_cache(maxsize=1)
def _t2s_data() -> tuple[dict[int, int], dict[str, str]]:
    """Traditional -> simplified from indexer/text/data/t2s_chars.txt: (str.translate table, same-length phrases).

    The table also maps ideograph look-alikes to the ordinary characters. Phrase keys are given in their
    character-mapped form, so phrases apply after the table.
    """
    table: dict[int, int] = {}
    raw_phrases: list[tuple[str, str]] = []
    try:
        lines = T2S_PATH.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        logger.warning("traditional->simplified table %s unreadable (%s); traditional text is not mapped", T2S_PATH, exc)
        lines = []
    for line in lines:
        if line.startswith("#") or "\t" not in line:
            continue
        trad, simp = line.split("\t", 1)
        if len(trad) == 1 and len(simp) == 1:
            table[ord(trad)] = ord(simp)
        elif len(trad) == len(simp) > 1:
            raw_phrases.append((trad, simp))
    for lo, hi in _LOOKALIKE_RANGES:
        for cp in range(lo, hi + 1):
            norm = unicodedata.normalize("NFKC", chr(cp))
            if len(norm) == 1 and norm != chr(cp):
                table[cp] = table.get(ord(norm), ord(norm))
    phrases = {trad.translate(table): simp for trad, simp in raw_phrases}
    return table, phrases


@lru_cache(maxsize=1)
def _phrase_re() -> re.Pattern[str] | None:
    phrases = _t2s_data()[1]
    if not phrases:
        return None
    return re.compile("|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True)))


@lru_cache(maxsize=1)
def _fold_table() -> dict[int, int]:
    table = dict(_t2s_data()[0])
    table.update(_FULLWIDTH)
    return table


def _phrases(text: str) -> str:
    pattern = _phrase_re()
    if pattern is None:
        return text
    phrases = _t2s_data()[1]
    return pattern.sub(lambda m: phrases[m.group()], text)


def to_simplified(text: str) -> str:
    """Traditional Chinese -> simplified, keeping the length (so offsets into ``text`` stay valid).

    Each character becomes OpenCC's most common simplified form; characters that are simplified too
    (瞭, 藉, 覆, 沈) change only inside same-length OpenCC phrases (瞭解 -> 了解). Phrase-level changes
    that alter the length are not made, so a few words differ from a full converter; for search that is
    fine because documents and questions go through the same mapping. Ideograph look-alikes (Kangxi
    radicals, compatibility ideographs from PDFs) become the ordinary characters.
    """
    return _phrases(text.translate(_t2s_data()[0]))


def fold(text: str) -> str:
    """The form the analyzer segments: :func:`to_simplified` plus full-width ASCII -> ASCII; same length as ``text``."""
    return _phrases(text.translate(_fold_table()))


def has_searchable_text(text: str) -> bool:
    """True if ``text`` has a Chinese character, a letter or a digit (not only punctuation, symbols or emoji)."""
    return any(ch.isalnum() for ch in text)


def _has_word_char(word: str) -> bool:
    return any(c.isalnum() for c in word)


def word_spans(text: str) -> Iterator[tuple[str, int, int]]:
    """Yield (word, start, end) for jieba's words and, inside each Chinese word, every dictionary sub-word.

    This is jieba's search mode generalised: all dictionary sub-words of length 2..8 (not only 2 and 3),
    so e.g. "八项规定" is found inside "中央八项规定精神". Order: each word, then its sub-words by start,
    longest first, so start offsets never decrease. Whitespace and punctuation are skipped. The text is
    segmented in its :func:`fold` form, so words come out simplified ("黨員" -> "党员") while the offsets
    point into the original text.
    """
    dt = segmenter()
    freq = dt.FREQ
    norm = fold(text)
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
    return [term for term, _ in weighted_query_terms(text)]


def weighted_query_terms(text: str, subword_weight: float = 1.0) -> list[tuple[str, float]]:
    """Unique query tokens of ``text`` with weights: 1 for a word, ``subword_weight`` for a token that only occurs
    as a dictionary sub-word of a longer word (中国特色社会主义 -> 特色, 社会主义 ...), so that one long compound
    does not count seven times over the rarer words beside it. Same tokens and order as :func:`query_terms`."""
    return list(_weighted_query_terms(text, subword_weight, stopwords()))


# A question is analysed by the keyword half, the confidence signals and the hit builder: segment it once. Kept
# small on purpose: it serves one search (and a batch), not repeats of a question across searches. The stopword
# set is part of the key (a frozenset caches its hash), so a reloaded stopword list is never served stale terms.
@lru_cache(maxsize=256)
def _weighted_query_terms(text: str, subword_weight: float, stops: frozenset[str]) -> tuple[tuple[str, float], ...]:
    weights: dict[str, float] = {}
    top = (-1, -1)
    for word, start, end in _query_spans(text):
        term = word.lower()
        inner = top[0] <= start and end <= top[1] and (start, end) != top
        if not inner:
            top = (start, end)
        if term in stops:
            continue
        w = subword_weight if inner else 1.0
        weights[term] = max(weights.get(term, 0.0), w)
    return tuple(weights.items())


@lru_cache(maxsize=256)
def _query_spans(text: str) -> tuple[tuple[str, int, int], ...]:
    """:func:`word_spans` of a question, kept: the keyword half weighs the expanded question's terms at the
    sub-word weight, ranking at 1 and the confidence signals the plain question's -- one jieba pass serves all
    (three passes were ~0.6 ms of ranking a question)."""
    return tuple(word_spans(text))


@lru_cache(maxsize=1)
def synonyms() -> dict[str, tuple[str, ...]]:
    """Query expansions from indexer/text/data/synonyms.txt: a word users type -> the wording regulations use."""
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
    simple = to_simplified(text)  # "支委會" expands like "支委会"
    rest = simple
    for word in sorted(table, key=len, reverse=True):
        if word in rest:
            rest = rest.replace(word, " ")
            extra.extend(e for e in table[word] if e not in simple and e not in extra)
    return f"{text} {' '.join(extra)}" if extra else text
