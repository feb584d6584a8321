"""Issue #6 at the ingest and analyzer level: bad documents give clear per-file errors, bad questions stay safe."""
from __future__ import annotations

import io
import json
import random
import re
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from indexer.backends.local.keyword import WhooshKeywordIndex
from indexer.ingest.decode import strip_invisible
from indexer.ingest.files import (
    MAX_FILE_BYTES,
    load_directory,
    load_file,
    load_file_checked,
    max_file_bytes,
)
from indexer.ingest.jsonl import MAX_LINE_PROBLEMS
from indexer.text.analyzer import ChineseAnalyzer, expand_query, fold, has_searchable_text, query_terms, to_simplified
from indexer.types import IngestError, Passage

from conftest import SEED

ZH = "党支部是党的基础组织，担负直接教育党员、管理党员、监督党员的职责。"
ZH2 = "支部委员会每季度至少召开一次会议，研究部署支部工作。"


def _garbage(n: int, seed: int = 11) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(n))


def _refused(path: Path, pattern: str, **kw: object) -> IngestError:
    """Assert both loaders refuse ``path`` with a message naming the file and matching ``pattern``."""
    with pytest.raises(IngestError, match=pattern) as ei:
        load_file_checked(path, **kw)  # type: ignore[arg-type]
    err = ei.value
    assert err.path == str(path) and str(err).startswith(str(path)) and path.name in str(err)
    with pytest.raises(IngestError, match=pattern):
        load_file(path, **kw)  # type: ignore[arg-type]
    return err


# =========================================================================== bad documents


def test_empty_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    _refused(empty, r"file is empty")
    nuls = tmp_path / "never-written.txt"
    nuls.write_bytes(b"\x00" * 4096)  # a download that was preallocated but never filled
    _refused(nuls, r"only NUL bytes")
    invisible = tmp_path / "invisible.txt"
    invisible.write_text(" \u200b\n\u3000\ufeff\u2060\t\u200d \x07\n", encoding="utf-8")
    _refused(invisible, r"empty document")


def test_binary_junk_named_txt(tmp_path: Path) -> None:
    f = tmp_path / "junk.txt"
    f.write_bytes(_garbage(8192))
    _refused(f, r"cannot decode .*binary file")
    nonul = tmp_path / "junk2.txt"
    nonul.write_bytes(bytes(b for b in _garbage(8192, seed=5) if b))
    _refused(nonul, r"cannot decode")


def _real_docx(path: Path, paragraphs: int = 60) -> bytes:
    import docx

    doc = docx.Document()
    doc.add_heading("党支部工作手册", level=1)
    for i in range(paragraphs):
        doc.add_paragraph(f"第{i + 1}段：{ZH}{ZH2}")
    doc.save(str(path))
    return path.read_bytes()


