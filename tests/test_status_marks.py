"""A text's status (现行 / 已修订 / 已废止) and version label show wherever the text appears (issue 24 §1, issue 23 item
4): the answer box, the folded copies of a hit (also_in), the batch page, the CSV / Excel / Word exports and the CLI.

Over the shipped library (conftest.shipped_library): its 问责条例 (2016) is 已修订 with no other version indexed, and its
纪律处分条例 has a 2023 text (现行) and a 2018 text (已修订), so both kinds of mark are real data here, not fixtures.
"""
from __future__ import annotations

import csv
import io
import re

import pytest

from indexer import Config
from indexer.cli import _print_hits
from webui import create_app

D2018 = "中国共产党纪律处分条例（2018）.md"
D2023 = "中国共产党纪律处分条例（2023）.md"
ACCOUNTABILITY = "对党组织问责有哪些方式"  # → 中国共产党问责条例第七条 (2016 text, 已修订, one version)
GIFTS_2018 = "2018年版条例里收受礼品礼金怎么处分"  # → the 2018 第八十八条 (已修订), the 2023 article folded in (现行)
GIFTS = "收受礼金会受到什么处分"  # → the 2023 第九十七条 (现行), the 2018 第八十八条 folded in (已修订)
CURRENT = "支委会多久开一次会"  # → 支部工作条例第十二条: 现行, one version, nothing to mark


@pytest.fixture(scope="module")
def client(shipped_library):
    return create_app(shipped_library, Config()).test_client()


def _answer_box(html: str) -> str:
    box = re.search(r'<section class="answer-box".*?</section>', html, re.S)
    assert box, "no answer box"
    return box.group(0)


def _also_in_items(html: str) -> list[str]:
    """The <li> of the first hit's folded copies."""
    block = re.search(r'<details class="also-in">.*?</details>', html, re.S)
    assert block, "no folded copies on the first hit"
    return re.findall(r"<li>.*?</li>", block.group(0), re.S)


def test_answer_box_shows_status_and_version(client, shipped_library) -> None:
    top = shipped_library.search(ACCOUNTABILITY, k=5)[0]
    assert (top["doc_id"], top["status"], top["version_label"]) == ("中国共产党问责条例.md", "已修订", None)
    box = _answer_box(client.get("/", query_string={"q": ACCOUNTABILITY}).get_data(as_text=True))
    assert "《中国共产党问责条例》第七条" in box
    marks = re.search(r'id="answer-status">(.*?)</span>\s*</p>', box, re.S)
    assert marks and 'badge-status' in marks.group(1) and "已修订" in marks.group(1), box

    box = _answer_box(client.get("/", query_string={"q": GIFTS_2018}).get_data(as_text=True))
    assert "第八十八条" in box and "历史版本 · 2018年版" in box and ">已修订<" in box, box

    box = _answer_box(client.get("/", query_string={"q": CURRENT}).get_data(as_text=True))
    assert "第十二条" in box and 'id="answer-status"' not in box  # 现行 and one version: no mark


def test_folded_copies_carry_and_show_their_status(client, shipped_library) -> None:
    # the engine: every also_in entry has its document's status, also under a pinned article look-up
    for q in (GIFTS, "2018年版纪律处分条例第七条"):
        top = shipped_library.search(q, k=5)[0]
        statuses = {a["doc_id"]: a["status"] for a in top["also_in"]}
        assert statuses.get(D2018 if top["doc_id"] == D2023 else D2023) == ("已修订" if top["doc_id"] == D2023
                                                                            else "现行"), (q, top["also_in"])
    # the page: the 2018 copy under the 2023 hit is marked 历史版本 · 2018年版 and 已修订, the 2023 copies are not 已修订
    items = _also_in_items(client.get("/", query_string={"q": GIFTS}).get_data(as_text=True))
    old = [li for li in items if D2018 in li]
    new = [li for li in items if D2023 in li]
    assert old and all("历史版本 · 2018年版" in li and ">已修订<" in li for li in old), old
    assert new and all("现行 · 2023年版" in li and "已修订" not in li for li in new), new


def test_exports_have_status_and_version(client) -> None:
    from docx import Document
    from openpyxl import load_workbook

    args = {"q": GIFTS_2018, "k": 3}
    rows = list(csv.DictReader(io.StringIO(client.get("/api/search", query_string={**args, "format": "csv"})
                                           .get_data().decode("utf-8-sig"))))
    assert rows[0]["文档编号 doc_id"] == D2018
    assert rows[0]["状态 status"] == "已修订" and rows[0]["版本 version"] == "2018年版"

    def csv_rows(q: str, k: int) -> list[dict[str, str]]:
        raw = client.get("/api/search", query_string={"q": q, "k": k, "format": "csv"}).get_data()
        return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))

    top = csv_rows(GIFTS, 1)[0]
    assert (top["文档编号 doc_id"], top["状态 status"], top["版本 version"]) == (D2023, "现行", "2023年版")
    assert f"第八十八条（2018年版 · 已修订；{D2018}）" in top["另见 also_in"], top["另见 also_in"]
    one = csv_rows(CURRENT, 1)[0]
    assert one["状态 status"] == "现行" and one["版本 version"] == ""

    book = load_workbook(io.BytesIO(client.get("/api/search", query_string={**args, "format": "xlsx"}).get_data()))
    sheet = [list(r) for r in book["问答结果"].iter_rows(values_only=True)]
    col = {str(name).split(" ")[-1]: i for i, name in enumerate(sheet[0])}
    assert (sheet[1][col["status"]], sheet[1][col["version"]]) == ("已修订", "2018年版")

    paras = [p.text for p in Document(io.BytesIO(client.get("/api/search", query_string={**args, "format": "docx"})
                                                 .get_data())).paragraphs]
    head = next(p for p in paras if p.startswith("[1] "))
    assert "第八十八条" in head and head.endswith("（2018年版 · 已修订）"), head


def test_batch_page_marks_the_status(client) -> None:
    html = client.post("/batch", data={"questions": f"{ACCOUNTABILITY}\n{CURRENT}", "format": "html"},
                       content_type="multipart/form-data").get_data(as_text=True)
    answers = re.findall(r'<p class="batch-answer">.*?</p>', html, re.S)
    assert len(answers) == 2, answers
    assert "问责条例" in answers[0] and ">已修订<" in answers[0]
    assert "支部工作条例" in answers[1] and "badge" not in answers[1]


def test_cli_marks_folded_copies(shipped_library, capsys) -> None:
    _print_hits(GIFTS, shipped_library.search(GIFTS, k=1))
    out = capsys.readouterr().out
    assert re.search(r"另见: 中国共产党纪律处分条例 › .*第八十八条（历史版本）\[已修订\]", out), out
