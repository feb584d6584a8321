"""Tests for indexer.ingest: decoding Chinese text and loading txt/md/docx/pdf/html/jsonl files."""
from __future__ import annotations

import codecs
import io
import json
import logging
import random
import re
import zipfile
from pathlib import Path

import pytest

from indexer.ingest.decode import decode_bytes
from indexer.ingest.files import SUPPORTED_EXTENSIONS, iter_corpus_files, load_directory, load_file, load_file_checked
from indexer.ingest.html import html_to_text
from indexer.types import IngestError, RawDocument

from conftest import SEED, SHARED_BENCH as BENCH
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ingest"


@pytest.fixture(scope="module")
def seed_text() -> str:
    """The seed essay as UTF-8 text."""
    return SEED.read_text(encoding="utf-8")


def _garbage(n: int = 4096, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(n))


# --------------------------------------------------------------------------- txt and decoding


def test_supported_extensions() -> None:
    assert SUPPORTED_EXTENSIONS == {".txt", ".md", ".markdown", ".docx", ".pdf", ".html", ".htm", ".jsonl"}


def test_seed_file_loads(seed_text: str) -> None:
    docs = load_file(SEED)
    assert len(docs) == 1
    d = docs[0]
    assert isinstance(d, RawDocument)
    assert d.doc_id == "基层党支部工作论文.txt"
    assert d.kind == "txt" and d.title is None
    assert d.source == str(SEED)
    assert "基层党支部工作论文" in d.text and "民主集中制" in d.text
    assert d.text == seed_text.replace("\r\n", "\n")


def test_explicit_doc_id(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("党支部工作", encoding="utf-8")
    assert load_file(str(f), doc_id="custom/id")[0].doc_id == "custom/id"


@pytest.mark.parametrize("encoding", ["gbk", "gb18030"])
def test_gbk_text_decodes_identically(tmp_path: Path, seed_text: str, encoding: str) -> None:
    f = tmp_path / "gbk.txt"
    f.write_bytes(seed_text.encode(encoding))
    d = load_file(f)[0]
    assert d.text == seed_text
    assert d.meta["encoding"] == "gb18030"
    assert "民主集中制" in d.text


def test_gb2312_short_text() -> None:
    text = "中国共产党支部工作条例（试行）第一条"
    assert decode_bytes(text.encode("gb2312")) == text


def test_utf8_bom_is_stripped(tmp_path: Path, seed_text: str) -> None:
    f = tmp_path / "bom.txt"
    f.write_bytes(codecs.BOM_UTF8 + seed_text.encode("utf-8"))
    d = load_file(f)[0]
    assert not d.text.startswith("\ufeff")
    assert d.text == seed_text


@pytest.mark.parametrize(
    "bom,codec",
    [
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
    ],
)
def test_utf16_utf32_with_bom(tmp_path: Path, seed_text: str, bom: bytes, codec: str) -> None:
    f = tmp_path / "wide.txt"
    f.write_bytes(bom + seed_text.replace("\n", "\r\n").encode(codec))
    d = load_file(f)[0]
    assert d.text == seed_text  # BOM gone, CRLF -> LF
    assert "\r" not in d.text


def test_newlines_normalised() -> None:
    assert decode_bytes("第一行\r\n第二行\r第三行\n".encode("utf-8")) == "第一行\n第二行\n第三行\n"


def test_truncated_utf8_keeps_text_not_mojibake() -> None:
    text = "党支部是党的基础组织，是党组织开展工作的基本单元。" * 5
    data = text.encode("utf-8")[:-2]  # cut in the middle of the last character
    out = decode_bytes(data)
    assert out.startswith(text[:-1][:60])
    assert out.endswith("\ufffd") and out.count("\ufffd") == 1


def test_chinese_is_never_decoded_as_latin1() -> None:
    # GBK text with a few damaged bytes: must come back as Chinese (with U+FFFD), not as Latin-1 mojibake.
    text = "坚持民主集中制原则，发扬党内民主，尊重党员主体地位。严格执行三会一课制度。" * 10
    data = bytearray(text.encode("gbk"))
    data[100] = 0xFF
    out = decode_bytes(bytes(data))
    assert "民主集中制" in out and "三会一课" in out
    assert not re.search(r"[À-ÿ]", out)


def test_binary_garbage_txt_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "garbage.txt"
    f.write_bytes(_garbage())
    with pytest.raises(IngestError) as ei:
        load_file(f)
    assert "cannot decode" in str(ei.value) and "garbage.txt" in str(ei.value)
    assert ei.value.path == str(f)


def test_binary_without_nul_bytes_is_rejected() -> None:
    data = bytes(b for b in _garbage(2048, seed=3) if b != 0)
    with pytest.raises(IngestError, match="binary file"):
        decode_bytes(data, "x.bin")


def test_png_renamed_to_txt_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "photo.txt"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + _garbage(1000))
    with pytest.raises(IngestError, match="cannot decode"):
        load_file(f)


