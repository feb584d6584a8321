"""Bytes to text: BOM, UTF-8/16/32, GB18030/GBK and mixed encodings, checked guesses; invisible characters removed."""
from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Callable

from indexer.types import IngestError

logger = logging.getLogger(__name__)


DECODE_ERROR = "无法识别文字编码（可能是二进制文件） / cannot decode as UTF-8/UTF-16/GBK text (binary file?)"
CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
NEWLINES_RE = re.compile(r"\r\n|[\r\u2028\u2029\x0b\x0c\x85]")
_SPACE_RE = re.compile(r"\s+")
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Invisible characters removed from every loaded text: C0/C1 controls except \t and \n (line breaks are
# normalised first), zero-width and joiner characters, bidi marks/embeddings/isolates, soft hyphen,
# word joiner and invisible operators, BOMs inside the text, Mongolian vowel separator, interlinear marks.
_INVISIBLE_RE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufeff\ufff9-\ufffb]"
)

# =========================================================================== text decoding

BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # must precede UTF-16 LE: FF FE 00 00 starts with FF FE
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_bytes(data: bytes, path: str = "<bytes>") -> str:
    """Decode file bytes to text (UTF-8/16/32 with BOM, GB18030/GBK, else a checked guess); raise IngestError if binary."""
    return decode_text(data, path)[0]


def decode_text(data: bytes, path: str, newlines: bool = True) -> tuple[str, str]:
    """Return (text, encoding name); the text has no BOM and (if newlines) only "\\n" line breaks."""
    if not data:
        return "", "utf-8"
    for bom, enc in BOMS:
        if data.startswith(bom):
            try:
                return finish_text(data[len(bom) :].decode(enc), path, newlines), enc
            except UnicodeDecodeError:
                if enc.startswith("utf-32"):
                    continue  # FF FE 00 00 can also be a UTF-16 LE BOM followed by U+0000
                raise IngestError(path, f"文件编码标记与内容不符，无法解码 / starts with a {enc.upper()} byte-order mark but is not valid {enc.upper()}")
    if b"\x00" in data:
        enc = _bomless_utf16(data)
        if enc:
            try:
                return finish_text(data.decode(enc), path, newlines), enc
            except UnicodeDecodeError:
                pass
        data = _drop_stray_nuls(data, path)
    try:
        return finish_text(data.decode("utf-8"), path, newlines), "utf-8"
    except UnicodeDecodeError:
        pass
    mixed = _decode_mixed(data, path)
    if mixed is not None:
        return finish_text(mixed, path, newlines), "utf-8+gb18030"
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        pass
    else:
        if plausible_chinese(text):
            return finish_text(text, path, newlines), "gb18030"
    # A few bad bytes (a truncated character, a stray byte) in otherwise clean UTF-8 or GBK text.
    for enc in ("utf-8", "gb18030"):
        text = data.decode(enc, errors="replace")
        bad = text.count("\ufffd")
        non_ascii = _count_non_ascii(text) - bad
        if bad <= max(2, len(text) // 500) and non_ascii >= 20 * bad and (enc == "utf-8" or plausible_chinese(text)):
            logger.warning("%s: %d undecodable byte sequence(s) in %s text replaced with U+FFFD", path, bad, enc)
            return finish_text(text, path, newlines), enc
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
    if not utf8_lines or not gbk_lines or not plausible_chinese("\n".join(gbk_lines)):
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
    return finish_text(text, path, newlines), best.encoding


def finish_text(text: str, path: str, newlines: bool = True) -> str:
    """Strip a BOM, normalise newlines and refuse text that is mostly control characters."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if newlines:
        text = _normalise_newlines(text)
    elif "\r" in text:
        text = text.replace("\r\n", "\n")
    if text and CONTROL_RE.search(text):
        controls = len(text) - len(CONTROL_RE.sub("", text))  # counted without a list of matches (big files)
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


def plausible_chinese(text: str) -> bool:
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


def strip_invisible(text: str) -> str:
    """Normalise line breaks to "\\n" and remove control (except \\t, \\n) and zero-width/bidi/BOM characters."""
    return _INVISIBLE_RE.sub("", _normalise_newlines(text))


def _normalise_newlines(text: str) -> str:
    """\\r\\n, \\r, U+2028/2029, VT, FF, NEL -> "\\n" (no copy when there are none: big files)."""
    if any(ch in text for ch in "\r\u2028\u2029\x0b\x0c\x85"):
        return NEWLINES_RE.sub("\n", text)
    return text


# =========================================================================== helpers


def short_error(e: BaseException, limit: int = 160) -> str:
    """A one-line, bounded description of an exception."""
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"
