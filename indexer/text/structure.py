"""Line rules of Chinese official texts: headings (第X章, 一、, Markdown), 第X条 articles, sentence ends."""
from __future__ import annotations

import logging
import re

from indexer.text.numerals import CN_NUMERALS, NUMERALS

logger = logging.getLogger(__name__)


SECTION_SEP = " > "

_TERMINATORS = "。！？；!?;"
_CLOSERS = "”’」』）)】〕》〉\"'"
# characters that, right after a 第X条 label, show the line cites an article instead of starting one
_CITE_AFTER = "、，,第和及至与到的之或中规所"

MD_HEADING = re.compile(r"^(#{1,6})(?:[ \t]+(.*?))?[ \t]*#*[ \t]*$")
_BOLD_WRAP = re.compile(r"^\*\*(.+?)\*\*$")
STRUCT = re.compile(rf"^第[{NUMERALS}]+([编章节]|部分)(?=$|[\s\u3000*]|[^{NUMERALS}])")
ARTICLE = re.compile(rf"^(#{{1,6}}[ \t]*)?(\*\*)?(第[{NUMERALS}]+条)(\*\*)?")
CN_ENUM = re.compile(rf"^[{CN_NUMERALS}]+、")
_PAREN_ENUM = re.compile(rf"^[（(][{CN_NUMERALS}]+[）)]")
_DIGIT_ENUM = re.compile(r"^[0-9０-９]{1,2}[.、．](?![0-9０-９])")
_SENT_END = re.compile(rf"[{_TERMINATORS}]|…+")
REG_TITLE = re.compile(
    r"^[^，,。；;：:！？!?]{2,40}(条例|规定|细则|办法|规程|准则|章程|规则)(（[^）]{1,8}）|\([^)]{1,8}\))?$"
)
_LEVEL = {"部分": 1, "编": 1, "章": 2, "节": 3}
BARE_PARTS = {"总则", "分则", "附则"}  # a regulation part whose 第X章 label was lost in conversion


def opens_part(text: str) -> bool:
    """True when ``text`` starts with the label of a document's upper levels: ``第X编/章/节/部分`` or ``一、``."""
    return bool(STRUCT.match(text) or CN_ENUM.match(text))


def _has_terminator(s: str) -> bool:
    return bool(_SENT_END.search(s))


def _enum_is_heading(line: str, max_plain: int, max_with_end: int) -> bool:
    """Title-like enumerated line: no sentence end inside, short enough, not a list item."""
    body = line.rstrip(_CLOSERS)
    if not body:
        return False
    if body[-1] in "，,、；;：:":
        return False
    ends = body[-1] in "。！？!?"
    if _has_terminator(body[:-1] if ends else body):
        return False  # a sentence end inside: a numbered paragraph
    return len(line) <= (max_with_end if ends else max_plain)


def article_label(line: str) -> str | None:
    """Return ``"第X条"`` if the line starts a regulation article (``第十一条 …``), else None."""
    s = line.strip()
    m = ARTICLE.match(s)
    if not m:
        return None
    rest = s[m.end():]
    if rest.startswith("**"):
        rest = rest[2:]
    spaced = rest[:1] in (" ", "\t", "\u3000")
    rest = rest.lstrip(" \t\u3000")
    if rest and not spaced and rest[0] in _CITE_AFTER:
        return None
    if rest[:1] == "\\" or rest[:1] == "|":
        return None
    return m.group(3)


