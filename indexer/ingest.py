"""Document loaders: read .txt/.md/.docx/.pdf/.html/.jsonl files into RawDocuments, decoding Chinese text safely."""
from __future__ import annotations

import codecs
import json
import logging
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .types import IngestError, RawDocument

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".txt", ".md", ".markdown", ".docx", ".pdf", ".html", ".htm", ".jsonl"}
)

DECODE_ERROR = "cannot decode as UTF-8/UTF-16/GBK text (binary file?)"

MAX_FILE_BYTES = 50 * 1024 * 1024
"""Files larger than this are refused before reading (override: PARTYQA_MAX_FILE_MB, or ``max_bytes``)."""
MAX_FILE_ENV = "PARTYQA_MAX_FILE_MB"
MAX_LINE_PROBLEMS = 20
"""At most this many per-line .jsonl problems are listed one by one; the rest are summed up in one entry."""

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_NEWLINES_RE = re.compile(r"\r\n|[\r\u2028\u2029\x0b\x0c\x85]")
_SPACE_RE = re.compile(r"\s+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Invisible characters removed from every loaded text: C0/C1 controls except \t and \n (line breaks are
# normalised first), zero-width and joiner characters, bidi marks/embeddings/isolates, soft hyphen,
# word joiner and invisible operators, BOMs inside the text, Mongolian vowel separator, interlinear marks.
_INVISIBLE_RE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufeff\ufff9-\ufffb]"
)

# =========================================================================== text decoding

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # must precede UTF-16 LE: FF FE 00 00 starts with FF FE
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_bytes(data: bytes, path: str = "<bytes>") -> str:
    """Decode file bytes to text (UTF-8/16/32 with BOM, GB18030/GBK, else a checked guess); raise IngestError if binary."""
    return _decode(data, path)[0]


