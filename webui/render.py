"""Turn untrusted document text into safe HTML: escape every segment first, then add <mark>/<strong> tags."""
from __future__ import annotations

import logging
import re
from typing import Any, Sequence

from markupsafe import Markup, escape

from indexer.text import structure
from indexer.text.cite import is_document_name
from indexer.text.numerals import NUMERALS

logger = logging.getLogger(__name__)

DOC_NAME_LEVEL = 0.5  # above every heading level the splitter gives (1 = top)

# Not structure's heading rules on purpose: whether a line is a heading is structure.heading_level's to say; this
# only strips the label off a line already taken for one (heading_question), generously -- any length, 第X条 too,
# several levels of Arabic numbering (1.2.3) -- so that the question keeps the heading's words only.
_NUMBERING_RE = re.compile(
    r"^\s*(?:#{1,6}\s*"
    rf"|第[{NUMERALS}\d]+[编章节条]\s*"
    r"|[一二三四五六七八九十]+、\s*"
    r"|[（(][一二三四五六七八九十\d]+[)）]\s*"
    r"|\d+(?:\.\d+)*[、.．]\s*)"
)


def heading_info(line: str) -> tuple[int, str]:
    """(level, heading text without markdown marks) for a heading line (1 = top), or (0, line) for body text."""
    result = structure.heading_level(line)  # (level, heading text) or None: the splitter's own rules
    if not result or result[0] <= 0:
        return 0, line
    return int(result[0]), str(result[1] or line.strip())


def heading_level(line: str) -> int:
    """Heading level of a line (1 = top), or 0 when the line is body text."""
    return heading_info(line)[0]


def article_label(line: str) -> str | None:
    """``第X条`` when the line starts a regulation article, else None."""
    label = structure.article_label(line)
    return label if label is not None and line.strip().startswith(label) else None


def _valid_spans(spans: Any, n: int) -> list[tuple[int, int]]:
    """Keep well-formed [start, end] spans inside 0..n."""
    out = []
    for span in spans or []:
        try:
            a, b = int(span[0]), int(span[1])
        except (TypeError, ValueError, IndexError):
            continue
        a, b = max(0, a), min(n, b)
        if a < b:
            out.append((a, b))
    return out


def highlight_html(text: str, highlights: Sequence[Sequence[int]] | None = None,
                   best_span: Sequence[int] | None = None, answer_class: str = "answer",
                   level: int | None = None) -> Markup:
    """Escaped ``text`` with matched-term spans in <mark> and the best answering sentence in
    ``<strong class=answer>`` (``answer_class`` ``answer-hint``: a lighter ``<span>`` for the cards below the top,
    ``level`` its ``data-level``, 1-3, the card's confidence grade)."""
    text = text or ""
    n = len(text)
    marks = _valid_spans(highlights, n)
    best = _valid_spans([best_span] if best_span else [], n)
    cuts = {0, n}
    for a, b in marks + best:
        cuts.update((a, b))
    points = sorted(cuts)
    segments: list[tuple[str, bool, bool]] = []
    for i in range(len(points) - 1):
        a, b = points[i], points[i + 1]
        marked = any(x <= a and b <= y for x, y in marks)
        answer = any(x <= a and b <= y for x, y in best)
        segments.append((text[a:b], marked, answer))
    tag = "strong" if answer_class == "answer" else "span"
    parts: list[str] = []
    i = 0
    while i < len(segments):
        answer = segments[i][2]
        j = i
        while j < len(segments) and segments[j][2] == answer:
            j += 1
        inner: list[str] = []
        for seg, marked, _ in segments[i:j]:
            piece = str(escape(seg))  # escape BEFORE any tag is added
            inner.append(f"<mark>{piece}</mark>" if marked else piece)
        joined = "".join(inner).replace("</mark><mark>", "")
        graded = f' data-level="{int(level)}"' if level is not None else ""
        parts.append(f'<{tag} class="{answer_class}"{graded}>{joined}</{tag}>' if answer else joined)
        i = j
    return Markup("".join(parts))


