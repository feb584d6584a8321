"""Split a cleaned Document into sentence-bounded Passages that carry their section path.

Conventions (shared with :mod:`indexer.clean`): the cleaned text has one paragraph per line,
paragraphs separated by a single ``"\\n"`` and no blank lines, so a passage spanning several
paragraphs is the exact slice ``doc.text[start:end]`` including the newlines between them.

Section paths are the open headings joined with ``" > "``, e.g. ``"第四章 工作机制 > 第十一条"``.
Heading lines are the section, not passage text; ``第X条`` article lines are content and each
article starts its own passage unit. A numbered line (``一、`` ``（一）`` ``1.``) is a heading only
if it heads some content: one followed directly by a list item or heading of the same or a higher
level, or by the end of the document, is a list item and stays in the passage text.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field

from indexer.types import Document, Passage

logger = logging.getLogger(__name__)

SECTION_SEP = " > "

_CN_NUM = "零〇一二三四五六七八九十百千两"
_NUM = _CN_NUM + "0-9０-９"
_TERMINATORS = "。！？；!?;"
_CLOSERS = "”’」』）)】〕》〉\"'"
# characters that, right after a 第X条 label, show the line cites an article instead of starting one
_CITE_AFTER = "、，,第和及至与到的之或中规所"

_MD_HEADING = re.compile(r"^(#{1,6})(?:[ \t]+(.*?))?[ \t]*#*[ \t]*$")
_BOLD_WRAP = re.compile(r"^\*\*(.+?)\*\*$")
_STRUCT = re.compile(rf"^第[{_NUM}]+([编章节]|部分)(?=$|[\s\u3000*]|[^{_NUM}])")
_ARTICLE = re.compile(rf"^(#{{1,6}}[ \t]*)?(\*\*)?(第[{_NUM}]+条)(\*\*)?")
_CN_ENUM = re.compile(rf"^[{_CN_NUM}]+、")
_PAREN_ENUM = re.compile(rf"^[（(][{_CN_NUM}]+[）)]")
_DIGIT_ENUM = re.compile(r"^[0-9０-９]{1,2}[.、．](?![0-9０-９])")
_SENT_END = re.compile(rf"[{_TERMINATORS}]|…+")
_REG_TITLE = re.compile(
    r"^[^，,。；;：:！？!?]{2,40}(条例|规定|细则|办法|规程|准则|章程|规则)(（[^）]{1,8}）|\([^)]{1,8}\))?$"
)
_LEVEL = {"部分": 1, "编": 1, "章": 2, "节": 3}
_BARE_PARTS = {"总则", "分则", "附则"}  # a regulation part whose 第X章 label was lost in conversion


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
    m = _ARTICLE.match(s)
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
    m = _MD_HEADING.match(s)
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
    if re.sub(r"\s+", "", s) in _BARE_PARTS:
        return 2, re.sub(r"\s+", "", s)
    m = _STRUCT.match(s)
    if m:
        if len(s) <= 40 and not _has_terminator(s):
            label = s[: m.end()]
            rest = s[m.end():].strip(" \t\u3000*")
            return _LEVEL[m.group(1)], f"{label} {rest}" if rest else label
        return None
    if _CN_ENUM.match(s):
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
        enum = _CN_ENUM.match(body) or _PAREN_ENUM.match(body)
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
        _add_span(text, start, cut, spans)
        start = i = nxt
    _add_span(text, start, n, spans)
    return spans


def _add_span(text: str, s: int, e: int, out: list[tuple[int, int]]) -> None:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if s < e:
        out.append((s, e))


@dataclass
class _Unit:
    """Consecutive content paragraphs of one section (or one article)."""

    section: str
    paras: list[tuple[int, int]] = field(default_factory=list)


def _paragraphs(text: str) -> list[tuple[int, int]]:
    """(start, end) of every non-blank line, stripped."""
    out: list[tuple[int, int]] = []
    pos = 0
    for line in text.split("\n"):
        end = pos + len(line)
        _add_span(text, pos, end, out)
        pos = end + 1
    return out


def _enum_level(line: str) -> int | None:
    """Level of the list label a line starts with (``一、`` 4, ``（一）`` 5, ``1.`` 6), title-like or not."""
    s = line.strip()
    bm = _BOLD_WRAP.match(s)
    if bm:
        s = bm.group(1).strip()
    elif s.startswith("**"):
        s = s[2:]
    if _CN_ENUM.match(s):
        return 4
    if _PAREN_ENUM.match(s):
        return 5
    if _DIGIT_ENUM.match(s):
        return 6
    return None


def _ends_sentence(line: str) -> bool:
    """True if the line ends with a sentence mark (before closing quotes/brackets/bold marks)."""
    body = line.strip().rstrip(_CLOSERS + "*")
    return bool(body) and (body[-1] in _TERMINATORS or body[-1] == "…")


def _is_bold_title(line: str) -> bool:
    """A short, wholly bold line without a sentence end (``**组织纪律**``): a sub-title, whatever its level."""
    bm = _BOLD_WRAP.match(line.strip())
    return bool(bm) and len(bm.group(1)) <= 30 and not _has_terminator(bm.group(1))


def _heads_nothing(text: str, paras: list[tuple[int, int]], idx: int, level: int, in_list: bool = False) -> bool:
    """True if the numbered candidate heading at ``idx`` has no content of its own.

    That is the case at the end of the document, and when the next paragraph is a list item or
    heading of the same or a higher level (a sibling item, or the end of the parent section), or,
    for a line that continues a list of content items (``in_list``), a bold sub-title: the line is
    then one item of a list (``七、要严格文稿发表，……。``), not a title.
    """
    if idx + 1 >= len(paras):
        return True
    nxt = text[paras[idx + 1][0]:paras[idx + 1][1]]
    if article_label(nxt) is not None:
        return False  # "一、总则" heading articles
    if not _MD_HEADING.match(nxt):
        enum = _enum_level(nxt)
        if enum is not None:
            return enum <= level
    if _is_bold_title(nxt):
        return in_list  # "50.…的" then "**组织纪律**" ends a list; "五、党纪细化" then "**政治纪律**" heads it
    head = heading_level(nxt)
    if head is not None:
        return head[0] <= level
    return _is_regulation_title(nxt.strip(), text, paras, idx + 1)


def _units(text: str) -> list[_Unit]:
    """Group paragraphs into units by section; each article is its own unit.

    A numbered line (``一、`` ``（一）`` ``1.``) that looks like a title is a heading only if it
    heads some content (see :func:`_heads_nothing`); otherwise it is a content paragraph.
    """
    paras = _paragraphs(text)
    stack: list[tuple[int, str]] = []
    units: list[_Unit] = []
    cur: _Unit | None = None
    in_article = False

    def path(article: str | None = None) -> str:
        parts = [h for _, h in stack]
        if article:
            parts.append(article)
        return SECTION_SEP.join(parts)

    open_items: set[int] = set()  # levels of the run of content list items just before (deeper ones nested)
    for idx, (s, e) in enumerate(paras):
        line = text[s:e]
        items_before, open_items = open_items, set()
        label = article_label(line)
        if label is not None:
            cur = _Unit(path(label))
            units.append(cur)
            in_article = True
            m = _ARTICLE.match(line)
            if m and m.group(1):  # "## 第一条 …": the markdown marker is not content
                s += len(m.group(1))
            cur.paras.append((s, e))
            continue
        head = heading_level(line)
        explicit = bool(_MD_HEADING.match(line))
        if head is not None and in_article and not explicit and head[0] >= 4:
            head = None  # （一）/一、/1. items inside an article are its content
        enum = None if explicit else _enum_level(line)
        if head is not None and enum is not None and head[0] >= 4:
            in_list = enum in items_before
            if (in_list and _ends_sentence(line)) or _heads_nothing(text, paras, idx, head[0], in_list):
                head = None  # a list item (no body under it, or a sentence right after a content item)
        elif head is not None and explicit and _enum_level(head[1]) is not None and _ends_sentence(head[1]):
            if _heads_nothing(text, paras, idx, head[0]):
                head = None  # "### 四、研究确定入党积极分子。" right before "### 五、…": a step, not a title
        name = head[1] if head is not None else line.strip()
        if (head is None and not explicit) or (head is not None and explicit):
            if _is_regulation_title(name, text, paras, idx):
                head = (0, name)  # a regulation inside a collection starts a new top-level section
        if head is not None:
            level, htext = head
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, htext))
            cur = None
            in_article = False
            continue
        if explicit:  # empty or pseudo markdown heading: content without its marker
            mm = re.match(r"^#{1,6}[ \t]*", line)
            s += mm.end() if mm else 0
            if s >= e:
                continue
        if cur is None:
            cur = _Unit(path())
            units.append(cur)
        cur.paras.append((s, e))
        if enum is not None:
            open_items = {lv for lv in items_before if lv < enum} | {enum}
    return [u for u in units if u.paras]


def _is_regulation_title(line: str, text: str, paras: list[tuple[int, int]], idx: int) -> bool:
    """A bare regulation name line (…条例（试行）) directly followed by its chapters/articles."""
    s = line.strip()
    if not _REG_TITLE.match(s):
        return False
    if _MD_HEADING.match(text[paras[idx][0]:paras[idx][1]]):
        return True  # "## 关于中国共产党党费收缴、使用和管理的规定"
    if idx + 1 >= len(paras):
        return False
    nxt = text[paras[idx + 1][0]:paras[idx + 1][1]].strip()
    if article_label(nxt) is not None:
        return True
    h = heading_level(nxt)
    if h is not None and (_STRUCT.match(h[1]) or h[1] in _BARE_PARTS):
        return True
    # "（2018年10月28日中共中央政治局会议审议批准…）" / "(中办发〔2014〕33 号)"
    return nxt[:1] in "（(" and len(nxt) <= 200 and bool(re.search(r"[0-9０-９〇一二三四五六七八九]{2,}", nxt))


def _clause_spans(text: str, s: int, e: int, max_chars: int) -> list[tuple[int, int]]:
    """Split an over-long sentence at ，、,：: clause marks (last resort), then hard-cut if needed."""
    pieces: list[tuple[int, int]] = []
    start = s
    for i in range(s, e):
        if text[i] in "，、,：:" and i + 1 < e:
            pieces.append((start, i + 1))
            start = i + 1
    pieces.append((start, e))
    out: list[tuple[int, int]] = []
    for ps, pe in pieces:
        while pe - ps > max_chars:
            out.append((ps, ps + max_chars))
            ps += max_chars
        out.append((ps, pe))
    return _pack([(a, b) for a, b in out if b > a], max_chars, max_chars, 0)


def _merge_short_tail(out: list[list[int]], min_chars: int, max_chars: int) -> list[tuple[int, int]]:
    """Join a too-short last chunk to the one before it when the two fit in max_chars."""
    if len(out) > 1 and out[-1][1] - out[-1][0] < min_chars and out[-1][1] - out[-2][0] <= max_chars:
        last = out.pop()
        out[-1][1] = last[1]
    return [(s, e) for s, e in out]


def _pack(spans: list[tuple[int, int]], goal: int, max_chars: int, min_chars: int) -> list[tuple[int, int]]:
    """Greedily join consecutive spans while the result stays within goal (max if below min_chars)."""
    out: list[list[int]] = []
    for s, e in spans:
        if out:
            cs = out[-1][0]
            size = out[-1][1] - cs
            if e - cs <= max_chars and (e - cs <= goal or size < min_chars):
                out[-1][1] = e
                continue
        out.append([s, e])
    return _merge_short_tail(out, min_chars, max_chars)


def _split_paragraph(text: str, s: int, e: int, min_chars: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut a paragraph longer than max_chars at sentence ends into chunks of even, moderate size."""
    if e - s <= max_chars:
        return [(s, e)]
    sents: list[tuple[int, int]] = []
    for a, b in sentence_spans(text[s:e]):
        a, b = a + s, b + s
        if b - a > max_chars:
            sents.extend(_clause_spans(text, a, b, max_chars))
        else:
            sents.append((a, b))
    target = min(max_chars, max(min_chars, 260))
    n = max(1, math.ceil((e - s) / target))
    goal = min(max_chars, math.ceil((e - s) / n) + 30)
    return _pack(sents, goal, max_chars, min_chars)