def test_empty_and_whitespace_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(IngestError, match="empty") as ei:
        load_file(empty)
    assert "empty.txt" in str(ei.value)
    blank = tmp_path / "blank.md"
    blank.write_bytes(b" \n\n\t \n")
    with pytest.raises(IngestError, match="blank.md"):
        load_file(blank)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="not found") as ei:
        load_file(tmp_path / "nope.txt")
    assert "nope.txt" in str(ei.value)


def test_unsupported_extension(tmp_path: Path) -> None:
    f = tmp_path / "data.xyz"
    f.write_text("党支部", encoding="utf-8")
    with pytest.raises(IngestError) as ei:
        load_file(f)
    msg = str(ei.value)
    assert "data.xyz" in msg and "unsupported file type '.xyz'" in msg and ".docx" in msg


def test_legacy_doc_is_unsupported(tmp_path: Path) -> None:
    f = tmp_path / "old.doc"
    f.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + _garbage(200))
    with pytest.raises(IngestError, match=r"\.docx") as ei:
        load_file(f)
    assert "old.doc" in str(ei.value)


def test_extension_is_case_insensitive(tmp_path: Path) -> None:
    f = tmp_path / "UPPER.TXT"
    f.write_text("支部党员大会", encoding="utf-8")
    d = load_file(f)[0]
    assert d.text == "支部党员大会" and d.doc_id == "UPPER.TXT"


# --------------------------------------------------------------------------- markdown


def test_markdown_front_matter_title(tmp_path: Path) -> None:
    f = tmp_path / "rules.md"
    f.write_text('---\ntitle: "中国共产党支部工作条例"\ndate: 2018-10-28\ntags:\n  - 党规\n---\n# 第一章 总则\n\n第一条 为了坚持和加强党的全面领导。\n', encoding="utf-8")
    d = load_file(f)[0]
    assert d.kind == "md"
    assert d.title == "中国共产党支部工作条例"
    assert d.text.startswith("# 第一章 总则")
    assert "date:" not in d.text


def test_markdown_without_front_matter_keeps_rules(tmp_path: Path) -> None:
    f = tmp_path / "hr.markdown"
    text = "---\n党支部工作要点，第一部分。\n---\n第二部分。\n"
    f.write_text(text, encoding="utf-8")
    d = load_file(f)[0]
    assert d.title is None and d.kind == "md"
    assert d.text == text


# --------------------------------------------------------------------------- docx