WHOLE_PASSAGE = 0.85  # an answer sentence covering this share of a passage's letters is the passage itself
FREQUENT_TERM = 0.6  # a term found in this share of the listed passages (3 or more) informs nothing
_LETTERS = re.compile(r"[^\W_]")
_ENUMERATION_Q = re.compile(r"哪些|哪几|几种|几类|几个|比例|标准|条件|程序|步骤|内容|包括|分别|各|多少")


def covers_passage(text: str, span: Sequence[int] | None) -> bool:
    """True when the answer span holds nearly all of the passage's letters (painting it all would mark nothing)."""
    if not span or not text:
        return False
    try:
        a, b = int(span[0]), int(span[1])
    except (TypeError, ValueError, IndexError):
        return False
    total = len(_LETTERS.findall(text))
    return bool(total) and len(_LETTERS.findall(text[max(0, a):b])) >= WHOLE_PASSAGE * total


def informative_highlights(texts: Sequence[str], highlights: Sequence[Sequence[Sequence[int]] | None]
                           ) -> list[list[tuple[int, int]]]:
    """Each passage's highlight spans without single characters and without terms that occur in most of the
    listed passages (党支部, 委员 in a list about 党支部委员会): those stripe whole paragraphs and tell nothing."""
    spans = [_valid_spans(h, len(t or "")) for t, h in zip(texts, highlights)]
    folded = [(t or "").lower() for t in texts]
    counted = len([t for t in texts if t])
    out = []
    for text, own in zip(texts, spans):
        keep = []
        for a, b in own:
            term = (text or "")[a:b].lower()
            if len(term.strip()) < 2:
                continue
            if counted >= 3 and sum(term in f for f in folded) >= FREQUENT_TERM * counted:
                continue
            keep.append((a, b))
        out.append(keep)
    return out


def enumeration_span(text: str, span: Sequence[int] | None, question: str) -> tuple[int, int] | None:
    """The answer span widened to its whole enumeration (clauses joined by ；up to the 。, with the lead-in before a
    ：) when the question asks for a list or a scale (哪些, 比例, 标准…); the span unchanged otherwise."""
    if not span:
        return None
    try:
        a, b = max(0, int(span[0])), min(len(text or ""), int(span[1]))
    except (TypeError, ValueError, IndexError):
        return None
    if a >= b or not _ENUMERATION_Q.search(question or ""):
        return (a, b)
    stops = "。！？\n"
    start = a
    while start > 0 and text[start - 1] not in stops:
        start -= 1
    end = b
    while end < len(text) and text[end - 1] not in stops:
        end += 1
    whole = text[start:end]
    if "；" not in whole and ";" not in whole:
        return (a, b)
    while start < end and text[start].isspace():
        start += 1
    return (start, end)


def _line_html(line: str, offset: int, highlight: tuple[int, int] | None) -> tuple[Markup, bool]:
    """One body line escaped, with the part of ``highlight`` (document offsets) inside it as the answer."""
    span = None
    if highlight and highlight[0] < offset + len(line) and offset < highlight[1]:
        span = (max(highlight[0], offset) - offset, min(highlight[1], offset + len(line)) - offset)
    return (highlight_html(line, None, span) if span else escape(line)), span is not None


