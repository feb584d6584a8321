"""What a question asks for, and whether a sentence holds that kind of answer (issue 22, item 2).

多久 / 多长时间 / 几年 ask for a period or a frequency (一般每月召开1次, 预备期为一年); 多少 / 几名 / 比例 / 标准 for a
number or a rate; 是什么 / 指什么 / 包括哪些 for a definition or a list; 能不能 / 可以…吗 / 是否 for a permission or
prohibition (可以 / 应当 / 不得); 誓词 / 原文 / 全文 for the text itself (a quotation). A passage whose best sentence
holds the kind of answer asked for is a likelier answer than one that only shares the question's words; and so is a
passage whose subject (its heading, its first clause) is the question's focus term rather than a passing mention.
"""
from __future__ import annotations

import re
from functools import lru_cache

from indexer.text.analyzer import fold, query_terms
from indexer.text.cite import cited_document

PERIOD, NUMBER, DEFINITION, PERMISSION, VERBATIM = "period", "number", "definition", "permission", "verbatim"

_NUM = r"[0-9０-９一二三四五六七八九十两半百千几]"
_ASK = [
    (VERBATIM, re.compile(r"誓词|原文|全文|怎么写的|怎么说的|原话")),
    (PERIOD, re.compile(r"多久|多长时间|多长|几年|几个月|多少天|多少年|多少个月|多少时间|期限是|任期|多少日|几天|"
                        r"多少个工作日|多少周|多少小时|多少学时|什么时候|何时|几次|多少次|多频繁|隔多久|每隔")),
    (PERMISSION, re.compile(r"能不能|能否|可不可以|可否|是否|允许|准许|可以.{0,12}吗|能.{0,12}吗|要不要|需不需要|"
                            r"必须.{0,12}吗|应不应该|该不该|有没有权")),
    (NUMBER, re.compile(r"多少|几名|几人|几个|几位|比例|标准|多大|百分之|多高|几级|额度|数额")),
    (DEFINITION, re.compile(r"是什么|指什么|什么是|何谓|包括哪些|有哪些|包括什么|哪些|含义|定义|主要内容|内容是")),
]
_HOLDS = {
    PERIOD: re.compile(rf"{_NUM}+\s*(?:个)?\s*(?:年|月|天|日|周|星期|季度|小时|学时|工作日)|每(?:年|季度|半年|月|周|届)|"
                       r"(?:一般|至少|不少于|不超过|不得超过|最长|最短)(?:每)?[^，。；]{0,6}(?:年|月|天|日|次)|期限|任期|随时"),
    NUMBER: re.compile(rf"{_NUM}+\s*(?:%|％|名|人|个|元|次|票|分之|倍|级|学时|以上|以下)|百分之|比例|以上|以下|不少于|不超过|"
                       r"半数|三分之|多数"),
    DEFINITION: re.compile(r"是指|指的是|是[^，。；]{2,30}的|包括|分为|主要有|如下|[:：]\s*[（(]?[一1]|是党的|是中国"),
    PERMISSION: re.compile(r"可以|应当|不得|禁止|严禁|必须|不能|不准|允许|准许|有权|不予|不宜|须"),
    VERBATIM: re.compile(r"[“「\"][^”」\"]{20,}|如下[:：]"),
}


@lru_cache(maxsize=1024)
def question_kind(question: str) -> str | None:
    """The kind of answer a question asks for (period, number, definition, permission, verbatim), or None."""
    q = fold(question)
    for kind, pattern in _ASK:
        if pattern.search(q):
            return kind
    return None


def holds(sentence: str, kind: str | None) -> bool:
    """True when a sentence holds the kind of answer ``kind`` names."""
    return kind is not None and bool(_HOLDS[kind].search(sentence))


_QUESTION_WORDS = re.compile(r"多久|多长时间|多长|几年|几个月|多少|几名|几人|几个|几位|是什么|指什么|什么是|包括哪些|有哪些|哪些|"
                             r"能不能|能否|可不可以|可否|是否|怎么|如何|为什么|什么|吗|呢|？|\?|请问|一下")


@lru_cache(maxsize=1024)
def focus_terms(question: str) -> tuple[str, ...]:
    """The question's focus: its content words before the question word (``支委会`` in 支委会多久开一次会), longest
    first; empty when the question has no such words."""
    q = fold(question)
    m = _QUESTION_WORDS.search(q)
    head = q[: m.start()] if m and m.start() > 0 else q
    terms = [t for t in dict.fromkeys(query_terms(head)) if len(t) >= 2]
    return tuple(sorted(terms, key=len, reverse=True)[:3])


_FIRST_CLAUSE = re.compile(r"^[^，。；：:,;]{0,40}")
_ARTICLE_LABEL = re.compile(r"^第[零〇一二三四五六七八九十百千两0-9０-９]+条\s*")


def subject_of(text: str, section: str) -> str:
    """What a passage is about: its last heading that is not an article label, and its first clause."""
    heads = [h.strip() for h in section.split(">") if h.strip() and not _ARTICLE_LABEL.fullmatch(h.strip() + " ")]
    body = _ARTICLE_LABEL.sub("", text.lstrip())
    first = _FIRST_CLAUSE.match(body)
    return fold(((heads[-1] + " ") if heads else "") + (first.group(0) if first else "")).lower()


# Rank of a regulation by its kind, highest first: when two regulations state the same answer sentence, the higher
# one is cited first (党章 says 预备期为一年, and so do 发展党员工作细则 and provincial rules that quote it).
_AUTHORITY = [re.compile(r"章程$"), re.compile(r"准则$"), re.compile(r"条例$"), re.compile(r"(规定|细则|规则)$"),
              re.compile(r"(办法|规程|实施|意见|通知|决定)$")]
_LOCAL = re.compile(r"省|自治区|市|县|区委|大学|学院|学校|公司|集团")


@lru_cache(maxsize=4096)
def authority(title: str, section: str) -> int:
    """0 for 党章, then 准则, 条例, 规定/细则, 办法/规程 …, 5 for other documents; a local body's rules one lower."""
    name = _NOTE_RE.sub("", cited_document({"title": title, "section": section})[0]).strip()
    name = re.sub(r"[\s\d年版（）()]+$", "", name)
    level = next((i for i, p in enumerate(_AUTHORITY) if p.search(name)), len(_AUTHORITY))
    return level + (1 if level < len(_AUTHORITY) and _LOCAL.search(name) else 0)


_NOTE_RE = re.compile(r"[（(][^（）()]{0,16}[)）]")
