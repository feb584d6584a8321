"""HTML pages: the main content block, without navigation and page furniture."""
from __future__ import annotations

import codecs
import logging
import re
from pathlib import Path
from typing import Any

from indexer.ingest.decode import BOMS, CJK_RE, decode_text, finish_text
from indexer.types import IngestError, RawDocument

logger = logging.getLogger(__name__)


# =========================================================================== html

_META_CHARSET_RE = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_:.\-]+)""", re.I)
_DROP_TAGS = (
    "script", "style", "noscript", "template", "iframe", "svg", "form", "nav", "header", "footer", "aside",
    "button", "select", "textarea", "input", "object", "embed", "canvas", "link", "meta", "head",
)  # fmt: skip
_JUNK_TOKENS = {
    "nav", "navbar", "navigation", "menu", "menus", "menubar", "breadcrumb", "breadcrumbs", "crumb", "crumbs",
    "sidebar", "side", "sidenav", "footer", "foot", "header", "head", "topbar", "toolbar", "comment", "comments",
    "share", "sharing", "bdshare", "copyright", "ad", "ads", "advert", "advertisement", "banner", "related",
    "recommend", "social", "pagination", "pager", "login", "cookie", "popup", "sitemap", "subnav",
}  # fmt: skip
_JUNK_PREFIXES = ("nav", "menu", "breadcrumb", "sidebar", "footer", "header", "comment", "share", "copyright", "advert")
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "li", "ul", "ol", "dl", "dt", "dd", "table", "tbody", "thead",
    "tfoot", "tr", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "figure", "figcaption", "address",
    "center", "body", "td", "th", "hr", "fieldset", "details", "summary", "caption",
}  # fmt: skip
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_PARA_TAGS = {"p", "li", "blockquote", "pre", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6", "figcaption", "span", "font"}
_TITLE_SEP_RE = re.compile(r"\s+[-–—|｜]\s+|\s*[_｜|]\s*|\s*——\s*")
_SOFT = "\ue000"  # marks whitespace that came from the HTML source (collapsible)


def load_html(data: bytes, name: str, doc_id: str, p: Path, problems: list[str]) -> list[RawDocument]:
    text, enc = decode_html(data, name)
    body, title = html_to_text(text)
    if not body.strip():
        raise IngestError(name, "网页中没有可读的文字（只有脚本或标记） / no readable text (only scripts/markup)")
    return [RawDocument(doc_id=doc_id, text=body, title=title, source=name, kind="html", meta={"encoding": enc})]


def decode_html(data: bytes, path: str = "<bytes>") -> tuple[str, str]:
    """Decode an HTML page honouring a BOM, then a <meta charset>/http-equiv charset, else decode_bytes; (text, enc)."""
    if not any(data.startswith(bom) for bom, _ in BOMS):
        m = _META_CHARSET_RE.search(data[:8192])
        if m:
            declared = m.group(1).decode("ascii", "ignore").lower()
            try:
                enc = codecs.lookup(declared).name
            except LookupError:
                enc = ""
            if enc in ("gb2312", "gbk", "hz") or declared in ("gb2312", "gbk", "x-gbk", "cp936"):
                enc = "gb18030"  # superset; pages labelled gb2312 routinely use GBK characters
            if enc.startswith(("utf-16", "utf-32")):
                enc = ""  # the label matched as ASCII bytes, so the page is not UTF-16/32; a real one has a BOM
            western = enc in ("latin-1", "iso8859-1", "cp1252", "ascii") or enc.startswith("iso8859")
            if enc and not western:  # a Western label is often wrong for Chinese pages: let decode_bytes check
                try:
                    return finish_text(data.decode(enc), path), enc
                except UnicodeDecodeError:
                    logger.info("%s: declared charset %s does not fit the bytes; guessing", path, declared)
    return decode_text(data, path)


def html_to_text(html: str) -> tuple[str, str | None]:
    """Extract the main text of an HTML page as lines ("#" headings, " | " table rows) and its title."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    raw_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    body = soup.body or soup
    for el in body.find_all(["script", "style", "noscript", "template"]):
        el.decompose()
    total = _nonlink_cjk(body) or 1
    main_el = _pick_main_tag(body)

    doomed = []
    for el in body.find_all(True):
        if _is_junk(el, main_el) and not _protected(el, main_el, total):
            doomed.append(el)
    for el in doomed:
        if not el.decomposed:
            el.decompose()

    root = main_el if main_el is not None and not main_el.decomposed else _densest_block(body)
    pieces: list[str] = []
    _render(root, pieces)
    text = _join_pieces(pieces)
    return text, _html_title(raw_title, soup)


