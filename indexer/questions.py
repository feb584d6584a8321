"""Question lists for `partyqa batch` / `eval` and the web batch page: pasted text, txt, csv, xlsx and jsonl files.

The question column of a table is headed 问题, 题目 or question (the app's own export, ``问题 question``, reads back);
the web page strips list numbering and skips lines the search would refuse, naming each."""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from indexer.types import PartyQAError, QueryError

QUESTION_COLUMNS = ("question", "问题", "题目", "q", "提问", "问题内容")  # header names of the question column
QUESTION_SUFFIXES = (".txt", ".csv", ".xlsx", ".jsonl")

# "1. " "1、" "1）" "(1)" "（1）" "一、" "①" "第1题" "Q1:" at the start of a line; "1.5倍" and "2023年" are kept.
_NUMBERING = re.compile(
    r"^\s*(?:"
    r"[（(]\s*(?:\d{1,3}|[一二三四五六七八九十]{1,3})\s*[)）]"
    r"|\d{1,3}\s*(?:[.．](?!\d)|[、)）:：])"
    r"|[一二三四五六七八九十]{1,3}\s*[、.．]"
    r"|[\u2460-\u2473\u2776-\u277f]"
    r"|第\s*\d{1,3}\s*[题问]\s*[.．、:：]?"
    r"|[Qq]\s*\d{1,3}\s*[.．、:：]"
    r"|[-*•·]\s+"
    r")\s*")


@dataclass
class QuestionLine:
    """One question of a list: its text (numbering stripped) and where it came from (1-based line or row)."""

    text: str
    line: int
    source: str = ""  # the file's name; "" for pasted text

    def where(self) -> str:
        """``第 3 行`` or ``问题.xlsx 第 3 行``."""
        return f"{self.source} 第 {self.line} 行" if self.source else f"第 {self.line} 行"


@dataclass
class SkippedLine:
    """A line that was not searched, and why (Chinese and English)."""

    line: int
    source: str
    reason_zh: str
    reason_en: str

    @property
    def message_zh(self) -> str:
        """``第 12 行已跳过：没有可检索的文字``."""
        where = f"{self.source} 第 {self.line} 行" if self.source else f"第 {self.line} 行"
        return f"{where}已跳过：{self.reason_zh}"

    @property
    def message_en(self) -> str:
        """``line 12 skipped: no searchable text``."""
        where = f"{self.source} line {self.line}" if self.source else f"line {self.line}"
        return f"{where} skipped: {self.reason_en}"


def strip_numbering(text: str) -> str:
    """A question without its list numbering (``1. `` ``（1）`` ``一、`` ``①``), whitespace collapsed."""
    text = " ".join(str(text or "").split())
    stripped = _NUMBERING.sub("", text, count=1).strip()
    return stripped if any(ch.isalnum() for ch in stripped) else text


def screen(lines: Iterable[QuestionLine], max_chars: int) -> tuple[list[QuestionLine], list[SkippedLine]]:
    """Questions worth searching, and the lines skipped with the reason the search's own check gives (symbols
    only, too long: :func:`indexer.query.check_question`), in input order."""
    from indexer.search.query import check_question

    kept: list[QuestionLine] = []
    skipped: list[SkippedLine] = []
    for q in lines:
        try:
            kept.append(QuestionLine(check_question(strip_numbering(q.text), max_chars), q.line, q.source))
        except QueryError as err:
            zh, _, en = str(err).partition(" / ")
            skipped.append(SkippedLine(q.line, q.source, zh.strip(), (en or zh).strip()))
    return kept, skipped


def pasted_lines(text: str) -> list[QuestionLine]:
    """Non-blank lines of pasted text, numbered as the user sees them."""
    return [QuestionLine(line.strip(), n) for n, line in enumerate((text or "").splitlines(), start=1) if line.strip()]


def _column(headers: Sequence[Any]) -> int | None:
    """Index of the question column among ``headers`` (``问题``, ``题目``, ``question``, or the app's own export
    header ``问题 question``), else None."""
    names = [" ".join(str(h or "").split()).lower() for h in headers]
    for i, name in enumerate(names):
        if name in QUESTION_COLUMNS or any(part in QUESTION_COLUMNS for part in name.split(" ")):
            return i
    return None


def _dedupe_runs(lines: list[QuestionLine]) -> list[QuestionLine]:
    """Drop a line equal to the one before it (the app's own export has one row per hit of each question)."""
    out: list[QuestionLine] = []
    for q in lines:
        if not out or out[-1].text != q.text:
            out.append(q)
    return out