def test_truncated_docx(tmp_path: Path) -> None:
    whole = _real_docx(tmp_path / "whole.docx")
    assert "第60段" in load_file(tmp_path / "whole.docx")[0].text  # the uncut file is fine
    cut = tmp_path / "half-downloaded.docx"
    cut.write_bytes(whole[: len(whole) // 2])
    err = _refused(cut, r"corrupt or not a Word \.docx file")
    assert "Traceback" not in err.reason and "\n" not in err.reason


def test_docx_with_broken_document_xml(tmp_path: Path) -> None:
    whole = _real_docx(tmp_path / "whole.docx", paragraphs=3)
    src = zipfile.ZipFile(io.BytesIO(whole))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "word/document.xml":
                data = data[: len(data) // 2]  # XML cut mid-element
            z.writestr(item, data)
    f = tmp_path / "broken.docx"
    f.write_bytes(out.getvalue())
    _refused(f, r"corrupt or not a Word \.docx file")


def test_docx_without_text(tmp_path: Path) -> None:
    import docx

    f = tmp_path / "blank.docx"
    doc = docx.Document()
    doc.add_paragraph("   ")
    doc.add_paragraph("\u200b\u200b")
    doc.save(str(f))
    _refused(f, r"empty document")


def _pdf_canvas(buf: io.BytesIO, **kw: object):
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    return canvas.Canvas(buf, **kw)


def test_encrypted_pdf(tmp_path: Path) -> None:
    buf = io.BytesIO()
    c = _pdf_canvas(buf, encrypt="secret")
    c.setFont("STSong-Light", 14)
    c.drawString(72, 720, ZH)
    c.showPage()
    c.save()
    f = tmp_path / "locked.pdf"
    f.write_bytes(buf.getvalue())
    _refused(f, r"password-protected")


def test_image_only_pdf(tmp_path: Path) -> None:
    from PIL import Image, ImageDraw
    from reportlab.lib.utils import ImageReader

    img = Image.new("RGB", (400, 120), "white")
    ImageDraw.Draw(img).text((10, 50), "scanned page", fill="black")  # text as pixels only
    buf = io.BytesIO()
    c = _pdf_canvas(buf)
    c.drawImage(ImageReader(img), 50, 500, 400, 120)
    c.showPage()
    c.save()
    f = tmp_path / "scan.pdf"
    f.write_bytes(buf.getvalue())
    err = _refused(f, r"no text layer")
    assert "OCR" in err.reason


def test_html_of_only_scripts(tmp_path: Path) -> None:
    f = tmp_path / "app.html"
    f.write_text(
        "<!doctype html><html><head><title></title><style>body{color:red}</style>"
        "<script src='a.js'></script></head><body><!-- 党支部 --><script>document.write('党支部工作')</script>"
        "<noscript></noscript><div id='app'></div></body></html>",
        encoding="utf-8",
    )
    _refused(f, r"no readable text \(only scripts/markup\)")


def _jsonl(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_jsonl_keeps_valid_lines_and_reports_bad_ones(tmp_path: Path) -> None:
    f = tmp_path / "rows.jsonl"
    rows = [
        json.dumps({"id": "r1", "text": ZH}, ensure_ascii=False),
        '{"id": "r2", "text": "少了引号}',
        json.dumps({"id": "r3", "text": ZH2, "title": "支部委员会"}, ensure_ascii=False),
        json.dumps({"id": "r4"}, ensure_ascii=False),
        json.dumps({"id": "r5", "text": "党员应当按月交纳党费。"}, ensure_ascii=False),
    ]
    _jsonl(f, rows)
    docs, problems = load_file_checked(f)
    assert [d.doc_id for d in docs] == ["r1", "r3", "r5"]
    assert [d.meta["line"] for d in docs] == [1, 3, 5]
    assert docs[1].title == "支部委员会" and docs[1].text == ZH2
    assert len(problems) == 2
    assert problems[0].startswith("第 2 行：不是有效的 JSON / line 2: invalid JSON (")
    assert problems[1] == "第 4 行：缺少非空的 text 文本字段 / line 4: 'text' is missing"
    assert [d.doc_id for d in load_file(f)] == ["r1", "r3", "r5"]


def test_jsonl_duplicate_ids_keep_the_first(tmp_path: Path) -> None:
    f = tmp_path / "dups.jsonl"
    _jsonl(f, [json.dumps(r, ensure_ascii=False) for r in (
        {"id": "a", "text": "第一份"}, {"id": "b", "text": "第二份"}, {"id": "a", "text": "重复一"}, {"id": 7, "text": "七"},
        {"id": "7", "text": "重复二"},
    )])
    docs, problems = load_file_checked(f)
    assert [(d.doc_id, d.text) for d in docs] == [("a", "第一份"), ("b", "第二份"), ("7", "七")]
    assert problems == ["第 3 行：文档编号与第 1 行重复 / line 3: duplicate id 'a' (first used on line 1)",
                        "第 5 行：文档编号与第 4 行重复 / line 5: duplicate id '7' (first used on line 4)"]


def test_jsonl_all_lines_invalid(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    _jsonl(f, ["not json", "[1, 2]", '{"text": 3}', '{"text": ""}', "{"])
    err = _refused(f, r"no valid lines \(5 invalid\): 第 1 行：不是有效的 JSON / line 1: invalid JSON")
    assert "line 2: expected a JSON object, got list" in err.reason
    assert "line 3: 'text' is not a string (int)" in err.reason and "(2 more)" in err.reason


def test_jsonl_undecodable_line_is_skipped(tmp_path: Path) -> None:
    f = tmp_path / "half.jsonl"
    good = [json.dumps({"id": f"g{i}", "text": ZH}, ensure_ascii=False).encode("utf-8") for i in range(3)]
    f.write_bytes(b"\n".join([good[0], bytes(b for b in _garbage(300, seed=2) if b not in (0, 10)), good[1], good[2]]))
    docs, problems = load_file_checked(f)
    assert [d.doc_id for d in docs] == ["g0", "g1", "g2"]
    assert problems == ["第 2 行：无法识别文字编码 / line 2: cannot decode as UTF-8/GBK text"]


def test_jsonl_problem_list_is_bounded(tmp_path: Path) -> None:
    f = tmp_path / "many.jsonl"
    lines = [json.dumps({"id": "ok", "text": ZH}, ensure_ascii=False)] + ["oops"] * 500
    _jsonl(f, lines)
    docs, problems = load_file_checked(f)
    assert len(docs) == 1
    assert len(problems) == MAX_LINE_PROBLEMS + 1
    assert problems[0].startswith("第 2 行：") and f"/ line {MAX_LINE_PROBLEMS + 1}: " in problems[MAX_LINE_PROBLEMS - 1]
    assert problems[MAX_LINE_PROBLEMS - 1].startswith(f"第 {MAX_LINE_PROBLEMS + 1} 行：")
    assert problems[-1] == (f"另有 {500 - MAX_LINE_PROBLEMS} 行无效，未逐一列出，最后一行是第 501 行 / "
                            f"{500 - MAX_LINE_PROBLEMS} more invalid line(s) not listed, the last on line 501")


def _write_repeated(path: Path, block: bytes, size: int) -> None:
    """Write ``size`` bytes of ``block`` repeated, without holding the file in memory."""
    with open(path, "wb") as fh:
        written = 0
        while written < size:
            chunk = block[: size - written]
            fh.write(chunk)
            written += len(chunk)


def test_very_large_text_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARTYQA_MAX_FILE_MB", raising=False)
    assert max_file_bytes() == MAX_FILE_BYTES == 50 * 1024 * 1024
    f = tmp_path / "huge.txt"
    _write_repeated(f, (ZH + "\n").encode("utf-8") * 4000, 60 * 1024 * 1024)
    opened: list[str] = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: (opened.append(str(p)), real_open(p, *a, **k))[1])
    err = _refused(f, r"file is 60 MB, over the 50 MB limit \(PARTYQA_MAX_FILE_MB\)")
    assert str(f) not in opened  # refused from its size alone
    assert err.reason == "文件超过大小上限 / file is 60 MB, over the 50 MB limit (PARTYQA_MAX_FILE_MB)"


def test_size_limit_from_env_and_parameter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "big.txt"
    _write_repeated(f, (ZH + "\n").encode("utf-8"), 1_572_864)  # 1.5 MB
    monkeypatch.setenv("PARTYQA_MAX_FILE_MB", "1")
    assert max_file_bytes() == 1024 * 1024
    _refused(f, r"file is 1.5 MB, over the 1 MB limit \(PARTYQA_MAX_FILE_MB\)")
    assert load_file(f, max_bytes=2 * 1024 * 1024)[0].text.startswith(ZH)  # the parameter wins over the env var
    _refused(f, r"over the 0.5 MB limit", max_bytes=512 * 1024)
    monkeypatch.setenv("PARTYQA_MAX_FILE_MB", "0")  # 0 = no limit
    assert max_file_bytes() == 0 and load_file(f)[0].text.count(ZH) > 10_000
    monkeypatch.setenv("PARTYQA_MAX_FILE_MB", "lots")
    assert max_file_bytes() == MAX_FILE_BYTES  # a bad value falls back to the default (and logs a warning)


def test_large_gbk_file_memory_stays_linear(tmp_path: Path) -> None:
    """A GBK file near the limit is read with a few times its size in memory, not a list of every character."""
    f = tmp_path / "gbk.txt"
    block = (SEED.read_text(encoding="utf-8").replace("\ufeff", "") + "\n").encode("gb18030")
    size = 8 * 1024 * 1024
    _write_repeated(f, block, size)
    tracemalloc.start()
    try:
        docs = load_file(f, max_bytes=size + 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert docs[0].meta["encoding"] == "gb18030" and "民主集中制" in docs[0].text
    assert peak < 5 * size, f"peak {peak / size:.1f}x the file size"


def test_mixed_encodings_decode_line_by_line(tmp_path: Path) -> None:
    utf8_part = "第一部分用UTF-8保存：" + ZH
    gbk_part = "第二部分用GBK保存：" + ZH2
    f = tmp_path / "concatenated.txt"
    f.write_bytes((utf8_part + "\n").encode("utf-8") + (gbk_part + "\n").encode("gbk") + "结尾\n".encode("utf-8"))
    d = load_file(f)[0]
    assert d.text == f"{utf8_part}\n{gbk_part}\n结尾\n"
    assert d.meta["encoding"] == "utf-8+gb18030"
    g = tmp_path / "gbk-first.md"
    g.write_bytes((gbk_part * 3 + "\n\n").encode("gbk") + (utf8_part * 3 + "\n").encode("utf-8"))
    assert load_file(g)[0].text == f"{gbk_part * 3}\n\n{utf8_part * 3}\n"
    titles = tmp_path / "titles.txt"  # a UTF-8 part without the common punctuation, then a GBK part
    titles.write_bytes("中国共产党支部工作条例\n党员教育管理工作条例\n".encode("utf-8") + (ZH2 + "\n").encode("gbk"))
    assert load_file(titles)[0].text == f"中国共产党支部工作条例\n党员教育管理工作条例\n{ZH2}\n"


def test_mixed_encoding_never_gives_latin1_mojibake(tmp_path: Path) -> None:
    f = tmp_path / "mixed.txt"
    parts = [(ZH + "\n").encode("utf-8"), (ZH2 + "\n").encode("gbk")] * 20
    f.write_bytes(b"".join(parts))
    text = load_file(f)[0].text
    assert text.count(ZH) == 20 and text.count(ZH2) == 20
    assert not re.search(r"[\u00c0-\u00ff\ufffd]", text)


def test_zero_width_and_control_characters_are_removed(tmp_path: Path) -> None:
    raw = "党\u200b支部\u200c是\u200d党的\ufeff基础\u2060组织。\x07\x1b[0m\r\n第二行\t保留制表符\x0c第三行\u2028第四行\u00ad"
    f = tmp_path / "dirty.txt"
    f.write_text(raw, encoding="utf-8")
    d = load_file(f)[0]
    assert d.text == "党支部是党的基础组织。[0m\n第二行\t保留制表符\n第三行\n第四行"
    assert strip_invisible(raw) == d.text
    j = tmp_path / "dirty.jsonl"
    j.write_text(json.dumps({"id": "x\u200b", "title": "标\u200b题", "text": "三会\u200b一课\u0000\u0001"}) + "\n", encoding="utf-8")
    row = load_file(j)[0]
    assert (row.doc_id, row.title, row.text) == ("x", "标题", "三会一课")
    h = tmp_path / "dirty.html"
    h.write_text("<html><body><p>组织&#8203;生活会&#xFEFF;每年召开。</p></body></html>", encoding="utf-8")
    assert load_file(h)[0].text == "组织生活会每年召开。"


def test_trailing_nul_padding_of_a_half_download(tmp_path: Path) -> None:
    f = tmp_path / "partial.txt"
    f.write_bytes((ZH + "\n").encode("utf-8") + b"\x00" * 5000)
    assert load_file(f)[0].text == ZH + "\n"


def test_unsupported_extension(tmp_path: Path) -> None:
    for name, pattern in (("slides.pptx", r"unsupported file type '\.pptx'; supported: .*\.docx"),
                          ("old.doc", r"legacy Word \.doc is not supported"),
                          ("README", r"unsupported file type \(no extension\)")):
        f = tmp_path / name
        f.write_text(ZH, encoding="utf-8")
        _refused(f, pattern)


def test_a_batch_goes_on_past_every_bad_file(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text(ZH, encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "junk.txt").write_bytes(_garbage(4096))
    (tmp_path / "scripts.html").write_text("<script>var x=1</script>", encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text('{"id": "j1", "text": "三会一课"}\nnot json\n', encoding="utf-8")
    (tmp_path / "half.docx").write_bytes(_real_docx(tmp_path / "tmp.docx")[:3000])
    (tmp_path / "tmp.docx").unlink()
    docs, errors = load_directory(tmp_path)
    assert sorted(d.doc_id for d in docs) == ["good.txt", "j1"]
    reasons = {Path(e.path).name: e.reason for e in errors}
    assert set(reasons) == {"empty.txt", "junk.txt", "scripts.html", "rows.jsonl", "half.docx"}
    assert reasons["rows.jsonl"].startswith("第 2 行：不是有效的 JSON / line 2: invalid JSON")
    assert "file is empty" in reasons["empty.txt"] and "cannot decode" in reasons["junk.txt"]


# =========================================================================== bad questions (analyzer)


def test_traditional_question_gives_simplified_terms() -> None:
    trad, simp = "黨支部委員會多久開一次會", "党支部委员会多久开一次会"
    assert to_simplified(trad) == simp
    assert query_terms(trad) == query_terms(simp)
    assert "党支部委员会" in query_terms(trad)
    assert to_simplified("瞭解黨員的思想，答覆群眾來信") == "了解党员的思想，答复群众来信"  # same-length phrases
    assert to_simplified(simp) == simp  # simplified text is left as it is
    assert to_simplified("著名的乾隆") == "著名的干隆"  # character level: both sides map 乾 alike
    assert "党支部委员会" in expand_query("支委會多久開一次會")


def test_fold_keeps_length_and_maps_lookalikes() -> None:
    for text in ("⼀⼆三", "黨員ＡＢＣ１２３　瞭解", "沈默是金", "😀黨🎉", "\U0002f800"):
        assert len(fold(text)) == len(text)
    assert fold("⼈⼤代表") == "人大代表"  # Kangxi radical look-alikes from PDF text
    assert fold("黨員ＡＢＣ") == "党员ABC"


def test_traditional_document_found_by_simplified_question_with_exact_offsets(tmp_path: Path) -> None:
    text = "黨支部委員會每季度至少召開一次會議，瞭解黨員思想狀況。"
    tokens = [(t.text, t.startchar, t.endchar) for t in ChineseAnalyzer()(text, chars=True)]
    assert ("党支部委员会", 0, 6) in tokens and ("了解", 18, 20) in tokens
    for word, start, end in tokens:
        assert to_simplified(text[start:end]).lower() == word  # offsets point at the traditional original
    ix = WhooshKeywordIndex.create(tmp_path / "kw")
    try:
        ix.add([
            Passage(doc_id="tw", title="支部工作", section="", text=text, start=0, end=len(text), ordinal=0),
            Passage(doc_id="cn", title="党费", section="", text="党员应当按月交纳党费。", start=0, end=11, ordinal=0),
        ])
        hits = ix.search("党支部委员会多久开一次会", 5)
        assert hits and hits[0].pid == "tw#0" and "党支部委员会" in hits[0].terms
        hits = ix.search("黨員怎樣交納黨費", 5)
        assert hits and hits[0].pid == "cn#0"
    finally:
        ix.close()


@pytest.mark.parametrize("text", ["", "   \t\n\u3000", "？？？！！！", "……——《》【】", "😀🎉👍🏻", "❤️‍🔥", "*?:~^[](){}\"'", "\u200b\u200b"])
def test_punctuation_or_emoji_only_has_no_searchable_text(text: str) -> None:
    assert not has_searchable_text(text)
    assert query_terms(text) == []


@pytest.mark.parametrize("text", ["党", "a", "7", "１２", "ＡＢ", "黨", "COVID-19?"])
def test_searchable_text(text: str) -> None:
    assert has_searchable_text(text)


def test_latin_words_are_lowercase_tokens() -> None:
    assert query_terms("Party BRANCH Meeting") == ["party", "branch", "meeting"]
    assert query_terms("ＰＡＲＴＹ　Ｂｒａｎｃｈ") == ["party", "branch"]
    assert query_terms("What is the meeting about?")[0] == "meeting"  # stopwords go, content words stay


def test_mixed_language_query() -> None:
    terms = query_terms("党支部 meeting 多久 AND 一次")
    assert "党支部" in terms and "meeting" in terms and "一次" in terms
    assert "and" not in terms


def test_query_syntax_characters_are_plain_text() -> None:
    terms = query_terms('title:党章 AND (入党 OR 转正) NOT 预备* ~2 ^3 [a TO b] "三会一课" \\ / ! {x}')
    assert {"党章", "入党", "转正", "三会一课"} <= set(terms)
    assert all(re.fullmatch(r"\w+", t) for t in terms), terms
    assert not {"and", "or", "not", "to"} & set(terms)


def test_very_long_question_is_analysed_without_error() -> None:
    long_q = (ZH + "Meeting 黨員 😀 ") * 300
    assert len(long_q) > 10_000
    terms = query_terms(long_q)
    assert "党员" in terms and "meeting" in terms and len(terms) == len(set(terms))