def _cjk_len(el: Any) -> int:
    return len(CJK_RE.findall(el.get_text()))


def _text_len(el: Any) -> int:
    return len(re.sub(r"\s", "", el.get_text()))


def _pick_main_tag(body: Any) -> Any:
    """<article>, else <main>, else [role=main] — if it holds a real share of the page's text."""
    total_chars = _text_len(body) or 1
    for finder in (lambda: body.find_all("article"), lambda: body.find_all("main"), lambda: body.find_all(attrs={"role": "main"})):
        cands = finder()
        if not cands:
            continue
        best = max(cands, key=_text_len)
        n = _text_len(best)
        if n >= 200 or n >= 0.3 * total_chars:
            return best
    return None


def _is_junk(el: Any, main_el: Any) -> bool:
    """Navigation/boilerplate by tag, id/class names, or being hidden."""
    name = el.name
    if name in ("body", "html", "article", "main") or el is main_el:
        return False
    if name in _DROP_TAGS:
        if name == "header" and el.find(list(_HEADINGS)) is not None and _inside(el, main_el):
            return False  # <article><header><h1>…</h1></header>: the article's own title
        return True
    attrs = el.attrs or {}
    if "hidden" in attrs or str(attrs.get("aria-hidden", "")).lower() == "true":
        return True
    style = str(attrs.get("style", "")).replace(" ", "").lower()
    if "display:none" in style or "visibility:hidden" in style:
        return True
    if attrs.get("role") in ("navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar"):
        return True
    names = []
    for key in ("id", "class"):
        v = attrs.get(key)
        if v:
            names.append(" ".join(v) if isinstance(v, (list, tuple)) else str(v))
    if not names:
        return False
    raw = re.sub(r"([a-z])([A-Z])", r"\1 \2", " ".join(names)).lower()
    for tok in re.split(r"[^a-z0-9]+", raw):
        if tok and (tok in _JUNK_TOKENS or tok.startswith(_JUNK_PREFIXES)):
            return True
    return False


def _protected(el: Any, main_el: Any, total_cjk: int) -> bool:
    """Never drop the main element's ancestors, or a wrapper (ASP.NET <form>, …) holding most of the page's prose."""
    if _inside(main_el, el):
        return True
    if el.name in ("script", "style", "noscript", "template", "iframe", "svg"):
        return False
    own = _nonlink_cjk(el)
    return own > 0 and own >= 0.5 * total_cjk


def _inside(el: Any, ancestor: Any) -> bool:
    """True if ancestor (by identity) is a proper ancestor of el."""
    if el is None or ancestor is None:
        return False
    return any(p is ancestor for p in el.parents)


def _densest_block(body: Any) -> Any:
    """The block that directly holds the most non-link Chinese text (a nav list scores nothing: it is all links)."""
    from bs4 import NavigableString

    scores: dict[int, float] = {}
    tags: dict[int, Any] = {}

    def credit(el: Any, n: float) -> None:
        if el is None:
            return
        scores[id(el)] = scores.get(id(el), 0.0) + n
        tags[id(el)] = el

    def block_of(el: Any) -> Any:
        while el is not None and el.name not in _BLOCK_TAGS:
            el = el.parent
        return el

    for s in body.find_all(string=True):
        if type(s) is not NavigableString:
            continue
        n = len(CJK_RE.findall(s)) + len(re.findall(r"[A-Za-z0-9]+", s))
        if n == 0 or s.find_parent("a") is not None:
            continue
        n += 3 * len(re.findall(r"[，。；！？,.;]", s))  # prose has punctuation, menus do not
        block = block_of(s.parent)
        if block is None:
            continue
        container = block_of(block.parent) if block.name in _PARA_TAGS and block is not body else block
        if container is None:
            container = block
        credit(container, n)
        credit(block_of(container.parent) if container is not body else None, n / 2)
    if not scores:
        return body
    best = tags[max(scores, key=lambda k: scores[k])]
    # Content split over sibling blocks: climb while the parent holds much more prose and few links.
    while best is not body and best.parent is not None and best.parent.name not in ("html", "[document]"):
        parent = best.parent
        mine, theirs = _nonlink_cjk(best), _nonlink_cjk(parent)
        if theirs and mine < 0.66 * theirs and _link_density(parent) < 0.35:
            best = parent
        else:
            break
    return best