def _cell(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _table_records(rows: list[list[Any]], name: str) -> list[tuple[int, dict[str, Any]]]:
    """(row number, record) of a table (csv rows or xlsx cells): the column headed 问题 / 题目 / question gives
    ``question`` and the other headed columns are kept; a table of one column is a plain list (every row a
    question)."""
    rows = [r for r in rows if any(_cell(c) for c in r)]
    if not rows:
        return []
    col = _column(rows[0])
    if col is None:
        if max(sum(1 for c in r if _cell(c)) for r in rows) > 1:
            headers = "、".join(_cell(c) for c in rows[0] if _cell(c))
            raise PartyQAError(f"{name}：找不到问题列，请把问题所在列的表头写成“问题”（或“题目”、question）；"
                               f"第一行是：{headers[:80]} / {name}: no question column: head it 问题, 题目 or "
                               f"question (found: {headers[:80]})")
        return [(n, {"question": next(_cell(c) for c in r if _cell(c))}) for n, r in enumerate(rows, start=1)]
    heads = [_cell(h) for h in rows[0]]
    out = []
    for n, row in enumerate(rows[1:], start=2):
        value = _cell(row[col]) if col < len(row) else ""
        if value:
            extra = {h: row[i] for i, h in enumerate(heads) if h and i != col and i < len(row)}
            out.append((n, {**extra, "question": value}))
    return out


def _xlsx_rows(data: bytes, name: str) -> list[list[Any]]:
    """The first worksheet's rows as lists of cell values."""
    try:
        from openpyxl import load_workbook
    except ImportError:  # pragma: no cover - openpyxl is a dependency
        raise PartyQAError(f"{name}：读取 .xlsx 需要 openpyxl / {name}: reading .xlsx needs openpyxl") from None
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException ...
        raise PartyQAError(f"{name}：不是有效的 Excel .xlsx 文件 / {name}: not a valid Excel .xlsx file "
                           f"({type(exc).__name__})") from None
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        return [list(r) for r in sheet.iter_rows(values_only=True)] if sheet is not None else []
    finally:
        book.close()


def _records(data: bytes, name: str) -> list[tuple[int, dict[str, Any]]]:
    """(line or row number, record with ``question`` and the file's other fields) of a question file."""
    from indexer.ingest.decode import decode_bytes

    suffix = Path(name).suffix.lower()
    if suffix == ".xlsx":
        return _table_records(_xlsx_rows(data, name), name)
    text = decode_bytes(data, name)
    if suffix == ".csv":
        return _table_records([list(r) for r in csv.reader(io.StringIO(text))], name)
    if suffix == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PartyQAError(f"{name}：第 {n} 行不是有效的 JSON / {name}: line {n}: invalid JSON "
                                   f"({exc.msg})") from None
            q = next((obj.get(k) for k in ("question", "问题", "q") if isinstance(obj, dict) and obj.get(k) is not None),
                     None)
            if not isinstance(q, str) or not q.strip():
                raise PartyQAError(f"{name}：第 {n} 行缺少 question（或 问题、q）文本字段 / {name}: line {n}: needs a "
                                   f"'question' or 'q' text field")
            out.append((n, {**obj, "question": q.strip()}))
        return out
    return [(n, {"question": line.strip()}) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_questions(path: str | Path) -> list[dict[str, Any]]:
    """Questions from txt (one per line), csv or xlsx (a 问题 / 题目 / question column, other columns kept) or
    jsonl (``question``, ``问题`` or ``q``; other fields kept)."""
    return [rec for _, rec in numbered_questions(path)]


def numbered_questions(path: str | Path, name: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """:func:`read_questions` with each record's line (txt, jsonl) or row (csv, xlsx: the header is row 1);
    ``name``: what errors call the file (default its path)."""
    p = Path(path)
    return _records(p.read_bytes(), name or str(p))


def file_lines(data: bytes, name: str) -> list[QuestionLine]:
    """The questions of an uploaded file (txt, csv, xlsx, jsonl) with their line or row numbers; repeated rows
    (the app's own export) once. A file that cannot be read as its type is a PartyQAError ("中文 / English")."""
    if Path(name).suffix.lower() not in QUESTION_SUFFIXES:
        raise PartyQAError(f"{name}：问题文件须为 txt、csv、xlsx 或 jsonl / {name}: a question file must be .txt, "
                           f".csv, .xlsx or .jsonl")
    return _dedupe_runs([QuestionLine(rec["question"], n, name) for n, rec in _records(data, name)])