def _build_docx(path: Path) -> None:
    import docx

    doc = docx.Document()
    doc.add_paragraph("党支部工作手册", style="Title")
    doc.add_paragraph("本手册供基层党支部书记使用。")
    doc.add_heading("第一章 总则", level=1)
    doc.add_paragraph("党支部是党的基础组织。")
    doc.add_heading("一、组织设置", level=2)
    doc.add_paragraph("正式党员三人以上的，应当成立党支部。")
    table = doc.add_table(rows=2, cols=3)
    for r, row in enumerate([["会议", "频次", "主持人"], ["支部党员大会", "每季度一次", "支部书记"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    doc.add_paragraph("表格之后的段落。")
    doc.save(str(path))


def test_docx_order_headings_and_table(tmp_path: Path) -> None:
    f = tmp_path / "手册.docx"
    _build_docx(f)
    d = load_file(f)[0]
    assert d.kind == "docx" and d.doc_id == "手册.docx"
    assert d.title == "党支部工作手册"
    lines = d.text.split("\n")
    assert lines == [
        "党支部工作手册",
        "本手册供基层党支部书记使用。",
        "# 第一章 总则",
        "党支部是党的基础组织。",
        "## 一、组织设置",
        "正式党员三人以上的，应当成立党支部。",
        "会议 | 频次 | 主持人",
        "支部党员大会 | 每季度一次 | 支部书记",
        "表格之后的段落。",
    ]


def test_docx_merged_cells_core_title_and_chinese_heading_style(tmp_path: Path) -> None:
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    doc = docx.Document()
    doc.core_properties.title = "核心属性标题"
    doc.styles.add_style("标题 2", WD_STYLE_TYPE.PARAGRAPH)
    doc.add_paragraph("二、党员教育", style="标题 2")
    p = doc.add_paragraph("大纲级别一的标题")
    p._p.get_or_add_pPr().append(parse_xml(f'<w:outlineLvl {nsdecls("w")} w:val="0"/>'))
    table = doc.add_table(rows=2, cols=3)
    merged = table.cell(0, 0).merge(table.cell(0, 2))
    merged.text = "合并的表头"
    for c, value in enumerate(["甲", "乙", "丙"]):
        table.cell(1, c).text = value
    f = tmp_path / "merged.docx"
    doc.save(str(f))
    d = load_file(f)[0]
    assert d.title == "核心属性标题"
    assert d.text.split("\n") == ["## 二、党员教育", "# 大纲级别一的标题", "合并的表头", "甲 | 乙 | 丙"]


def test_corrupt_docx_random_bytes(tmp_path: Path) -> None:
    f = tmp_path / "x.docx"
    f.write_bytes(_garbage(500))
    with pytest.raises(IngestError, match="corrupt or not a Word .docx file") as ei:
        load_file(f)
    assert "x.docx" in str(ei.value)


def test_corrupt_docx_zip_without_document_xml(tmp_path: Path) -> None:
    f = tmp_path / "hollow.docx"
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("[Content_Types].xml", '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
        z.writestr("notes.txt", "not a word document")
    with pytest.raises(IngestError, match="corrupt or not a Word .docx file") as ei:
        load_file(f)
    assert "hollow.docx" in str(ei.value) and "document.xml" in str(ei.value)


def test_doc_renamed_to_docx_hints(tmp_path: Path) -> None:
    f = tmp_path / "renamed.docx"
    f.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + _garbage(300))
    with pytest.raises(IngestError, match="legacy .doc"):
        load_file(f)


# --------------------------------------------------------------------------- pdf


def _cid_canvas(buf: io.BytesIO):
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    return canvas.Canvas(buf)


PAGE1 = "第一页：坚持民主集中制原则，发扬党内民主。"
PAGE2 = "第二页：基层党支部是党的基础组织。"


def _build_pdf(path: Path, title: str | None = "党支部工作指南") -> bytes:
    buf = io.BytesIO()
    c = _cid_canvas(buf)
    if title:
        c.setTitle(title)
    for line in (PAGE1, PAGE2):
        c.setFont("STSong-Light", 14)
        c.drawString(72, 720, line)
        c.showPage()
    c.save()
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def test_pdf_chinese_text_layer_two_pages(tmp_path: Path) -> None:
    f = tmp_path / "guide.pdf"
    _build_pdf(f)
    d = load_file(f)[0]
    assert d.kind == "pdf" and d.doc_id == "guide.pdf"
    assert d.title == "党支部工作指南"
    assert d.meta["pages"] == 2
    assert PAGE1 in d.text and PAGE2 in d.text
    assert d.text.index(PAGE1) < d.text.index(PAGE2)
    assert "\n" in d.text[d.text.index(PAGE1) + len(PAGE1) : d.text.index(PAGE2)]  # page break


def test_pdf_without_title_metadata(tmp_path: Path) -> None:
    f = tmp_path / "notitle.pdf"
    _build_pdf(f, title=None)
    d = load_file(f)[0]
    assert d.title is None and PAGE2 in d.text


def test_pdf_blank_page_has_no_text_layer(tmp_path: Path) -> None:
    buf = io.BytesIO()
    c = _cid_canvas(buf)
    c.rect(100, 100, 300, 400, fill=1)  # drawing, no text
    c.showPage()
    c.save()
    f = tmp_path / "blank.pdf"
    f.write_bytes(buf.getvalue())
    with pytest.raises(IngestError, match="text layer") as ei:
        load_file(f)
    assert "blank.pdf" in str(ei.value) and "OCR" in str(ei.value)


def test_pdf_image_only_page_has_no_text_layer(tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    from reportlab.lib.utils import ImageReader

    img = Image.new("RGB", (200, 100), "white")
    buf = io.BytesIO()
    c = _cid_canvas(buf)
    c.drawImage(ImageReader(img), 50, 500, 400, 200)
    c.showPage()
    c.save()
    f = tmp_path / "scan.pdf"
    f.write_bytes(buf.getvalue())
    with pytest.raises(IngestError, match="text layer"):
        load_file(f)


def test_pdf_corrupt(tmp_path: Path) -> None:
    f = tmp_path / "broken.pdf"
    f.write_bytes(b"%PDF-1.4\n" + _garbage(400))
    with pytest.raises(IngestError, match="PDF") as ei:
        load_file(f)
    assert "broken.pdf" in str(ei.value)
    g = tmp_path / "fake.pdf"
    g.write_text("这不是PDF文件", encoding="utf-8")
    with pytest.raises(IngestError, match="not a PDF"):
        load_file(g)


def test_pdf_password_protected_and_owner_only_encryption(tmp_path: Path) -> None:
    import pypdf

    src = tmp_path / "src.pdf"
    _build_pdf(src)
    for user_pw, name in (("secret", "locked.pdf"), ("", "restricted.pdf")):
        writer = pypdf.PdfWriter(clone_from=str(src))
        writer.encrypt(user_password=user_pw, owner_password="owner-pw", algorithm="AES-256")
        with open(tmp_path / name, "wb") as fh:
            writer.write(fh)
    with pytest.raises(IngestError, match="password") as ei:
        load_file(tmp_path / "locked.pdf")
    assert "locked.pdf" in str(ei.value)
    d = load_file(tmp_path / "restricted.pdf")[0]  # permissions-only encryption opens with the empty password
    assert PAGE1 in d.text and PAGE2 in d.text


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_pdf_warnings_are_logged_at_debug(tmp_path: Path) -> None:
    data = _build_pdf(tmp_path / "ok.pdf")
    m = re.search(rb"startxref\s+(\d+)", data)
    assert m
    bad = data[: m.start(1)] + str(int(m.group(1)) + 7).encode() + data[m.end(1) :]
    f = tmp_path / "badxref.pdf"
    f.write_bytes(bad)
    # What an application's root handler sees (pytest's caplog also hooks non-propagating loggers, so not caplog).
    root = logging.getLogger()
    handler, old_level = _ListHandler(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        d = load_file(f)[0]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert PAGE1 in d.text
    assert not [r for r in handler.records if r.levelno >= logging.WARNING]
    assert any(r.name == "indexer.ingest.pdf" and "pypdf: incorrect startxref" in r.getMessage() for r in handler.records)


# --------------------------------------------------------------------------- html


def _page_html() -> str:
    return (FIXTURES / "page.html").read_text(encoding="utf-8")


def _assert_main_text(d: RawDocument) -> None:
    assert d.kind == "html"
    assert d.title == "支部工作条例学习体会"
    lines = d.text.split("\n")
    assert lines[0] == "# 支部工作条例学习体会"
    assert "## 一、坚持民主集中制" in lines
    assert "党支部是党的基础组织，是党组织开展工作的基本单元，是党在社会基层组织中的战斗堡垒。" in lines
    assert "坚持民主集中制原则，发扬党内民主，尊重党员主体地位。" in lines  # <br> ends the line
    assert "严格执行“三会一课”制度。" in lines
    assert "支部党员大会 | 每季度一次" in lines
    assert "加强思想建设" in lines and "加强组织建设" in lines
    for junk in ("脚本", "样式表", "党建要闻", "理论学习", "当前位置", "页眉口号", "侧栏", "网友评论", "版权所有", "分享到"):
        assert junk not in d.text, junk


def test_html_article_extraction(tmp_path: Path) -> None:
    f = tmp_path / "page.html"
    f.write_bytes((FIXTURES / "page.html").read_bytes())
    _assert_main_text(load_file(f)[0])


def test_html_gbk_meta_charset(tmp_path: Path) -> None:
    html = _page_html().replace('<meta charset="utf-8">', '<meta charset="gbk">')
    f = tmp_path / "page_gbk.htm"
    f.write_bytes(html.encode("gbk"))
    d = load_file(f)[0]
    assert d.meta["encoding"] == "gb18030"
    _assert_main_text(d)


def test_html_gb2312_http_equiv(tmp_path: Path) -> None:
    html = _page_html().replace(
        '<meta charset="utf-8">', '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
    )
    f = tmp_path / "page_gb2312.html"
    f.write_bytes(html.encode("gbk"))
    _assert_main_text(load_file(f)[0])


def test_html_without_charset_gbk_bytes(tmp_path: Path) -> None:
    html = _page_html().replace('<meta charset="utf-8">', "")
    f = tmp_path / "nocharset.html"
    f.write_bytes(html.encode("gbk"))
    _assert_main_text(load_file(f)[0])


def test_html_density_picks_content_not_nav() -> None:
    page = """<html><head><title>关于加强党支部建设的意见_某某市人民政府网</title></head><body>
    <form id="form1">
    <div class="top"><ul>
      <li><a href="#">首页新闻动态频道栏目</a></li><li><a href="#">政策文件解读专栏目录</a></li>
      <li><a href="#">党建工作交流园地入口</a></li><li><a href="#">基层组织建设专题页面</a></li>
    </ul></div>
    <table width="100%"><tr>
     <td width="200"><a href="#">栏目导航一</a><br><a href="#">栏目导航二</a></td>
     <td><div class="TRS_Editor"><div style="text-align:center">关于加强党支部建设的意见</div>
       <div>各级党组织要认真贯彻落实《中国共产党支部工作条例（试行）》，把党支部建设成为坚强战斗堡垒。</div>
       <div>要严格落实“三会一课”制度，认真开展组织生活会和民主评议党员工作。</div>
       <div style="display:none">隐藏的统计代码文字</div>
     </div></td></tr></table>
    <div class="bottom">主办单位：某某市委组织部</div>
    </form></body></html>"""
    text, title = html_to_text(page)
    assert title == "关于加强党支部建设的意见"
    assert text.split("\n") == [
        "关于加强党支部建设的意见",
        "各级党组织要认真贯彻落实《中国共产党支部工作条例（试行）》，把党支部建设成为坚强战斗堡垒。",
        "要严格落实“三会一课”制度，认真开展组织生活会和民主评议党员工作。",
    ]


def test_html_title_falls_back_to_h1() -> None:
    text, title = html_to_text("<html><body><h1>党费收缴使用和管理的规定</h1><p>党员应当按月交纳党费。</p></body></html>")
    assert title == "党费收缴使用和管理的规定"
    assert text == "# 党费收缴使用和管理的规定\n党员应当按月交纳党费。"


def test_html_without_text(tmp_path: Path) -> None:
    f = tmp_path / "empty.html"
    f.write_text("<html><body><script>var a='只有脚本';</script></body></html>", encoding="utf-8")
    with pytest.raises(IngestError, match=r"no readable text \(only scripts/markup\)"):
        load_file(f)


# --------------------------------------------------------------------------- jsonl


def _write_jsonl(path: Path, rows: list[object]) -> None:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_jsonl_bulk(tmp_path: Path) -> None:
    f = tmp_path / "bulk.jsonl"
    _write_jsonl(
        f,
        [
            {"id": "dz-1", "title": "党章", "text": "中国共产党是中国工人阶级的先锋队。", "group": "党规"},
            "",
            {"doc_id": 42, "text": "党员必须履行下列义务。"},
            {"text": "支部委员会由党员大会选举产生。", "title": "支部条例"},
        ],
    )
    docs = load_file(f)
    assert [d.doc_id for d in docs] == ["dz-1", "42", "bulk:4"]
    assert [d.title for d in docs] == ["党章", None, "支部条例"]
    assert docs[0].text == "中国共产党是中国工人阶级的先锋队。"
    assert docs[0].meta == {"group": "党规", "line": 1}
    assert [d.meta["line"] for d in docs] == [1, 3, 4]
    assert all(d.kind == "jsonl" and d.source == str(f) for d in docs)


@pytest.mark.parametrize(
    "rows,pattern,kept",
    [
        ([{"id": "a", "text": "第一条"}, '{"id": "b", "text": 坏了}', {"id": "c", "text": "第三条"}], r"line 2: invalid JSON", ["第一条", "第三条"]),
        ([{"id": "a", "text": "第一条"}, {"id": "b", "title": "无正文"}], r"line 2: 'text' is missing", ["第一条"]),
        ([{"id": "a", "text": "第一条"}, {"id": "b", "text": "  "}], r"line 2: 'text' is empty", ["第一条"]),
        ([{"id": "a", "text": "第一条"}, "", {"id": "a", "text": "重复"}], r"line 3: duplicate id 'a' \(first used on line 1\)", ["第一条"]),
        ([{"id": "a", "text": "第一条"}, ["不是", "对象"]], r"line 2: expected a JSON object", ["第一条"]),
    ],
)
def test_jsonl_bad_line_is_skipped_and_reported(tmp_path: Path, rows: list[object], pattern: str, kept: list[str]) -> None:
    f = tmp_path / "bad.jsonl"
    _write_jsonl(f, rows)
    docs, problems = load_file_checked(f)
    assert [d.text for d in docs] == kept
    assert len(problems) == 1 and re.search(f"^第 \\d+ 行：.* / {pattern}", problems[0]), problems
    assert load_file(f) == docs  # the plain loader keeps the valid lines too (and logs the bad ones)


def test_jsonl_without_valid_line_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    _write_jsonl(f, ['{"id": "b", "text": 坏了}', ["不是", "对象"]])
    with pytest.raises(IngestError, match=r"no valid lines \(2 invalid\): 第 1 行：.* / line 1: invalid JSON.*; 第 2 行：.* / line 2: expected a JSON object") as ei:
        load_file(f)
    assert ei.value.path == str(f) and "bad.jsonl" in str(ei.value)


# --------------------------------------------------------------------------- directories


def _make_corpus(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "sub" / "a.txt").write_text("党支部是党的基础组织。", encoding="utf-8")
    (root / "b.md").write_text("---\ntitle: 组织生活会\n---\n组织生活会每年至少召开一次。", encoding="utf-8")
    (root / "bad.txt").write_bytes(_garbage(1000))
    (root / "rows.jsonl").write_text(json.dumps({"id": "r1", "text": "三会一课"}, ensure_ascii=False) + "\n", encoding="utf-8")
    (root / ".git" / "HEAD.txt").write_text("隐藏目录", encoding="utf-8")
    (root / ".hidden.txt").write_text("隐藏文件", encoding="utf-8")
    (root / "~$lock.docx").write_bytes(b"lock")
    (root / "notes.xyz").write_text("不支持", encoding="utf-8")


def test_iter_corpus_files_filters_and_sorts(tmp_path: Path) -> None:
    _make_corpus(tmp_path)
    files = [p.relative_to(tmp_path).as_posix() for p in iter_corpus_files(tmp_path)]
    assert files == ["b.md", "bad.txt", "rows.jsonl", "sub/a.txt"]


def test_load_directory_continues_past_bad_file(tmp_path: Path) -> None:
    _make_corpus(tmp_path)
    docs, errors = load_directory(tmp_path)
    assert [d.doc_id for d in docs] == ["b.md", "r1", "sub/a.txt"]
    by_id = {d.doc_id: d for d in docs}
    assert by_id["b.md"].title == "组织生活会"
    assert by_id["sub/a.txt"].text == "党支部是党的基础组织。"
    assert len(errors) == 1
    assert isinstance(errors[0], IngestError)
    assert errors[0].path.endswith("bad.txt") and "cannot decode" in errors[0].reason


def test_load_directory_rejects_id_collision(tmp_path: Path) -> None:
    (tmp_path / "one.jsonl").write_text('{"id": "x", "text": "第一份"}\n', encoding="utf-8")
    (tmp_path / "two.jsonl").write_text('{"id": "x", "text": "第二份"}\n', encoding="utf-8")
    docs, errors = load_directory(tmp_path)
    assert [d.text for d in docs] == ["第一份"]
    assert len(errors) == 1 and errors[0].path.endswith("two.jsonl") and "'x'" in errors[0].reason


def test_missing_corpus_directory(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="not found"):
        load_directory(tmp_path / "absent")


# --------------------------------------------------------------------------- real data smoke test


def test_bench_party_docs_all_load() -> None:
    docs_dir = BENCH / "party-docs"
    if not docs_dir.is_dir():
        pytest.skip("party-docs corpus not available: ../shared/bench absent")
    files = sorted(p for p in docs_dir.rglob("*") if p.suffix in (".md", ".txt"))
    assert files
    chars = 0
    for p in files:
        d = load_file(p)[0]
        assert d.text.strip() and "\ufffd" not in d.text and "\r" not in d.text, p
        chars += len(d.text)
    assert chars > 1_000_000
    rows = load_file(docs_dir / "corpus.jsonl")
    assert len(rows) > 900 and len({d.doc_id for d in rows}) == len(rows)
