"""Answers as downloadable files: CSV (UTF-8 with BOM, so Excel reads the Chinese) and Word .docx, with citations."""
from __future__ import annotations

import csv
import datetime as _dt
import io
from typing import Any, Sequence

from indexer.text.cite import citation

CSV_FIELDS = ["question", "answer_found", "confidence", "rank", "citation", "title", "section", "doc_id",
              "best_sentence", "text", "score", "also_in"]
CSV_HEADER = {"question": "问题 question", "answer_found": "找到直接回答 answer_found", "confidence": "置信度 confidence",
              "rank": "名次 rank", "citation": "出处 citation", "title": "文档 title", "section": "章节 section",
              "doc_id": "文档编号 doc_id", "best_sentence": "回答句 best_sentence", "text": "原文段落 text",
              "score": "得分 score", "also_in": "另见 also_in"}
MIME = {"csv": "text/csv; charset=utf-8",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}


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


def _also_in(hit: dict[str, Any]) -> str:
    return "；".join(_cite(a) + (f"（{a['doc_id']}）" if a.get("doc_id") else "") for a in hit.get("also_in") or [])


def to_csv(items: Sequence[dict[str, Any]]) -> bytes:
    """One row per hit (a question without hits gets one row saying so)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writerow(CSV_HEADER)
    rows: list[dict[str, Any]] = []
    for item in items:
        base = {"question": item["question"], "answer_found": "是" if item.get("answer_found") else "否",
                "confidence": item.get("confidence")}
        if not item["hits"]:
            rows.append({**base, "text": "没有找到相关段落"})
        for h in item["hits"]:
            rows.append({**base, "rank": h.get("rank"), "citation": _cite(h), "title": h.get("title"),
                         "section": h.get("section"), "doc_id": h.get("doc_id"),
                         "best_sentence": h.get("best_sentence") if item.get("answer_found") else "",
                         "text": h.get("text"), "score": h.get("score"), "also_in": _also_in(h)})
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    return buf.getvalue().encode("utf-8-sig")


def to_docx(items: Sequence[dict[str, Any]], title: str = "党建问答检索结果") -> bytes:
    """A Word document: per question a heading, then each hit's citation, answer sentence and passage."""
    from docx import Document
    from docx.shared import Pt, RGBColor

    doc = Document()
    doc.add_heading(title, level=0)
    doc.add_paragraph(f"导出时间：{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} · 共 {len(items)} 个问题")
    for n, item in enumerate(items, start=1):
        doc.add_heading(f"{n}. {item['question']}", level=1)
        if not item["hits"]:
            doc.add_paragraph("没有找到相关段落。")
            continue
        if not item.get("answer_found"):
            doc.add_paragraph("未找到直接回答，以下是最接近的段落。")
        for h in item["hits"]:
            head = doc.add_paragraph()
            run = head.add_run(f"[{h.get('rank')}] {_cite(h)}")
            run.bold = True
            if item.get("answer_found") and h.get("best_sentence"):
                p = doc.add_paragraph()
                p.add_run("回答：").bold = True
                p.add_run(str(h["best_sentence"]))
            body = doc.add_paragraph(str(h.get("text", "")))
            for r in body.runs:
                r.font.size = Pt(10.5)
            if h.get("also_in"):
                note = doc.add_paragraph().add_run("另见：" + _also_in(h))
                note.font.size = Pt(9)
                note.font.color.rgb = RGBColor(0x4F, 0x56, 0x60)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def export(items: Sequence[dict[str, Any]], fmt: str) -> bytes:
    """The answers as ``csv`` or ``docx`` bytes."""
    return to_csv(items) if fmt == "csv" else to_docx(items)
