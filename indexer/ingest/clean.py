"""Clean decoded text into the text users read: no site boilerplate, normalised spaces, repaired paragraphs.

Output convention: one paragraph per line, paragraphs separated by a single ``"\\n"``, no blank
lines, no leading/trailing whitespace on any line. Passages (see :mod:`indexer.ingest.split`) are exact
slices of this text, so offsets stay simple.
"""
from __future__ import annotations

import logging
import re

from indexer.text.numerals import NUMERALS
from indexer.text.structure import article_label, heading_level, is_pseudo_md_heading

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- character level
_NEWLINES = re.compile(r"\r\n|[\r\u2028\u2029\x0b\x0c\x85]")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\u00ad]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")
_SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")

# "wide" characters: CJK ideographs, CJK/full-width punctuation and the quotes/dashes Chinese text uses
_W = "\u2e80-\u2fff\u3001-\u303f\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\u201c\u201d\u2018\u2019\u2026\u2014\u00b7"
_CJK_SPACE = re.compile(
    rf"(?<=[{_W}]) (?=[{_W}0-9,.;:!?)])|(?<=[{_W}0-9,.;:!?(]) (?=[{_W}])"
)
_STRUCT_PREFIX = re.compile(rf"^((?:#{{1,6}} )?(?:\*\*)?第[{NUMERALS}]+(?:[编章节条]|部分|阶段)(?:\*\*)?) (?=\S)")

# ---------------------------------------------------------------- boilerplate
# a line containing one of these (and not long) is a download/copyright notice of a document-sharing site
_NOTICE_PHRASES = (
    "下载文档前请自行甄别", "仅部分预览", "如文档侵犯您的权益", "平台不提供额外的编辑", "人工客服工作时间",
    "可反馈申请退款", "本站不保证该用户上传的文档", "下载后可编辑", "下载券", "还剩", "继续阅读",
    "全文阅读已结束", "阅读已结束", "如要提取文档中的内容", "VIP专享", "文库VIP", "本文档由",
    "侵权请联系", "如有侵权", "免费下载", "点击下载", "付费下载", "文档下载", "下载本文档",
    "原创力文档", "道客巴巴", "豆丁网", "百度文库", "淘豆网", "人人文库", "文档分类",
    "我要纠错", "扫一扫在手机打开", "责任编辑：",
)
_NOTICE_SHORT = {"我要纠错": 40, "扫一扫在手机打开": 40, "责任编辑：": 30}  # only in short lines
_NOTICE_MAX_LEN = 160
_NOTICE_NEEDS_CONTEXT = {
    "还剩": re.compile(r"还剩\s*\d+\s*页"),
    "继续阅读": re.compile(r"^(点击)?继续阅读|继续阅读[>》]*$"),
    "如有侵权": re.compile(r"如有侵权.{0,12}(联系|删除)"),
}
# lone lines that are site furniture
_LONE_LINES = {
    "合集下载", "相关文档", "最新文档", "相关推荐", "下载文档", "猜你喜欢", "热门文档", "精选文档", "相关搜索",
    "立即下载", "免费下载", "下载", "收藏", "分享", "举报", "打印", "展开", "展开全文", "阅读全文", "查看全文",
    "点击查看更多", "查看更多", "加入VIP", "上传文档", "您可能关注的文档", "更多相关文档", "相关文章", "推荐阅读",
    "热门推荐", "为您推荐", "回到顶部", "返回顶部", "分享到", "分享到：", "上一篇", "下一篇", "文档评论", "评论",
    "关闭", "全屏", "预览", "TOP",
}
# lone lines after which a site lists other documents' titles
_TAIL_MARKERS = {"相关文档", "最新文档", "相关推荐", "猜你喜欢", "热门文档", "精选文档", "相关搜索", "您可能关注的文档",
                 "更多相关文档", "相关文章", "推荐阅读", "热门推荐", "为您推荐", "相关稿件", "相关新闻", "相关阅读"}
_PAGE_LINE = re.compile(
    r"^(第\s*\d+\s*页\s*(?:[,，/／、]?\s*共\s*\d+\s*页)?"
    r"|共\s*\d+\s*页\s*(?:[,，/／、]?\s*第\s*\d+\s*页)?"
    r"|[-—–－]\s*\d{1,4}\s*[-—–－]"
    r"|[Pp]age\s*\d+(?:\s*(?:of|/)\s*\d+)?"
    r"|\d{1,4}\s*/\s*共?\s*\d{1,4}\s*页)$"
)
_LIST_NUMBER = re.compile(r"^(?:\d+\s*[.、．)]\s*)+")
# website footer lines (gov.cn style): whole tail blocks holding several of these are dropped
_FOOTER_PHRASES = ("ICP备", "公网安备", "版权所有", "网站地图", "网站声明", "联系我们", "关于本网", "关于我们",
                   "回到顶部", "返回顶部", "主办单位", "承办单位", "运行维护单位", "网站标识码", "Copyright", "©")