def heading_level(line: str) -> tuple[int, str] | None:
    """Return (level, heading text) if the line is a heading, else None.

    Levels: markdown ``#``..``######`` -> number of ``#``; ``第X编`` 1; ``第X章`` 2; ``第X节`` 3;
    ``一、`` 4; ``（一）`` 5; ``1.``/``1、`` 6 (only when short and title-like). ``第X条`` is an
    article, not a heading (see :func:`article_label`).
    """
    s = line.strip()
    if not s:
        return None
    m = MD_HEADING.match(s)
    if m:
        inner = (m.group(2) or "").strip()
        if not inner or article_label(inner) is not None or is_pseudo_md_heading(inner):
            return None
        bm = _BOLD_WRAP.match(inner)
        if bm:
            inner = bm.group(1).strip()
        return len(m.group(1)), inner
    bm = _BOLD_WRAP.match(s)
    if bm:
        s = bm.group(1).strip()
    if article_label(s) is not None:
        return None
    if re.sub(r"\s+", "", s) in BARE_PARTS:
        return 2, re.sub(r"\s+", "", s)
    m = STRUCT.match(s)
    if m:
        if len(s) <= 40 and not _has_terminator(s):
            label = s[: m.end()]
            rest = s[m.end():].strip(" \t\u3000*")
            return _LEVEL[m.group(1)], f"{label} {rest}" if rest else label
        return None
    if CN_ENUM.match(s):
        return (4, s) if _enum_is_heading(s, 80, 60) else None
    if _PAREN_ENUM.match(s):
        return (5, s) if _enum_is_heading(s, 50, 40) else None
    if _DIGIT_ENUM.match(s):
        if len(s) <= 40 and not _has_terminator(s) and s[-1] not in "，,、：:":
            return 6, s
        return None
    return None


def is_pseudo_md_heading(inner: str) -> bool:
    """True if a markdown heading's text is really a sentence/paragraph (ends like a sentence or is long)."""
    inner = inner.strip()
    if not inner:
        return False
    if article_label(inner) is not None:
        return True
    if len(inner) > 80:
        return True
    body = inner.rstrip(_CLOSERS + "*")
    if body and body[-1] in "；;，,、":
        return True
    if body and body[-1] in "。！？!?…":
        # a short title that happens to end with 。 is still a heading: "四、研究确定入党积极分子。"
        enum = CN_ENUM.match(body) or _PAREN_ENUM.match(body)
        if enum and not _has_terminator(body[:-1]) and len(body) <= 60:
            return False
        return True
    return False


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence (start, end) offsets: ends at 。！？；!?; or …… (plus closing quotes) and at newlines.

    Spans exclude surrounding whitespace and together cover all non-space text.
    """
    spans: list[tuple[int, int]] = []
    n = len(text)
    i = 0
    start = 0
    while i < n:
        ch = text[i]
        cut = None
        if ch == "\n":
            cut, nxt = i, i + 1
        elif ch in _TERMINATORS or ch == "…":
            j = i + 1
            while j < n and (text[j] in _TERMINATORS or text[j] == "…" or text[j] in _CLOSERS):
                j += 1
            cut, nxt = j, j
        if cut is None:
            i += 1
            continue
        add_span(text, start, cut, spans)
        start = i = nxt
    add_span(text, start, n, spans)
    return spans


def add_span(text: str, s: int, e: int, out: list[tuple[int, int]]) -> None:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if s < e:
        out.append((s, e))


def enum_level(line: str) -> int | None:
    """Level of the list label a line starts with (``一、`` 4, ``（一）`` 5, ``1.`` 6), title-like or not."""
    s = line.strip()
    bm = _BOLD_WRAP.match(s)
    if bm:
        s = bm.group(1).strip()
    elif s.startswith("**"):
        s = s[2:]
    if CN_ENUM.match(s):
        return 4
    if _PAREN_ENUM.match(s):
        return 5
    if _DIGIT_ENUM.match(s):
        return 6
    return None


def ends_sentence(line: str) -> bool:
    """True if the line ends with a sentence mark (before closing quotes/brackets/bold marks)."""
    body = line.strip().rstrip(_CLOSERS + "*")
    return bool(body) and (body[-1] in _TERMINATORS or body[-1] == "…")


def is_bold_title(line: str) -> bool:
    """A short, wholly bold line without a sentence end (``**组织纪律**``): a sub-title, whatever its level."""
    bm = _BOLD_WRAP.match(line.strip())
    return bool(bm) and len(bm.group(1)) <= 30 and not _has_terminator(bm.group(1))
