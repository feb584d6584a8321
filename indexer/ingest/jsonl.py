"""Bulk .jsonl files: one document per valid line, bad lines reported by number."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from indexer.ingest.decode import CONTROL_RE, decode_text, plausible_chinese, strip_invisible
from indexer.types import IngestError, RawDocument

logger = logging.getLogger(__name__)

MAX_LINE_PROBLEMS = 20
"""At most this many per-line .jsonl problems are listed one by one; the rest are summed up in one entry."""


# =========================================================================== jsonl


def load_jsonl(data: bytes, name: str, doc_id: str, p: Path, problems: list[str]) -> list[RawDocument]:
    """One document per valid non-empty line; invalid lines are skipped and reported in ``problems`` by number.

    A line is invalid if it cannot be decoded, is not a JSON object, has no non-empty string "text", has an
    "id" that is not a string/integer, or repeats an earlier id (the first one is kept). If no line is
    valid the whole file is refused with the first problems.
    """
    try:
        text, _ = decode_text(data, name, newlines=False)  # U+2028 etc. are legal inside JSON strings
        lines: list[str | None] = list(text.split("\n"))
        del text
    except IngestError as e:
        lines = _decode_jsonl_lines(data, e)
    docs: list[RawDocument] = []
    found: list[str] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if line is None:
            found.append(f"第 {n} 行：无法识别文字编码 / line {n}: cannot decode as UTF-8/GBK text")
            continue
        if not line.strip():
            continue
        doc, problem = _jsonl_record(line, n, p, seen)
        if problem:
            found.append(f"第 {n} 行：{problem[0]} / line {n}: {problem[1]}")
        elif doc is not None:
            doc.source = name
            docs.append(doc)
    if not docs:
        if not found:
            raise IngestError(name, "文件中没有文档（每行都是空的） / no documents (every line is empty)")
        shown = "; ".join(found[:3]) + (f"; ... ({len(found) - 3} more)" if len(found) > 3 else "")
        raise IngestError(name, f"文件中没有有效的记录行 / no valid lines ({len(found)} invalid): {shown}")
    if len(found) > MAX_LINE_PROBLEMS:
        rest = found[MAX_LINE_PROBLEMS:]
        last = rest[-1].split(" / line ", 1)[1].split(":", 1)[0]
        found = found[:MAX_LINE_PROBLEMS] + [f"另有 {len(rest)} 行无效，未逐一列出，最后一行是第 {last} 行 / {len(rest)} more "
                                             f"invalid line(s) not listed, the last on line {last}"]
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
        out.append(s if s is not None and plausible_chinese(s) and not CONTROL_RE.search(s.rstrip("\r")) else None)
    if not any(s and s.strip() for s in out):
        raise error
    return out


def _jsonl_record(line: str, n: int, p: Path,
                  seen: dict[str, int]) -> tuple[RawDocument | None, tuple[str, str] | None]:
    """Parse line ``n``; return (document, None) or (None, what is wrong with it: (Chinese, English))."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        return None, ("不是有效的 JSON", f"invalid JSON ({e.msg} at column {e.colno})")
    except RecursionError:
        return None, ("不是有效的 JSON（嵌套过深）", "invalid JSON (nested too deeply)")
    if not isinstance(obj, dict):
        return None, ("不是 JSON 对象", f"expected a JSON object, got {type(obj).__name__}")
    body = obj.pop("text", None)
    if isinstance(body, str):
        body = strip_invisible(body)
    if not isinstance(body, str) or not body.strip():
        what = "missing" if body is None else ("empty" if isinstance(body, str) else f"not a string ({type(body).__name__})")
        return None, ("缺少非空的 text 文本字段", f"'text' is {what}")
    raw_id = obj.pop("id", None)
    alt_id = obj.pop("doc_id", None)
    if raw_id is None:
        raw_id = alt_id
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        did = f"{p.stem}:{n}"
    elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
        did = strip_invisible(str(raw_id)).strip()
    else:
        return None, ("id 必须是字符串或整数", f"'id' must be a string or integer, got {type(raw_id).__name__}")
    if did in seen:
        return None, (f"文档编号与第 {seen[did]} 行重复", f"duplicate id '{did}' (first used on line {seen[did]})")
    seen[did] = n
    title = obj.pop("title", None)
    title = str(title).strip() or None if title is not None else None
    meta = dict(obj)
    meta["line"] = n
    return RawDocument(doc_id=did, text=body, title=title, kind="jsonl", meta=meta), None