def _decode(data: bytes, path: str, newlines: bool = True) -> tuple[str, str]:
    """Return (text, encoding name); the text has no BOM and (if newlines) only "\\n" line breaks."""
    if not data:
        return "", "utf-8"
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return _finish(data[len(bom) :].decode(enc), path, newlines), enc
            except UnicodeDecodeError:
                if enc.startswith("utf-32"):
                    continue  # FF FE 00 00 can also be a UTF-16 LE BOM followed by U+0000
                raise IngestError(path, f"starts with a {enc.upper()} byte-order mark but is not valid {enc.upper()}")
    if b"\x00" in data:
        enc = _bomless_utf16(data)
        if enc:
            try:
                return _finish(data.decode(enc), path, newlines), enc
            except UnicodeDecodeError:
                pass
        data = _drop_stray_nuls(data, path)
    try:
        return _finish(data.decode("utf-8"), path, newlines), "utf-8"
    except UnicodeDecodeError:
        pass
    mixed = _decode_mixed(data, path)
    if mixed is not None:
        return _finish(mixed, path, newlines), "utf-8+gb18030"
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        pass
    else:
        if _plausible_chinese(text):
            return _finish(text, path, newlines), "gb18030"
    # A few bad bytes (a truncated character, a stray byte) in otherwise clean UTF-8 or GBK text.
    for enc in ("utf-8", "gb18030"):
        text = data.decode(enc, errors="replace")
        bad = text.count("\ufffd")
        non_ascii = _count_non_ascii(text) - bad
        if bad <= max(2, len(text) // 500) and non_ascii >= 20 * bad and (enc == "utf-8" or _plausible_chinese(text)):
            logger.warning("%s: %d undecodable byte sequence(s) in %s text replaced with U+FFFD", path, bad, enc)
            return _finish(text, path, newlines), enc
    del text
    return _decode_guess(data, path, newlines)


def _drop_stray_nuls(data: bytes, path: str) -> bytes:
    """Remove NUL padding at the end (an incomplete download) or a rare stray NUL; refuse binary data."""
    trimmed = data.rstrip(b"\x00")
    if b"\x00" not in trimmed:
        logger.warning("%s: %d trailing NUL bytes removed (incomplete download?)", path, len(data) - len(trimmed))
        return trimmed
    nuls = data.count(b"\x00")
    if nuls <= max(2, len(data) // 2000):
        logger.warning("%s: %d stray NUL byte(s) removed", path, nuls)
        return data.replace(b"\x00", b"")
    raise IngestError(path, DECODE_ERROR)


# Two UTF-8 encoded CJK characters in a row: a hint that part of a non-UTF-8 file is UTF-8.
_UTF8_CJK_PAIR_RE = re.compile(rb"(?:[\xe4-\xe9][\x80-\xbf][\x80-\xbf]){2}")


def _decode_mixed(data: bytes, path: str) -> str | None:
    """Decode a file that is part UTF-8, part GBK (e.g. two files concatenated) line by line; None if it is not.

    Each line is strict UTF-8, else UTF-8 with at most two damaged characters (a cut character), else strict
    GB18030. The file counts as mixed only if it has both non-ASCII UTF-8 lines and GB18030 lines, and the
    GB18030 lines read as common Chinese (never mojibake). A line that itself mixes both encodings is
    decoded as GB18030 (rare: the two parts of a concatenation are normally separated by a line break).
    """
    if not _has_utf8_line(data):
        return None
    parts: list[str] = []
    gbk_lines: list[str] = []
    utf8_lines = repaired = 0
    for line in data.split(b"\n"):
        try:
            s = line.decode("utf-8")
            if not s.isascii():
                utf8_lines += 1
            parts.append(s)
            continue
        except UnicodeDecodeError:
            pass
        s = line.decode("utf-8", errors="replace")
        bad = s.count("\ufffd")
        if bad <= 2 and _count_non_ascii(s) - bad >= 10 * bad:
            repaired += bad
            utf8_lines += 1
            parts.append(s)
            continue
        try:
            s = line.decode("gb18030")
        except UnicodeDecodeError:
            return None
        gbk_lines.append(s)
        parts.append(s)
    if not utf8_lines or not gbk_lines or not _plausible_chinese("\n".join(gbk_lines)):
        return None
    logger.warning("%s: mixed encodings: %d line(s) UTF-8, %d line(s) GBK/GB18030%s", path, utf8_lines,
                   len(gbk_lines), f", {repaired} damaged character(s) replaced with U+FFFD" if repaired else "")
    return "\n".join(parts)


def _has_utf8_line(data: bytes) -> bool:
    """True if some line holding UTF-8 encoded Chinese is valid UTF-8 (scans without copying the file).

    Looks for the UTF-8 bytes of "，", "。" and "的" first (bytes.find is fast); a small file is also
    scanned for any two UTF-8 encoded CJK characters in a row (a regex, ~35 MB/s).
    """
    for marker in _UTF8_MARKERS:
        if _marked_line_is_utf8(data, lambda pos, m=marker: _find_span(data, m, pos)):
            return True
    if len(data) <= 8 * 1024 * 1024:
        return _marked_line_is_utf8(data, lambda pos: _regex_span(data, pos))
    return False


_UTF8_MARKERS = ("，".encode(), "。".encode(), "的".encode())


def _find_span(data: bytes, marker: bytes, pos: int) -> tuple[int, int] | None:
    i = data.find(marker, pos)
    return None if i < 0 else (i, i + len(marker))


def _regex_span(data: bytes, pos: int) -> tuple[int, int] | None:
    m = _UTF8_CJK_PAIR_RE.search(data, pos)
    return None if m is None else m.span()


def _marked_line_is_utf8(data: bytes, find: Callable[[int], tuple[int, int] | None]) -> bool:
    """Check each line holding a hit of ``find`` until one decodes as strict UTF-8."""
    pos = 0
    while True:
        span = find(pos)
        if span is None:
            return False
        start = data.rfind(b"\n", 0, span[0]) + 1
        end = data.find(b"\n", span[1])
        end = len(data) if end < 0 else end
        try:
            data[start:end].decode("utf-8")
            return True
        except UnicodeDecodeError:
            pos = end + 1


def _count_non_ascii(text: str) -> int:
    """Number of non-ASCII characters, without building a list of them (big files)."""
    return len(text) - len(text.encode("ascii", "ignore"))


def _decode_guess(data: bytes, path: str, newlines: bool = True) -> tuple[str, str]:
    """Last resort: charset_normalizer, accepted only when the result is plausibly text (never mojibake)."""
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        raise IngestError(path, DECODE_ERROR)
    text = str(best)
    single_byte = len(text) == len(data)
    if best.chaos > 0.15 or (single_byte and not _plausible_western(text)):
        logger.debug("%s: rejected charset guess %s (chaos %.2f)", path, best.encoding, best.chaos)
        raise IngestError(path, DECODE_ERROR)
    logger.info("%s: decoded as %s (guessed)", path, best.encoding)
    return _finish(text, path, newlines), best.encoding


def _finish(text: str, path: str, newlines: bool = True) -> str:
    """Strip a BOM, normalise newlines and refuse text that is mostly control characters."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if newlines:
        text = _normalise_newlines(text)
    elif "\r" in text:
        text = text.replace("\r\n", "\n")
    if text and _CONTROL_RE.search(text):
        controls = len(text) - len(_CONTROL_RE.sub("", text))  # counted without a list of matches (big files)
        if "\x00" in text or controls > max(2, len(text) // 100):
            raise IngestError(path, DECODE_ERROR)
    return text


def _bomless_utf16(data: bytes) -> str | None:
    """Guess UTF-16 without a BOM from where the NUL bytes sit (ASCII characters have a zero high byte)."""
    if len(data) < 4 or len(data) % 2:
        return None
    pairs = len(data) // 2
    even = data[0::2].count(0)
    odd = data[1::2].count(0)
    if odd >= pairs * 0.3 and even <= odd * 0.05:
        return "utf-16-le"
    if even >= pairs * 0.3 and odd <= even * 0.05:
        return "utf-16-be"
    return None


def _plausible_chinese(text: str) -> bool:
    """True if non-ASCII characters are mostly common (GB2312) Chinese characters and punctuation.

    Western text misread as GBK lands in the GBK extension areas (trail bytes 0x40-0x7E), Big5 half so.
    Counted with the codecs, not per character, so a 50 MB file costs no list of millions of strings.
    """
    if len(text) > 400_000:  # big files: 100 spread windows are plenty
        step = len(text) // 100
        text = "".join(text[i : i + 4000] for i in range(0, len(text), step))
    visible = _SPACE_RE.sub("", text)
    ascii_chars = len(visible.encode("ascii", "ignore"))
    non_ascii = len(visible) - ascii_chars
    if not non_ascii:
        return True
    common = (len(visible.encode("gb2312", "ignore")) - ascii_chars) // 2  # GB2312 characters take 2 bytes
    return common >= 0.85 * non_ascii


def _plausible_western(text: str) -> bool:
    """True if a single-byte decoding looks like Western text (mostly ASCII, accents are letters)."""
    if len(text) > 400_000:
        step = len(text) // 100
        text = "".join(text[i : i + 4000] for i in range(0, len(text), step))
    visible = [ch for ch in text if not ch.isspace()]
    non_ascii = [ch for ch in visible if ord(ch) > 127]
    if not visible:
        return True
    letters = sum(1 for ch in non_ascii if ch.isalpha())
    return len(non_ascii) <= 0.3 * len(visible) and letters >= 0.8 * len(non_ascii)


# =========================================================================== entry points


def max_file_bytes() -> int:
    """The size limit for one file: PARTYQA_MAX_FILE_MB (megabytes, may be fractional; 0 = no limit) or 50 MB."""
    raw = os.environ.get(MAX_FILE_ENV, "").strip()
    if not raw:
        return MAX_FILE_BYTES
    try:
        mb = float(raw)
    except ValueError:
        logger.warning("%s=%r is not a number of megabytes; using %d MB", MAX_FILE_ENV, raw, MAX_FILE_BYTES >> 20)
        return MAX_FILE_BYTES
    return int(mb * 1024 * 1024) if mb > 0 else 0


def _mb(n: int) -> str:
    """A byte count in megabytes for messages: 76758016 -> "73.2", 52428800 -> "50"."""
    return f"{n / 1024 / 1024:.1f}".removesuffix(".0")


def _too_big(name: str, size: int, limit: int) -> IngestError:
    return IngestError(name, f"file is {_mb(size)} MB, over the {_mb(limit)} MB limit ({MAX_FILE_ENV})")


def load_file(path: str | Path, doc_id: str | None = None, max_bytes: int | None = None) -> list[RawDocument]:
    """Load one file into RawDocuments (one, or one per valid line for .jsonl); raise IngestError naming the file.

    Invalid .jsonl lines are skipped and logged as warnings; use :func:`load_file_checked` to get them.
    """
    docs, problems = load_file_checked(path, doc_id=doc_id, max_bytes=max_bytes)
    for problem in problems:
        logger.warning("%s: %s (line skipped)", path, problem)
    return docs


def load_file_checked(
    path: str | Path, doc_id: str | None = None, max_bytes: int | None = None
) -> tuple[list[RawDocument], list[str]]:
    """Load one file; return (documents, problems), problems being skipped .jsonl lines ("line 7: invalid JSON (...)").

    Raise IngestError(path, reason) when nothing usable can be read: unsupported type, missing, over the size
    limit (``max_bytes``, default :func:`max_file_bytes`; checked before reading), empty, undecodable, corrupt,
    no text, or a .jsonl with no valid line. Texts and titles come back without control and zero-width characters.
    """
    p = Path(path)
    name = str(path)
    ext = p.suffix.lower()
    loader = _LOADERS.get(ext)
    if loader is None:
        raise IngestError(name, _unsupported_reason(ext))
    limit = max_file_bytes() if max_bytes is None else max_bytes
    try:
        st = p.stat()
    except FileNotFoundError as e:
        raise IngestError(name, "file not found") from e
    except OSError as e:
        raise IngestError(name, f"cannot read file: {e.strerror or e}") from e
    if p.is_dir():
        raise IngestError(name, "is a directory, not a file")
    if not p.is_file():
        raise IngestError(name, "not a regular file")
    if limit > 0 and st.st_size > limit:
        raise _too_big(name, st.st_size, limit)
    try:
        with open(p, "rb") as f:
            data = f.read(limit + 1) if limit > 0 else f.read()
    except OSError as e:
        raise IngestError(name, f"cannot read file: {e.strerror or e}") from e
    if limit > 0 and len(data) > limit:  # the file grew after stat()
        raise _too_big(name, os.path.getsize(p), limit)
    if not data or data.isspace():
        raise IngestError(name, "file is empty")
    if not data.rstrip(b"\x00"):
        raise IngestError(name, "file is empty (only NUL bytes: an incomplete download?)")
    problems: list[str] = []
    try:
        docs = loader(data, name, doc_id or p.name, p, problems)
    except IngestError:
        raise
    except MemoryError as e:
        raise IngestError(name, f"not enough memory to read this {_mb(len(data))} MB file") from e
    except RecursionError as e:
        raise IngestError(name, "document is nested too deeply to read") from e
    except Exception as e:  # a loader bug or library quirk must still name the file
        logger.warning("unexpected error reading %s", name, exc_info=True)
        raise IngestError(name, f"cannot read {ext} file: {type(e).__name__}: {_short(e)}") from e
    del data
    for d in docs:
        d.text = strip_invisible(d.text)
        if d.title is not None:
            d.title = " ".join(strip_invisible(d.title).split()) or None
        if not d.text.strip():
            raise IngestError(name, "empty document: no text left after removing whitespace and control/zero-width characters")
    logger.debug("%s: loaded %d document(s), %d problem(s)", name, len(docs), len(problems))
    return docs, problems


def strip_invisible(text: str) -> str:
    """Normalise line breaks to "\\n" and remove control (except \\t, \\n) and zero-width/bidi/BOM characters."""
    return _INVISIBLE_RE.sub("", _normalise_newlines(text))


def _normalise_newlines(text: str) -> str:
    """\\r\\n, \\r, U+2028/2029, VT, FF, NEL -> "\\n" (no copy when there are none: big files)."""
    if any(ch in text for ch in "\r\u2028\u2029\x0b\x0c\x85"):
        return _NEWLINES_RE.sub("\n", text)
    return text


def _unsupported_reason(ext: str) -> str:
    supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
    if ext == ".doc":
        return f"legacy Word .doc is not supported; save it as .docx in Word/WPS (另存为 .docx) and add that; supported: {supported}"
    shown = f"'{ext}'" if ext else "(no extension)"
    return f"unsupported file type {shown}; supported: {supported}"


def iter_corpus_files(corpus_dir: str | Path) -> list[Path]:
    """All supported files under corpus_dir (recursive, sorted), skipping hidden files/dirs and Office "~$" lock files."""
    root = Path(corpus_dir)
    if not root.exists():
        raise IngestError(str(corpus_dir), "corpus directory not found")
    if not root.is_dir():
        raise IngestError(str(corpus_dir), "not a directory")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in filenames:
            if fn.startswith((".", "~$")):
                continue
            fp = Path(dirpath) / fn
            if fp.suffix.lower() in SUPPORTED_EXTENSIONS:
                found.append(fp)
            else:
                logger.info("skipping %s: unsupported file type", fp)
    found.sort(key=lambda f: f.relative_to(root).as_posix())
    return found


def load_directory(corpus_dir: str | Path) -> tuple[list[RawDocument], list[IngestError]]:
    """Load every supported file under corpus_dir; continue past failures and return (documents, errors).

    errors holds one IngestError per failed file and one per skipped .jsonl line (its reason "line N: ...").
    """
    root = Path(corpus_dir)
    docs: list[RawDocument] = []
    errors: list[IngestError] = []
    seen: dict[str, str] = {}
    for fp in iter_corpus_files(root):
        rel = fp.relative_to(root).as_posix()
        try:
            file_docs, problems = load_file_checked(fp, doc_id=rel)
            for d in file_docs:
                if d.doc_id in seen:
                    raise IngestError(str(fp), f"document id '{d.doc_id}' is already used by {seen[d.doc_id]}")
        except IngestError as e:
            logger.warning("skipping %s", e)
            errors.append(e)
            continue
        for d in file_docs:
            seen[d.doc_id] = str(fp)
        docs.extend(file_docs)
        for problem in problems:
            logger.warning("%s: %s (line skipped)", fp, problem)
            errors.append(IngestError(str(fp), problem))
    logger.info("%s: loaded %d document(s), %d file(s) failed", root, len(docs), len(errors))
    return docs, errors


# =========================================================================== txt / md

_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\n(.*?)\n?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_YAML_LINE_RE = re.compile(r"^(?:[\w\-\u4e00-\u9fff ]+:(?:\s|$)|\s|-\s|#)")


def _load_text(data: bytes, name: str, doc_id: str, p: Path, problems: list[str]) -> list[RawDocument]:
    text, enc = _decode(data, name)
    if not text.strip():
        raise IngestError(name, "empty document: only whitespace")
    return [RawDocument(doc_id=doc_id, text=text, title=None, source=name, kind="txt", meta={"encoding": enc})]


def _load_markdown(data: bytes, name: str, doc_id: str, p: Path, problems: list[str]) -> list[RawDocument]:
    text, enc = _decode(data, name)
    meta: dict[str, Any] = {"encoding": enc, **front_matter_versions(text)}
    text, title = split_front_matter(text)
    if not text.strip():
        raise IngestError(name, "empty document: only whitespace or front matter")
    return [RawDocument(doc_id=doc_id, text=text, title=title, source=name, kind="md", meta=meta)]


def front_matter_versions(text: str) -> dict[str, str]:
    """The ``version`` / ``effective`` fields of a leading YAML front matter block (they order regulation versions)."""
    m = _FRONT_MATTER_RE.match(text)
    if not m:
        return {}
    out = {}
    for ln in m.group(1).split("\n"):
        km = re.match(r"^(version|effective|effective_date)\s*:\s*['\"]?([^'\"#]*?)['\"]?\s*$", ln, re.I)
        if km and km.group(2):
            out[km.group(1).lower()] = km.group(2)
    return out


def split_front_matter(text: str) -> tuple[str, str | None]:
    """Remove a leading YAML front matter block; return (body, its `title:` value or None)."""
    m = _FRONT_MATTER_RE.match(text)
    if not m:
        return text, None
    lines = m.group(1).split("\n")
    if not any(ln.strip() for ln in lines) or not all(_YAML_LINE_RE.match(ln) for ln in lines if ln.strip()):
        return text, None  # a horizontal rule, not front matter
    title = None
    for i, ln in enumerate(lines):
        km = re.match(r"^title\s*:\s*(.*)$", ln, re.I)
        if not km:
            continue
        value = km.group(1).strip()
        if value in ("|", ">", "|-", ">-", ""):
            cont = []
            for nxt in lines[i + 1 :]:
                if nxt[:1] not in (" ", "\t"):
                    break
                cont.append(nxt.strip())
            value = " ".join(c for c in cont if c)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        title = value.strip() or None
        break
    return text[m.end() :], title


# =========================================================================== docx

_HEADING_STYLE_RE = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.I)
_TITLE_STYLES = {"title", "标题"}


def _load_docx(data: bytes, name: str, doc_id: str, p: Path, problems: list[str]) -> list[RawDocument]:
    import io

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    if not data.startswith(b"PK"):
        hint = " (a legacy .doc renamed to .docx? save it as .docx in Word/WPS)" if data.startswith(b"\xd0\xcf\x11\xe0") else ""
        raise IngestError(name, f"corrupt or not a Word .docx file: not a zip archive{hint}")
    try:
        document = docx.Document(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise IngestError(name, f"corrupt or not a Word .docx file: broken zip archive ({_short(e)})") from e
    except PackageNotFoundError as e:
        raise IngestError(name, f"corrupt or not a Word .docx file: {_short(e)}") from e
    except KeyError as e:
        raise IngestError(name, "corrupt or not a Word .docx file: the main part word/document.xml is missing") from e
    except Exception as e:  # python-docx raises ValueError/lxml errors/... for broken packages
        raise IngestError(name, f"corrupt or not a Word .docx file: {_short(e)}") from e
    try:
        lines, title = _docx_lines(document)
    except Exception as e:
        raise IngestError(name, f"corrupt or not a Word .docx file: {_short(e)}") from e
    if not title:
        try:
            title = (document.core_properties.title or "").strip() or None
        except Exception:  # a broken core.xml does not matter for the text
            title = None
    text = "\n".join(lines)
    if not text.strip():
        raise IngestError(name, "empty document: the Word file contains no text")
    return [RawDocument(doc_id=doc_id, text=text, title=title, source=name, kind="docx")]


def _docx_lines(document: Any) -> tuple[list[str], str | None]:
    """Walk the body in order: paragraphs (headings as "#" lines) and table rows ("a | b | c")."""
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    lines: list[str] = []
    title: str | None = None
    body = document.element.body

    def walk(container: Any) -> None:
        nonlocal title
        for child in container.iterchildren():
            if child.tag == qn("w:p"):
                para = Paragraph(child, document)
                text = para.text.strip()
                if not text:
                    continue
                style = _style_name(para)
                level = _docx_heading_level(para, style)
                if style.lower() in _TITLE_STYLES and title is None:
                    title = " ".join(text.split())
                    lines.append(text)
                elif level:
                    lines.append("#" * level + " " + " ".join(text.split()))
                else:
                    lines.append(text)
            elif child.tag == qn("w:tbl"):
                for row in Table(child, document).rows:
                    cells: list[str] = []
                    seen: list[Any] = []
                    for cell in row.cells:
                        if any(cell._tc is tc for tc in seen):  # a merged cell python-docx repeats per grid column
                            continue
                        seen.append(cell._tc)
                        cells.append(" ".join(cell.text.split()))
                    if any(cells):
                        lines.append(" | ".join(cells))
            elif child.tag == qn("w:sdt"):  # content control wrapping body paragraphs
                content = child.find(qn("w:sdtContent"))
                if content is not None:
                    walk(content)

    walk(body)
    return lines, title


def _style_name(para: Any) -> str:
    try:
        return (para.style.name or "") if para.style is not None else ""
    except Exception:
        return ""


def _docx_heading_level(para: Any, style: str) -> int:
    """Heading level 1-6 from the style name ("Heading 2", "标题 2") or an outline level; 0 for body text."""
    m = _HEADING_STYLE_RE.match(style.strip())
    if m:
        return min(int(m.group(1)), 6)
    from docx.oxml.ns import qn

    def outline(el: Any) -> int:
        ppr = el.find(qn("w:pPr")) if el is not None else None
        lvl = ppr.find(qn("w:outlineLvl")) if ppr is not None else None
        if lvl is None:
            return -1
        try:
            v = int(lvl.get(qn("w:val")))
        except (TypeError, ValueError):
            return -1
        return v + 1 if 0 <= v <= 8 else 0

    lvl = outline(para._p)
    if lvl < 0:
        try:
            st, depth = para.style, 0
            while st is not None and depth < 10 and lvl < 0:
                lvl = outline(st.element)
                st, depth = st.base_style, depth + 1
        except Exception:
            lvl = -1
    return min(lvl, 6) if lvl > 0 else 0


# =========================================================================== pdf

_pypdf_quieted = False


class _ToDebug(logging.Handler):
    """Re-log pypdf's robustness warnings at DEBUG under this module's logger."""

    def emit(self, record: logging.LogRecord) -> None:
        """Forward one pypdf record at DEBUG."""
        try:
            logger.debug("pypdf: %s", record.getMessage())
        except Exception:  # never let logging break ingestion
            pass


def _quiet_pypdf() -> None:
    """pypdf warns loudly about harmless quirks of real-world PDFs; send that to DEBUG (once per process)."""
    global _pypdf_quieted
    if not _pypdf_quieted:
        plog = logging.getLogger("pypdf")
        plog.addHandler(_ToDebug())
        plog.propagate = False
        _pypdf_quieted = True


def _load_pdf(data: bytes, name: str, doc_id: str, p: Path, problems: list[str]) -> list[RawDocument]:
    import io

    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError

    _quiet_pypdf()
    if b"%PDF" not in data[:1024]:
        raise IngestError(name, "corrupt or not a PDF file: no %PDF header")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
    except Exception as e:
        raise IngestError(name, f"corrupt PDF: {_short(e)}") from e
    try:
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except DependencyError as e:
                raise IngestError(name, f"PDF is encrypted and cannot be opened: {_short(e)}") from e
            if not ok:
                raise IngestError(
                    name, "PDF is password-protected; remove the password (e.g. print it to a new PDF) and add it again"
                )
        pages = list(reader.pages)
    except IngestError:
        raise
    except FileNotDecryptedError as e:
        raise IngestError(name, "PDF is password-protected; remove the password and add it again") from e
    except Exception as e:
        raise IngestError(name, f"corrupt PDF: {_short(e)}") from e
    texts: list[str] = []
    for i, page in enumerate(pages, 1):
        try:
            texts.append(page.extract_text() or "")
        except Exception as e:
            raise IngestError(name, f"cannot extract text from page {i}: {_short(e)}") from e
    text = _NEWLINES_RE.sub("\n", "\n".join(t.strip("\n") for t in texts)).replace("\x00", "")
    if len(re.sub(r"\s", "", text)) == 0:
        raise IngestError(name, "PDF has no text layer (scanned image?); run OCR first and add the text")
    return [RawDocument(doc_id=doc_id, text=text, title=_pdf_title(reader), source=name, kind="pdf", meta={"pages": len(pages)})]


def _pdf_title(reader: Any) -> str | None:
    """The PDF metadata title, minus "Microsoft Word - " and file extensions; None if absent or a placeholder."""
    try:
        meta = reader.metadata
        title = str(meta.title).strip() if meta is not None and meta.title else ""
    except Exception:
        return None
    title = re.sub(r"^Microsoft (?:Word|PowerPoint) - ", "", title)
    title = re.sub(r"\.(?:docx?|wps|pdf|txt)$", "", title, flags=re.I).strip()
    if not title or title.lower() in {"untitled", "无标题", "title"}:
        return None
    return title


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


def _load_html(data: bytes, name: str, doc_id: str, p: Path, problems: list[str]) -> list[RawDocument]:
    text, enc = decode_html(data, name)
    body, title = html_to_text(text)
    if not body.strip():
        raise IngestError(name, "no readable text (only scripts/markup)")
    return [RawDocument(doc_id=doc_id, text=body, title=title, source=name, kind="html", meta={"encoding": enc})]


def decode_html(data: bytes, path: str = "<bytes>") -> tuple[str, str]:
    """Decode an HTML page honouring a BOM, then a <meta charset>/http-equiv charset, else decode_bytes; (text, enc)."""
    if not any(data.startswith(bom) for bom, _ in _BOMS):
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
                    return _finish(data.decode(enc), path), enc
                except UnicodeDecodeError:
                    logger.info("%s: declared charset %s does not fit the bytes; guessing", path, declared)
    return _decode(data, path)


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
    return len(_CJK_RE.findall(el.get_text()))


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
        n = len(_CJK_RE.findall(s)) + len(re.findall(r"[A-Za-z0-9]+", s))
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


# =========================================================================== jsonl


def _load_jsonl(data: bytes, name: str, doc_id: str, p: Path, problems: list[str]) -> list[RawDocument]:
    """One document per valid non-empty line; invalid lines are skipped and reported in ``problems`` by number.

    A line is invalid if it cannot be decoded, is not a JSON object, has no non-empty string "text", has an
    "id" that is not a string/integer, or repeats an earlier id (the first one is kept). If no line is
    valid the whole file is refused with the first problems.
    """
    try:
        text, _ = _decode(data, name, newlines=False)  # U+2028 etc. are legal inside JSON strings
        lines: list[str | None] = list(text.split("\n"))
        del text
    except IngestError as e:
        lines = _decode_jsonl_lines(data, e)
    docs: list[RawDocument] = []
    found: list[str] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if line is None:
            found.append(f"line {n}: cannot decode as UTF-8/GBK text")
            continue
        if not line.strip():
            continue
        doc, problem = _jsonl_record(line, n, p, seen)
        if problem:
            found.append(f"line {n}: {problem}")
        elif doc is not None:
            doc.source = name
            docs.append(doc)
    if not docs:
        if not found:
            raise IngestError(name, "no documents (every line is empty)")
        shown = "; ".join(found[:3]) + (f"; ... ({len(found) - 3} more)" if len(found) > 3 else "")
        raise IngestError(name, f"no valid lines ({len(found)} invalid): {shown}")
    if len(found) > MAX_LINE_PROBLEMS:
        rest = found[MAX_LINE_PROBLEMS:]
        last = rest[-1].split(":", 1)[0]
        found = found[:MAX_LINE_PROBLEMS] + [f"{len(rest)} more invalid line(s) not listed, the last on {last}"]
    problems.extend(found)
    return docs


def _decode_jsonl_lines(data: bytes, error: IngestError) -> list[str | None]:
    """Decode a .jsonl that fails as a whole line by line (None for an undecodable line); re-raise if none decodes."""
    if b"\x00" in data:
        raise error  # UTF-16/32 or binary: lines cannot be split on bytes
    out: list[str | None] = []
    for line in data.split(b"\n"):
        try:
            out.append(line.decode("utf-8"))
            continue
        except UnicodeDecodeError:
            pass
        try:
            s = line.decode("gb18030")
        except UnicodeDecodeError:
            s = None
        out.append(s if s is not None and _plausible_chinese(s) and not _CONTROL_RE.search(s.rstrip("\r")) else None)
    if not any(s and s.strip() for s in out):
        raise error
    return out


def _jsonl_record(line: str, n: int, p: Path, seen: dict[str, int]) -> tuple[RawDocument | None, str | None]:
    """Parse line ``n``; return (document, None) or (None, what is wrong with it)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        return None, f"invalid JSON ({e.msg} at column {e.colno})"
    except RecursionError:
        return None, "invalid JSON (nested too deeply)"
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, got {type(obj).__name__}"
    body = obj.pop("text", None)
    if isinstance(body, str):
        body = strip_invisible(body)
    if not isinstance(body, str) or not body.strip():
        what = "missing" if body is None else ("empty" if isinstance(body, str) else f"not a string ({type(body).__name__})")
        return None, f"'text' is {what}"
    raw_id = obj.pop("id", None)
    alt_id = obj.pop("doc_id", None)
    if raw_id is None:
        raw_id = alt_id
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        did = f"{p.stem}:{n}"
    elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
        did = strip_invisible(str(raw_id)).strip()
    else:
        return None, f"'id' must be a string or integer, got {type(raw_id).__name__}"
    if did in seen:
        return None, f"duplicate id '{did}' (first used on line {seen[did]})"
    seen[did] = n
    title = obj.pop("title", None)
    title = str(title).strip() or None if title is not None else None
    meta = dict(obj)
    meta["line"] = n
    return RawDocument(doc_id=did, text=body, title=title, kind="jsonl", meta=meta), None


# =========================================================================== helpers


def _short(e: BaseException, limit: int = 160) -> str:
    """A one-line, bounded description of an exception."""
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"


_LOADERS: dict[str, Callable[[bytes, str, str, Path, list[str]], list[RawDocument]]] = {
    ".txt": _load_text,
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".docx": _load_docx,
    ".pdf": _load_pdf,
    ".html": _load_html,
    ".htm": _load_html,
    ".jsonl": _load_jsonl,
}
