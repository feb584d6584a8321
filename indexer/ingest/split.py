"""Split a cleaned Document into sentence-bounded Passages that carry their section path.

Conventions (shared with :mod:`indexer.ingest.clean`): the cleaned text has one paragraph per line,
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

from indexer.text.structure import (ARTICLE, BARE_PARTS, MD_HEADING, REG_TITLE, SECTION_SEP, STRUCT, add_span,
                                     article_label, ends_sentence, enum_level, heading_level, is_bold_title,
                                     sentence_spans)
from indexer.text.tails import attachment_section, closes_regulation, is_tail_section, title_like
from indexer.types import Document, Passage

logger = logging.getLogger(__name__)

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
        add_span(text, pos, end, out)
        pos = end + 1
    return out


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
    if not MD_HEADING.match(nxt):
        enum = enum_level(nxt)
        if enum is not None:
            return enum <= level
    if is_bold_title(nxt):
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
    closing = False  # the open article says when its regulation takes effect: what follows may be a tail
    in_tail = False  # inside an attachment, form or table dump after a regulation (indexer.text.tails)

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
            # an article ends an attachment: the next regulation's articles (its title was not recognised) are not
            # part of a form
            del stack[next((i for i, (_, h) in enumerate(stack) if is_tail_section(h)), len(stack)):]
            cur = _Unit(path(label))
            units.append(cur)
            in_article, in_tail = True, False
            closing = closes_regulation(line[ARTICLE.match(line).end():] if ARTICLE.match(line) else line)
            m = ARTICLE.match(line)
            if m and m.group(1):  # "## 第一条 …": the markdown marker is not content
                s += len(m.group(1))
            cur.paras.append((s, e))
            continue
        tail = _tail_start(text, paras, idx, line, in_article, closing, in_tail)
        if tail is not None:
            level, name = tail
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, name))
            cur = _Unit(path())
            units.append(cur)
            in_article, closing, in_tail = False, False, True
            if level == 0 or _TAIL_OPENER_ONLY.match(line.strip()):
                continue  # the opener line is the section's name, not content
            cur.paras.append((s, e))
            continue
        head = heading_level(line)
        explicit = bool(MD_HEADING.match(line))
        if head is not None and (in_article or in_tail) and not explicit and head[0] >= 4:
            head = None  # （一）/一、/1. items inside an article (or a form) are its content
        enum = None if explicit else enum_level(line)
        if head is not None and enum is not None and head[0] >= 4:
            in_list = enum in items_before
            if (in_list and ends_sentence(line)) or _heads_nothing(text, paras, idx, head[0], in_list):
                head = None  # a list item (no body under it, or a sentence right after a content item)
        elif head is not None and explicit and enum_level(head[1]) is not None and ends_sentence(head[1]):
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
            in_article = in_tail = closing = False
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


# An attachment opener that is nothing but its label and name (``附件1：`` ``--- 表格3 ---``): the section name
# holds it, so it is not repeated as content. A longer opener (``附件1：出国（境）党员情况报备表``) is too.
_TAIL_OPENER_ONLY = re.compile(r"^(?:附件|附表|附录|附)\s*[0-9０-９一二三四五六七八九十\-－—\s]*[:：]?\s*$|^-{2,}\s*表格\s*\d+\s*-{2,}$")


def _tail_start(text: str, paras: list[tuple[int, int]], idx: int, line: str, in_article: bool, closing: bool,
                in_tail: bool) -> tuple[int, str] | None:
    """(level, section name) when this paragraph opens a handbook tail (see :mod:`indexer.text.tails`), else None.

    An attachment opener (附件1：, 附：) opens one anywhere; a converted table (``--- 表格N ---``) does after a
    regulation's last article or inside a tail (a table inside an article stays its content); right after the
    last article, a title-like line that is not a heading opens a new top-level section named by it (the next
    notice or form of a handbook). Attachments and tables keep the regulation they follow as their parent.
    """
    name = attachment_section(line)
    if name is not None:
        if name.startswith("表格") and in_article and not closing:
            return None
        if re.fullmatch(r"(附件|附表|附录)[0-9０-９一二三四五六七八九十\-－—]*", name) and idx + 1 < len(paras):
            nxt = text[paras[idx + 1][0]:paras[idx + 1][1]].strip()
            if title_like(nxt) and attachment_section(nxt) is None:
                name = f"{name} {nxt}"  # "附：" then the form's title on its own line
        return 1, name
    if in_article and closing and heading_level(line) is None and article_label(line) is None \
            and title_like(line) and not _is_regulation_title(line.strip(), text, paras, idx):
        return 0, line.strip()
    return None


def _is_regulation_title(line: str, text: str, paras: list[tuple[int, int]], idx: int) -> bool:
    """A bare regulation name line (…条例（试行）) directly followed by its chapters/articles."""
    s = line.strip()
    if not REG_TITLE.match(s):
        return False
    if MD_HEADING.match(text[paras[idx][0]:paras[idx][1]]):
        return True  # "## 关于中国共产党党费收缴、使用和管理的规定"
    if idx + 1 >= len(paras):
        return False
    nxt = text[paras[idx + 1][0]:paras[idx + 1][1]].strip()
    if article_label(nxt) is not None:
        return True
    h = heading_level(nxt)
    if h is not None and (STRUCT.match(h[1]) or h[1] in BARE_PARTS):
        return True
    # "（2018年10月28日中共中央政治局会议审议批准…）" / "(中办发〔2014〕33 号)" / "（根据《…细则》编制）"
    if nxt[:1] not in "（(" or len(nxt) > 200:
        return False
    return bool(re.search(r"[0-9０-９〇一二三四五六七八九]{2,}", nxt)) or (len(nxt) <= 60 and nxt[-1:] in "）)")


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