_IMAGE_LINE = re.compile(r"^(!\[[^\]]*\]\([^)]*\)\s*)+$")
_EMPTY_MD = re.compile(r"^#{1,6}$|^(\*\*|__)\s*(\*\*|__)$|^[-*_]{3,}$")

# ---------------------------------------------------------------- paragraph repair
_END_OK = set("。！？；：!?;:…”’」』）)】〕》〉\"'.|*_`>-=—")
_ITEM_START = re.compile(
    rf"^([-*+>|\[]|\d+[.、．)]|[（(][{NUMERALS}]+[）)]|[{NUMERALS}]+、|[①-⑳]|!\[|```|#)"
)
_MD_BLOCK = re.compile(r"^([-*+>#\[]|!\[|```)")
_COMMA = re.compile(r"[，,]")
# a short line cut by a page break ends on a word that cannot end a title or sentence
_DANGLING = set("的地得和与及或对在把将被让使是从向于以而并但要由给同跟之其即若如就都也还又再")
_INDENT = re.compile(r"^(\u3000|[ \u00a0]{2,}|\t)")
# a list label left alone on its line by the converter ("二、" then the item's text on the next line)
_BARE_LABEL = re.compile(rf"^(?:[{NUMERALS}]+、|[（(][{NUMERALS}]+[）)]|[0-9０-９]{{1,2}}[.、．])$")


def _normalise_line(line: str) -> str:
    """Collapse spaces, drop spaces inside Chinese text, keep one space after 第X章/条 labels."""
    line = _SPACES.sub(" ", line).strip()
    if " " not in line:
        return line
    m = _STRUCT_PREFIX.match(line)
    if m:
        head = _CJK_SPACE.sub("", m.group(1))
        rest = _CJK_SPACE.sub("", line[m.end():])
        return f"{head} {rest}"
    return _CJK_SPACE.sub("", line)


def _plain(line: str) -> str:
    """A line reduced for comparisons: no markdown heading/bold marks, no spaces."""
    line = re.sub(r"^#{1,6}\s*", "", line.strip())
    line = line.strip("*_ ")
    return re.sub(r"\s+", "", line)


def _is_notice(line: str) -> bool:
    """True for a download/copyright notice, lone site-furniture line or page footer."""
    core = _LIST_NUMBER.sub("", line).strip()
    if not core:
        return False
    if core in _LONE_LINES or core.rstrip("：:>》") in _LONE_LINES:
        return True
    if _PAGE_LINE.match(core):
        return True
    if _IMAGE_LINE.match(core) or _EMPTY_MD.match(core):
        return True
    if len(core) <= _NOTICE_MAX_LEN:
        for phrase in _NOTICE_PHRASES:
            if phrase in core and len(core) <= _NOTICE_SHORT.get(phrase, _NOTICE_MAX_LEN):
                ctx = _NOTICE_NEEDS_CONTEXT.get(phrase)
                if ctx is None or ctx.search(core):
                    return True
    return False


def _is_footer(line: str) -> bool:
    return len(line) <= 120 and any(p in line for p in _FOOTER_PHRASES)


def _short_plain(line: str) -> bool:
    return len(line) <= 30 and not re.search(r"[。！？!?]", line)


def _title_line(line: str) -> bool:
    return len(line) <= 80 and not re.search(r"[。！？!?]", line)


def _drop_tail_blocks(lines: list[str]) -> list[str]:
    """Drop a trailing 'related documents' list and a trailing website footer/navigation block."""
    idx = [i for i, l in enumerate(lines) if l]
    # website footer: a tail of short lines holding at least two footer lines
    k = len(idx)
    footers = 0
    while k > 0 and (_short_plain(lines[idx[k - 1]]) or _is_footer(lines[idx[k - 1]])):
        footers += _is_footer(lines[idx[k - 1]])
        k -= 1
    if footers >= 2 and k < len(idx):
        lines = lines[: idx[k]]
        idx = idx[:k]
    # related-document lists: from a marker line on, only title-like lines (no sentence end)
    k = len(idx)
    cut = None
    while k > 0 and _title_line(lines[idx[k - 1]]):
        if _LIST_NUMBER.sub("", lines[idx[k - 1]]).strip() in _TAIL_MARKERS:
            cut = idx[k - 1]
        k -= 1
    if cut is not None:
        lines = lines[:cut]
    return lines


