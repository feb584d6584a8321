"""Answers as downloadable files: CSV (UTF-8 with BOM, so Excel reads the Chinese), Excel .xlsx and Word .docx, with
citations and each text's status and version (现行 / 已修订 / 已废止, 2018年版); each records the search settings
(mode, document filter) it was made with."""
from __future__ import annotations

import csv
import datetime as _dt
import io
from typing import Any, Sequence

from indexer.text.cite import citation

CSV_FIELDS = ["question", "answer_found", "confidence", "rank", "citation", "title", "section", "status", "version",
              "doc_id", "best_sentence", "text", "score", "also_in"]
CSV_HEADER = {"question": "问题 question", "answer_found": "找到直接回答 answer_found", "confidence": "置信度 confidence",
              "rank": "名次 rank", "citation": "出处 citation", "title": "文档 title", "section": "章节 section",
              "status": "状态 status", "version": "版本 version", "doc_id": "文档编号 doc_id",
              "best_sentence": "回答句 best_sentence", "text": "原文段落 text",
              "score": "得分 score", "also_in": "另见 also_in"}
MIME = {"csv": "text/csv; charset=utf-8",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
MODE_NAMES = {"hybrid": "综合", "keyword": "关键词", "semantic": "语义"}


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell that spreadsheet programs will not run as a formula (text starting with = + - @ gets a ')."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def answer_items(questions: Sequence[str], results: Sequence[Any]) -> list[dict[str, Any]]:
    """Pair each question with its hits (``Results``) and its answer envelope (answer_found, confidence)."""
    items = []
    for q, hits in zip(questions, results):
        items.append({"question": q, "hits": list(hits), **hits.envelope()})
    return items


def _cite(hit: dict[str, Any]) -> str:
    return str(hit.get("citation") or citation(hit))


def _marks(hit: dict[str, Any]) -> str:
    """``2018年版 · 已修订``: the version label (where the document has other versions) and the status (现行 / 已修订 /
    已废止, issue 24 §1), as far as the hit has them."""
    return " · ".join(str(v) for v in (hit.get("version_label"), hit.get("status")) if v)


def _also_in(hit: dict[str, Any]) -> str:
    def one(a: dict[str, Any]) -> str:
        note = "；".join(v for v in (_marks(a), a.get("doc_id")) if v)
        return _cite(a) + (f"（{note}）" if note else "")

    return "；".join(one(a) for a in hit.get("also_in") or [])


def settings_line(meta: dict[str, Any] | None) -> str:
    """``检索方式：综合 · 每题 5 条 · 文档范围：全部文档`` (and ``类别：…`` when one was chosen) for the head of an
    export."""
    meta = meta or {}
    parts = []
    if meta.get("mode"):
        parts.append(f"检索方式：{MODE_NAMES.get(str(meta['mode']), meta['mode'])}")
    if meta.get("k"):
        parts.append(f"每题 {meta['k']} 条")
    docs = list(meta.get("docs") or [])
    parts.append("文档范围：" + ("、".join(str(d) for d in docs[:20]) + (f" 等 {len(docs)} 篇" if len(docs) > 20 else "")
                               if docs else "全部文档"))
    if _categories(meta):
        parts.append(f"类别：{_categories(meta)}")
    return " · ".join(parts)


def _categories(meta: dict[str, Any]) -> str:
    """The 类别 an export was filtered by (one, or a list the API was given), "" for every document."""
    cat = meta.get("category") or ""
    return "、".join(str(c) for c in cat if c) if isinstance(cat, (list, tuple)) else str(cat)


def _rows(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per hit (a question without hits gets one row saying so)."""
    rows: list[dict[str, Any]] = []
    for item in items:
        base = {"question": item["question"], "answer_found": "是" if item.get("answer_found") else "否",
                "confidence": item.get("confidence")}
        if not item["hits"]:
            rows.append({**base, "text": "没有找到相关段落"})
        for h in item["hits"]:
            rows.append({**base, "rank": h.get("rank"), "citation": _cite(h), "title": h.get("title"),
                         "section": h.get("section"), "status": h.get("status") or "",
                         "version": h.get("version_label") or "", "doc_id": h.get("doc_id"),
                         "best_sentence": h.get("best_sentence") if item.get("answer_found") else "",
                         "text": h.get("text"), "score": h.get("score"), "also_in": _also_in(h)})
    return rows


def to_csv(items: Sequence[dict[str, Any]]) -> bytes:
    """One row per hit (a question without hits gets one row saying so), under a bilingual header."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writerow(CSV_HEADER)
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in _rows(items))
    return buf.getvalue().encode("utf-8-sig")


def to_xlsx(items: Sequence[dict[str, Any]], meta: dict[str, Any] | None = None) -> bytes:
    """An Excel workbook: sheet 问答结果 with the CSV's columns (one row per hit; its 问题 column makes the file a
    question list again), and sheet 检索设置 with the mode, the document filter and the export time."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    sheet = book.active
    sheet.title = "问答结果"
    sheet.append([CSV_HEADER[f] for f in CSV_FIELDS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def xl(value: Any) -> Any:
        # No formulas (a text starting with = would be one) and no control characters (openpyxl refuses them).
        return ILLEGAL_CHARACTERS_RE.sub("", _cell(value)) if isinstance(value, str) else value

    for row in _rows(items):
        sheet.append([xl(row.get(f)) for f in CSV_FIELDS])
    widths = {"question": 28, "citation": 36, "title": 24, "section": 24, "version": 10, "best_sentence": 48,
              "text": 60, "also_in": 30}
    for i, field in enumerate(CSV_FIELDS, start=1):
        sheet.column_dimensions[sheet.cell(1, i).column_letter].width = widths.get(field, 12)
    wrap = Alignment(wrap_text=True, vertical="top")
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = wrap
    sheet.freeze_panes = "A2"
    info = book.create_sheet("检索设置")
    info.append(["导出时间", _dt.datetime.now().strftime("%Y-%m-%d %H:%M")])
    info.append(["问题数", len(items)])
    meta = meta or {}
    info.append(["检索方式", MODE_NAMES.get(str(meta.get("mode") or ""), meta.get("mode") or "")])
    if meta.get("k"):
        info.append(["每题结果数", meta["k"]])
    info.append(["文档范围", "、".join(str(d) for d in meta.get("docs") or []) or "全部文档"])
    info.append(["类别", _categories(meta) or "全部类别"])
    info.column_dimensions["A"].width = 14
    info.column_dimensions["B"].width = 60
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _same_text(a: Any, b: Any) -> bool:
    """True when two texts differ only in whitespace (the answer sentence is the whole passage)."""
    return "".join(str(a or "").split()) == "".join(str(b or "").split())


def to_docx(items: Sequence[dict[str, Any]], title: str = "党建问答检索结果", meta: dict[str, Any] | None = None) -> bytes:
    """A Word document: the search settings, then per question a heading and each hit's citation, answer sentence
    and passage (the passage is left out when the answer sentence is all of it)."""
    from docx import Document
    from docx.shared import Pt, RGBColor

    doc = Document()
    doc.add_heading(title, level=0)
    doc.add_paragraph(f"导出时间：{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} · 共 {len(items)} 个问题")
    doc.add_paragraph(settings_line(meta))
    for n, item in enumerate(items, start=1):
        doc.add_heading(f"{n}. {item['question']}", level=1)
        if not item["hits"]:
            doc.add_paragraph("没有找到相关段落。")
            continue
        if not item.get("answer_found"):
            doc.add_paragraph("未找到直接回答，以下是最接近的段落。")
        for h in item["hits"]:
            head = doc.add_paragraph()
            run = head.add_run(f"[{h.get('rank')}] {_cite(h)}" + (f"（{_marks(h)}）" if _marks(h) else ""))
            run.bold = True
            answered = bool(item.get("answer_found") and h.get("best_sentence"))
            if answered:
                p = doc.add_paragraph()
                p.add_run("回答：").bold = True
                p.add_run(str(h["best_sentence"]))
            if not (answered and _same_text(h["best_sentence"], h.get("text"))):
                body = doc.add_paragraph()
                if answered:
                    body.add_run("原文：").bold = True
                body.add_run(str(h.get("text", "")))
                for r in body.runs:
                    r.font.size = Pt(10.5)
            if h.get("also_in"):
                note = doc.add_paragraph().add_run("另见：" + _also_in(h))
                note.font.size = Pt(9)
                note.font.color.rgb = RGBColor(0x4F, 0x56, 0x60)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def export(items: Sequence[dict[str, Any]], fmt: str, meta: dict[str, Any] | None = None) -> bytes:
    """The answers as ``csv``, ``xlsx`` or ``docx`` bytes; ``meta`` (mode, k, docs, category) is recorded in xlsx and
    docx."""
    if fmt == "csv":
        return to_csv(items)
    if fmt == "xlsx":
        return to_xlsx(items, meta)
    return to_docx(items, meta=meta)