def _nonlink_cjk(el: Any) -> int:
    return _cjk_len(el) - sum(_cjk_len(a) for a in el.find_all("a"))


def _link_density(el: Any) -> float:
    total = _text_len(el)
    return sum(_text_len(a) for a in el.find_all("a")) / total if total else 0.0


def _render(node: Any, out: list[str]) -> None:
    """Append text pieces of node; "\\n" marks a block boundary, _SOFT a collapsible source whitespace run."""
    from bs4 import NavigableString

    for child in node.children:
        if isinstance(child, NavigableString):
            if type(child) is NavigableString:
                out.append(re.sub(r"[ \t\r\n\f]+", _SOFT, str(child)))
            continue
        name = child.name
        if name == "br":
            out.append("\n")
        elif name in _HEADINGS:
            inner: list[str] = []
            _render(child, inner)
            line = _join_pieces(inner).replace("\n", " ").strip()
            if line:
                out.extend(["\n", "#" * _HEADINGS[name] + " " + line, "\n"])
        elif name == "pre":
            out.extend(["\n", child.get_text().strip("\n"), "\n"])
        elif name == "table":
            out.append("\n")
            _render_table(child, out)
            out.append("\n")
        elif name in _BLOCK_TAGS:
            out.append("\n")
            _render(child, out)
            out.append("\n")
        elif name == "img":
            continue
        else:
            _render(child, out)


def _render_table(table: Any, out: list[str]) -> None:
    """Data tables: one " | " line per row. Layout tables (cells holding blocks or long text): cells as blocks."""
    rows = [tr for tr in table.find_all("tr") if tr.find_parent("table") is table]
    for tr in rows:
        cells = [c for c in tr.find_all(["td", "th"], recursive=False)]
        layout = any(
            c.find(["p", "div", "table", "ul", "ol", *_HEADINGS]) is not None or _text_len(c) > 200 for c in cells
        )
        if layout:
            for c in cells:
                out.append("\n")
                _render(c, out)
                out.append("\n")
            continue
        texts = []
        for c in cells:
            inner: list[str] = []
            _render(c, inner)
            texts.append(_join_pieces(inner).replace("\n", " ").strip())
        if any(texts):
            out.extend(["\n", " | ".join(texts), "\n"])
    # rows directly under the table handled; a table with no rows contributes nothing


def _join_pieces(pieces: list[str]) -> str:
    """Join rendered pieces: drop source line breaks between Chinese characters, collapse others, one line per block."""
    s = "".join(pieces)
    cjk = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]"
    s = re.sub(rf"(?<={cjk}){_SOFT}+(?={cjk})", "", s)
    s = re.sub(rf"{_SOFT}+", " ", s)
    lines = [re.sub(r"[ \t]+", " ", ln).strip() for ln in s.split("\n")]
    return "\n".join(ln for ln in lines if ln)


def _html_title(raw_title: str, soup: Any) -> str | None:
    """<title> without the site-name suffix (or the page's <h1> when the title contains it), else the first <h1>."""
    h1 = soup.find("h1")
    h1_text = " ".join(h1.get_text(" ", strip=True).split()) if h1 is not None else ""
    raw_title = " ".join(raw_title.split())
    if raw_title:
        if h1_text and len(h1_text) >= 2 and h1_text in raw_title:
            return h1_text
        parts = [x.strip() for x in _TITLE_SEP_RE.split(raw_title) if x and x.strip()]
        if parts and len(parts[0]) >= 2:
            return parts[0]
        return raw_title
    return h1_text or None