def _is_title_like(line: str) -> bool:
    s = _plain(line)
    if not (1 <= len(s) <= 60):
        return False
    if s[-1] in "。！？；;!?，,、：:" or re.search(r"[。！？!?]", s):
        return False
    if article_label(s) is not None or _ITEM_START.match(s):
        return False
    h = heading_level(s)
    return h is None or line.lstrip().startswith("#")


def _unmark_pseudo_heading(line: str) -> str:
    """'## 第一条 …' / '### 2、自费出国半年以上的；' are paragraphs, not headings: drop the marker."""
    m = re.match(r"^#{1,6} +(.*)$", line)
    if m and is_pseudo_md_heading(m.group(1)):
        return m.group(1)
    return line


def _no_join_start(line: str) -> bool:
    """A line that must start its own paragraph."""
    return bool(_ITEM_START.match(line)) or heading_level(line) is not None or article_label(line) is not None


def _joins_bare_label(prev: str, nxt: str) -> bool:
    """True if prev is a lone list label ("二、") and nxt is the text of that item."""
    if not prev or not nxt or not _BARE_LABEL.match(prev):
        return False
    if _no_join_start(nxt) or _MD_BLOCK.match(nxt) or "|" in nxt:
        return False
    return not re.match(r"[0-9０-９.．]", nxt)  # "1." + "5倍" would read as a number


def _can_join(prev: str, nxt: str) -> bool:
    """True if prev was cut mid-sentence (page break) and nxt carries on."""
    if _joins_bare_label(prev, nxt):
        return True
    if not prev or not nxt or prev[-1] in _END_OK or prev[-1] == "\\":
        return False
    if heading_level(prev) is not None or _MD_BLOCK.match(prev) or _no_join_start(nxt) or "|" in prev or "|" in nxt:
        return False
    if len(prev) <= 40 and not (_COMMA.search(prev) and prev[-1] in _DANGLING):
        return False  # short title-ish line (a subtitle, a name, a summary line)
    if len(nxt) <= 40 and not re.search(r"[。！？；：!?;:…，,]", nxt):
        return False  # nxt is a title-ish line of its own
    if len(nxt) <= 8 and nxt[-1] in "：:":
        return False  # "同志们："
    if len(prev) >= 4 and prev[:4] == nxt[:4]:
        return False  # parallel lines of a list: "习近平说，…" / "习近平说，…"
    return True


def _join(prev: str, nxt: str) -> str:
    if re.match(r"[A-Za-z0-9]", prev[-1]) and re.match(r"[A-Za-z0-9]", nxt[0]):
        return f"{prev} {nxt}"
    return prev + nxt


def _repair_paragraphs(lines: list[tuple[str, bool]]) -> list[str]:
    """Join lines broken at page boundaries; blank lines between the halves do not stop the repair.

    ``lines`` holds (line, indented): a line the source indented (U+3000, 2+ spaces) starts a paragraph.
    """
    out: list[str] = []
    for line, indented in lines:
        if not line:
            continue
        if out and (not indented or _joins_bare_label(out[-1], line)) and _can_join(out[-1], line):
            out[-1] = _join(out[-1], line)
        else:
            out.append(line)
    return out


def clean_text(text: str, title: str | None = None) -> tuple[str, str]:
    """Return (title, cleaned text); the title is taken from the first title-like line when not given."""
    if not isinstance(text, str):
        raise TypeError(f"clean_text needs str, got {type(text).__name__}")
    text = _NEWLINES.sub("\n", text)
    text = _ZERO_WIDTH.sub("", text)
    text = _CONTROL.sub("", text)
    raw = text.split("\n")
    indented = [bool(_INDENT.match(l)) for l in raw]
    lines = [_normalise_line(l) for l in raw]
    lines = _drop_tail_blocks(lines)
    lines = ["" if _is_notice(l) else l for l in lines]

    if title is not None:
        title = _normalise_line(re.sub(r"^#{1,6}\s*", "", _NEWLINES.sub(" ", title)).strip("*_ \n"))
    if not title:
        title = None
        for i, l in enumerate(lines):
            if l:
                if _is_title_like(l):
                    title = _normalise_line(re.sub(r"^#{1,6}\s*", "", l).strip("*_ "))
                    lines[i] = ""
                break
    if title:
        key = _plain(title)
        lines = ["" if l and _plain(l) == key else l for l in lines]

    kept = [(_unmark_pseudo_heading(l), ind) for l, ind in zip(lines, indented) if l]
    body = "\n".join(_repair_paragraphs(kept))
    logger.debug("cleaned %d -> %d chars, title=%r", len(text), len(body), title)
    return title or "", body