def _lines_html(chunk: str, base: int = 0, highlight: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """Non-empty lines of a text chunk, escaped, tagged with their heading level (``第X条`` labels in bold).

    ``base`` is the chunk's offset in the document; the part of ``highlight`` (document offsets) that falls on
    a body line is wrapped as the answer sentence.
    """
    out = []
    pos = base
    for raw in chunk.split("\n"):
        line = raw.strip()
        offset = pos + (len(raw) - len(raw.lstrip()))
        pos += len(raw) + 1
        if not line:
            continue
        level, shown = heading_info(line)
        if level and _list_item(shown):  # "（五）对……做好经常性的发展党员工作。": a list item, shown as text
            level, shown = 0, line
        label = None if level else article_label(line)
        if not level and not label and len(line) <= 50 and is_document_name(line):
            level = DOC_NAME_LEVEL  # a regulation's name on its own line inside a compiled handbook
        answer = False
        if level:
            html = escape(shown)
        elif label:
            rest, answer = _line_html(line[len(label):], offset + len(label), highlight)
            html = Markup('<strong class="article-label">%s</strong>') % label + rest
        else:
            html, answer = _line_html(line, offset, highlight)
        out.append({"html": html, "level": level, "text": shown if level else line, "article": label,
                    "answer": answer})
    return out


def document_blocks(text: str, passages: Sequence[dict[str, Any]],
                    highlight: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """Split a document into blocks: passages (with their ordinal) and the text between them, escaped line by line.

    ``highlight`` (start, end offsets into ``text``) marks the answer sentence a search result pointed at.
    """
    text = text or ""
    n = len(text)
    blocks: list[dict[str, Any]] = []
    pos = 0
    ordered = sorted(passages, key=lambda p: (int(p.get("start", 0)), int(p.get("ordinal", 0))))
    for p in ordered:
        try:
            start, end, ordinal = int(p["start"]), int(p["end"]), int(p["ordinal"])
        except (KeyError, TypeError, ValueError):
            continue
        start, end = max(start, pos), min(end, n)
        if start > pos:
            gap = _lines_html(text[pos:start], pos, highlight)
            if gap:
                blocks.append({"kind": "gap", "ordinal": None, "lines": gap, "section": ""})
        # A passage fully overlapped by the previous one keeps its anchor but shows no text twice.
        lines = _lines_html(text[start:end], start, highlight) if end > start else []
        blocks.append({"kind": "passage", "ordinal": ordinal, "lines": lines, "section": p.get("section", "")})
        pos = max(pos, end)
    if pos < n:
        tail = _lines_html(text[pos:], pos, highlight)
        if tail:
            blocks.append({"kind": "gap", "ordinal": None, "lines": tail, "section": ""})
    # Heading tags by rank among the levels this document uses: its top level becomes <h2>.
    levels = sorted({line["level"] for b in blocks for line in b["lines"] if line["level"]})
    tag = {lvl: f"h{min(2 + i, 6)}" for i, lvl in enumerate(levels)}
    rank = {lvl: i + 1 for i, lvl in enumerate(levels)}
    anchor = 0
    for b in blocks:
        for line in b["lines"]:
            line["tag"] = tag.get(line["level"], "")
            line["depth"] = rank.get(line["level"], len(levels) + 1)
            if line["level"] or line["article"]:
                anchor += 1
                line["anchor"] = f"h-{anchor}"
    return blocks


def _list_item(text: str) -> bool:
    """True for a numbered list item the splitter took for a heading: over 60 characters, ending in ；, or ending
    in 。 unless it is a single-sentence 第X章 / 一、 heading (the essay's "四、……做好服务者。" is a heading)."""
    text = text.strip()
    if len(text) > 60 or text.endswith(("；", ";")):
        return True
    if text.endswith("。"):
        return not (structure.opens_part(text) and "。" not in text[:-1])
    return False


def document_outline(blocks: Sequence[dict[str, Any]], max_text: int = 40,
                     chosen: int | None = None) -> list[dict[str, Any]]:
    """The headings (编/章/节, 一、…) and articles (第X条) of a document as outline entries with anchors; the entry
    of the passage ``chosen`` (a passage ordinal), and the headings above it, are marked ``current``."""
    out: list[dict[str, Any]] = []
    current: int | None = None
    for b in blocks:
        here = b.get("kind") == "passage" and chosen is not None and b.get("ordinal") == chosen
        before = len(out)
        for line in b["lines"]:
            if not line.get("anchor"):
                continue
            if not line["article"] and _list_item(line["text"]):
                continue  # a numbered list item the splitter took for a heading, not a real heading
            text = line["article"] or line["text"]
            out.append({"anchor": line["anchor"], "depth": min(int(line["depth"]), 4),
                        "text": text if len(text) <= max_text else text[:max_text] + "…",
                        "article": bool(line["article"]), "current": False})
        if here and current is None:
            # the passage's own first heading or article, else the last entry above it
            current = before if len(out) > before else (before - 1 if before else None)
    if current is not None and current < len(out):
        out[current]["current"] = True
        depth = out[current]["depth"]
        for entry in reversed(out[:current]):  # the headings above it
            if not entry["article"] and entry["depth"] < depth:
                entry["current"] = True
                depth = entry["depth"]
    return out


def outline_groups(outline: Sequence[dict[str, Any]], min_articles: int = 12,
                   collapse_above: int = 60) -> list[dict[str, Any]]:
    """The outline grouped under its top headings (编 / 章) when it lists at least ``min_articles`` articles:
    ``[{"head": entry or None, "entries": [...], "span": "第一条–第五条", "current": bool, "open": bool}]``; one
    group otherwise. Above ``collapse_above`` articles only the current group starts open."""
    articles = sum(1 for e in outline if e["article"])
    heads = [e for e in outline if not e["article"]]
    if articles < min_articles or not heads:
        return [{"head": None, "entries": list(outline), "span": "", "current": False}]
    top = min(e["depth"] for e in heads)
    groups: list[dict[str, Any]] = []
    for e in outline:
        if not e["article"] and e["depth"] == top:
            groups.append({"head": e, "entries": [], "span": "", "current": e["current"]})
        elif groups:
            groups[-1]["entries"].append(e)
        else:
            groups.append({"head": None, "entries": [e], "span": "", "current": e["current"]})
        if e["current"] and groups:
            groups[-1]["current"] = True
    for g in groups:
        g["open"] = g["current"] or articles <= collapse_above
        arts = [e["text"] for e in g["entries"] if e["article"]]
        g["span"] = (arts[0] if len(arts) == 1 else f"{arts[0]}–{arts[-1]}") if arts else ""
    return groups


_VERB_PREFIXES = ("做好", "当好", "加强", "坚持", "推进", "发挥", "落实", "提高", "建立", "健全", "严格", "开展", "抓好",
                  "把握", "强化", "完善", "搞好", "实施", "深化", "增强", "提升", "做到", "保持", "扮演", "确保",
                  "培养", "召开", "选举", "处理")
_GENERIC_HEADINGS = {"总则", "分则", "附则", "前言", "引言", "摘要", "目录", "附件", "结语", "结束语", "参考文献"}
_SPLIT_RE = re.compile(r"[，,；;：:。！!、\s]+")


def heading_question(heading: str) -> str | None:
    """Turn a heading into a natural question (e.g. ``二、……，做好监督者`` → ``如何做好监督者？``)."""
    body = heading.strip()
    while True:
        stripped = _NUMBERING_RE.sub("", body, count=1).strip(" \t\u3000#*。.")
        if stripped == body:
            break
        body = stripped
    if not body or body in _GENERIC_HEADINGS:
        return None
    if body.endswith(("？", "?")):
        return body if len(body) <= 40 else None
    fragments = [f for f in _SPLIT_RE.split(body) if len(f) >= 2]
    if not fragments:
        return None
    verbish = [f for f in fragments if f.startswith(_VERB_PREFIXES)]
    if verbish:
        frag = verbish[-1]
        return f"如何{frag}？" if len(frag) <= 20 else None
    frag = fragments[0]
    if len(frag) > 16 or not re.search(r"[\u4e00-\u9fff]", frag):
        return None
    return f"{frag}有哪些要求？"


def example_questions(docs: Sequence[dict[str, Any]], limit: int = 4) -> list[str]:
    """A few example questions derived from the headings of indexed documents (round-robin over documents)."""
    per_doc: list[list[str]] = []
    for doc in docs:
        qs: list[str] = []
        for line in (doc.get("text") or "").split("\n"):
            level, shown = heading_info(line)
            if level and len(shown) <= 60:
                q = heading_question(shown)
                if q and q not in qs:
                    qs.append(q)
        if not qs and doc.get("title"):
            title = str(doc["title"]).strip()
            if 2 <= len(title) <= 30:
                qs.append(f"{title}的主要内容是什么？")
        if qs:
            per_doc.append(qs)
    out: list[str] = []
    depth = 0
    while len(out) < limit and any(depth < len(qs) for qs in per_doc):
        for qs in per_doc:
            if depth < len(qs) and qs[depth] not in out and len(out) < limit:
                out.append(qs[depth])
        depth += 1
    return out
