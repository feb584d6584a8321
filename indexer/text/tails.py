"""Handbook tails: what follows a regulation's last article in a compiled handbook (attachments, forms, templates,
converted tables) is not part of that article.

Compiled handbooks put 附件 1：出国（境）党员情况报备表, ``--- 表格47 ---`` table dumps, 入党志愿书 templates and
the next notice right after 《…》's last article (``第二十一条 本办法…自印发之日起执行。``); the splitter used to
append all of it to that article, so forms were cited as 《暂行办法》第四章 其他 第二十一条. These rules let the
splitter open a section of their own for such text, and let ranking recognise the section: it is demoted like other
noise and never gives the answer sentence.
"""
from __future__ import annotations

import re

from indexer.text.numerals import NUMERALS
from indexer.text.structure import enum_level

# Section names this module gives tails: 附件… 附表… 附录… 表格N.
_TAIL_NAME = re.compile(r"^(?:附件|附表|附录|表格\d)")
# "附件1：" "附件 2:" "附件3：出国（境）党员…审批表" "附：" "附件：" "附表 1" (a line that opens an attachment)
_ATTACHMENT = re.compile(rf"^\s*(附件|附表|附录)\s*([{NUMERALS}]+(?:\s*[-－—]\s*[0-9０-９]+)?)?\s*(?:[:：]\s*(.*)|\s+(.*)|$)")
_BARE_ATTACH = re.compile(r"^\s*附\s*[:：]\s*(.*)$")
_PLACEHOLDER = re.compile(r"^\s*-{2,}\s*表格\s*(\d+)\s*-{2,}\s*$")
# The article that ends a regulation: it sets the date it takes effect (…自…起施行 / 自印发之日起执行 / 试行).
_CLOSING = re.compile(r"自[^。；;]{0,40}?(?:之日)?起(?:施行|执行|试行|生效|实施)|(?:施行|执行|试行)[。．.]?\s*$")
_SENTENCE_END = re.compile(r"[。！？；!?;]")
_PROSE = re.compile(r"[。！？；!?;，,]")
_SHORT_NAME = 40


def attachment_section(line: str) -> str | None:
    """The section name a line opening an attachment or a converted table starts (``附件1 出国（境）党员情况报备表``,
    ``附件``, ``表格47``), or None for any other line."""
    s = line.strip()
    m = _PLACEHOLDER.match(s)
    if m:
        return f"表格{m.group(1)}"
    if "|" in s or "｜" in s:
        return None  # a table row (its table's placeholder opened the section)
    m = _ATTACHMENT.match(s)
    if m:
        word, number, rest = m.group(1), (m.group(2) or "").replace(" ", ""), (m.group(3) or m.group(4) or "")
        rest = rest.strip()
        if rest and (len(rest) > _SHORT_NAME or _PROSE.search(rest.rstrip("。"))):
            return None  # "附件：……，……。" is prose about an attachment, not one
        return " ".join(x for x in (word + number, rest) if x)
    m = _BARE_ATTACH.match(s)
    if m:
        rest = m.group(1).strip()
        if rest and (len(rest) > _SHORT_NAME or _PROSE.search(rest.rstrip("。"))):
            return None
        return " ".join(x for x in ("附件", rest) if x)
    return None


def closes_regulation(article_text: str) -> bool:
    """True for an article that says when its regulation takes effect (its last article in practice)."""
    first = article_text.split("\n", 1)[0]
    return bool(_CLOSING.search(first))


def title_like(line: str) -> bool:
    """A short line with no sentence end and no list number: the title of whatever follows (a form, a notice)."""
    s = line.strip().rstrip("*")
    return 2 <= len(s) <= _SHORT_NAME and not _SENTENCE_END.search(s) and enum_level(s) is None and "|" not in s


def is_tail_section(section: str) -> bool:
    """True when a passage's section path holds a tail this module named (attachment, form, converted table)."""
    return any(_TAIL_NAME.match(part.strip()) for part in section.split(">"))