def _unit_chunks(text: str, unit: _Unit, min_chars: int, max_chars: int) -> list[tuple[int, int]]:
    """Split long paragraphs, then merge tiny pieces with a neighbour inside the unit."""
    atoms: list[tuple[int, int]] = []
    for s, e in unit.paras:
        atoms.extend(_split_paragraph(text, s, e, min_chars, max_chars))
    out: list[list[int]] = []
    for s, e in atoms:
        if out:
            cs, ce = out[-1]
            if e - cs <= max_chars and (ce - cs < min_chars or e - s < min_chars):
                out[-1][1] = e
                continue
        out.append([s, e])
    return _merge_short_tail(out, min_chars, max_chars)


def split_document(doc: Document, min_chars: int = 80, max_chars: int = 350) -> list[Passage]:
    """Cut a cleaned document into passages; ``p.text == doc.text[p.start:p.end]`` for every passage."""
    if min_chars < 0 or max_chars <= 0 or min_chars > max_chars:
        raise ValueError(f"split_document({doc.doc_id}): need 0 <= min_chars <= max_chars, got {min_chars}, {max_chars}")
    text = doc.text
    passages: list[Passage] = []
    seen: set[str] = set()
    for unit in _units(text):
        for s, e in _unit_chunks(text, unit, min_chars, max_chars):
            body = text[s:e]
            if body in seen:
                continue
            seen.add(body)
            passages.append(Passage(doc.doc_id, doc.title, unit.section, body, s, e, len(passages)))
    logger.debug("split %s into %d passages", doc.doc_id, len(passages))
    return passages
