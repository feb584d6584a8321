"""Tests for indexer.ingest.clean and indexer.ingest.split on the seed essay, a regulation fixture and (if present) ../shared/bench."""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest

from indexer.ingest.clean import clean_text
from indexer.ingest.split import split_document
from indexer.text.structure import article_label, heading_level, opens_part, sentence_spans
from indexer.types import Document

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "corpus" / "基层党支部工作论文.txt"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "regulation_sample.txt"
BENCH = Path(__file__).resolve().parents[1].parent / "shared" / "bench"
PARTY_DOCS = BENCH / "party-docs" / "corpus.jsonl"

BOILERPLATE = ("下载文档前请自行甄别", "仅部分预览", "如文档侵犯您的权益", "合集下载", "相关文档", "最新文档")
SENT_END = "。！？；!?;…"
CLOSERS = "”’」』）)】》\"'"
CJK = re.compile(r"[\u4e00-\u9fff]")


def _doc(title: str, text: str, doc_id: str = "d") -> Document:
    return Document(doc_id=doc_id, title=title, text=text)


def _ends_sentence_or_paragraph(text: str, end: int) -> bool:
    """True if a passage ending at `end` stops at a sentence end or a paragraph (line) end."""
    if end == len(text) or text[end] == "\n":
        return True
    return text[:end].rstrip(CLOSERS)[-1:] in SENT_END


def _sentence_at(text: str, pos: int) -> tuple[int, int]:
    for s, e in sentence_spans(text):
        if s <= pos < e:
            return s, e
    raise AssertionError(f"no sentence covers offset {pos}")


def _check_passages(doc: Document, passages, max_chars: int = 350) -> None:
    """Offsets exact, ordinals consecutive, no whitespace at the ends, length bound unless one long sentence."""
    assert [p.ordinal for p in passages] == list(range(len(passages)))
    for p in passages:
        assert p.text == doc.text[p.start:p.end]
        assert p.text == p.text.strip() and p.text
        assert p.doc_id == doc.doc_id and p.title == doc.title
        if len(p.text) > max_chars:
            s, e = _sentence_at(doc.text, p.start)
            assert e - s > max_chars, f"passage {p.ordinal} is {len(p.text)} chars but not one long sentence"


def _split_checked(title: str, text: str, doc_id: str = "d") -> tuple[Document, list]:
    """Split a document made of ``text`` and check the passages' invariants (see _check_passages)."""
    doc = _doc(title, text, doc_id)
    passages = split_document(doc)
    _check_passages(doc, passages)
    return doc, passages


# ---------------------------------------------------------------- the seed essay
@pytest.fixture(scope="module")
def seed() -> tuple[Document, list]:
    raw = SEED.read_text(encoding="utf-8")
    title, text = clean_text(raw)
    doc = _doc(title, text, "seed")
    return doc, split_document(doc)


def test_seed_boilerplate_removed(seed):
    doc, passages = seed
    raw = SEED.read_text(encoding="utf-8")
    for phrase in BOILERPLATE:
        assert phrase in raw  # the seed really has it
        assert phrase not in doc.text
        assert all(phrase not in p.text for p in passages)


def test_seed_title(seed):
    doc, _ = seed
    assert doc.title == "基层党支部工作论文"
    assert doc.title not in doc.text.split("\n")


def test_seed_page_breaks_repaired(seed):
    doc, passages = seed
    for joined in ("必然要涉及的内容。", "同时,要认真学习", "要让职工群众及时", "民主决策,民主管理"):
        assert joined in doc.text
        assert any(joined in p.text for p in passages), joined


def test_seed_headings_not_joined(seed):
    doc, _ = seed
    lines = doc.text.split("\n")
    assert "一、坚定信念不动摇,把握政治宣传方向,实施形式任务教育,做好宣传者" in lines
    assert "三、上传下达保畅通,学习理解宏观战略,耐心细致沟通落实,做好协调者" in lines


def test_seed_sections(seed):
    _, passages = seed
    sections = {p.section for p in passages}
    numbered = {s for s in sections if s[:2] in ("一、", "二、", "三、", "四、")}
    assert len(numbered) == 4
    assert {s[:2] for s in numbered} == {"一、", "二、", "三、", "四、"}
    assert sections == numbered | {""}
    assert "二、制度建设不放松,狠抓制度落实工作,严格监督监管工作,做好监督者" in sections
    intro = [p for p in passages if p.section == ""]
    assert any(p.text.startswith("摘要") for p in intro)


def test_seed_passage_shape(seed):
    doc, passages = seed
    _check_passages(doc, passages)
    assert 80 <= statistics.median(len(p.text) for p in passages) <= 350
    for p in passages:
        assert _ends_sentence_or_paragraph(doc.text, p.end), p.text[-20:]
        assert p.start == 0 or doc.text[p.start - 1] == "\n" or doc.text[:p.start].rstrip(CLOSERS)[-1] in SENT_END
    # headings are the section, not passage text
    assert all(not p.text.startswith(("一、", "二、", "三、", "四、")) for p in passages)


def test_seed_clean_is_stable(seed):
    doc, _ = seed
    assert clean_text(doc.text, doc.title) == (doc.title, doc.text)


# ---------------------------------------------------------------- whitespace and characters
def test_whitespace_normalisation():
    raw = (
        "标题\n\n党支部党员人数一般不超过 50 人。\n"
        "\u3000\u3000支 部\u00a0委员会由 3 至 5 人组成。\t\n\n\n\n"
        "Hello World 是英文，full-width，和 half-width, 都保留。\n"
        "零宽\u200b字符\u200d和控制\x07字符\ufeff要去掉。\r\n第二行\u2028第三行\u2002 。"
    )
    title, text = clean_text(raw)
    assert title == "标题"
    assert "50人" in text and "50 人" not in text
    assert "支部委员会由3至5人组成。" in text
    assert "Hello World" in text
    assert "full-width，和 half-width," in text  # full- and half-width punctuation kept as written
    assert "零宽字符和控制字符要去掉。" in text
    for ch in "\u3000\u00a0\t\u200b\u200d\ufeff\x07\r\u2028\u2002":
        assert ch not in text
    assert "\n\n" not in text and text == text.strip()
    assert all(line == line.strip() for line in text.split("\n"))
    assert text.split("\n")[-2:] == ["第二行", "第三行。"]


def test_structural_labels_keep_one_space():
    _, text = clean_text("条例\n\n第一编  总  则\n第一章\u3000总\u3000\u3000则\n第一条\u3000为了规范工作，制定本条例。")
    assert text.split("\n") == ["第一编 总则", "第一章 总则", "第一条 为了规范工作，制定本条例。"]


def test_generic_site_boilerplate():
    raw = "\n".join([
        "学习贯彻党章的体会",
        "  1. 1、下载文档前请自行甄别文档内容的完整性，平台不提供额外的编辑服务。",
        "本文档由用户上传，仅供学习参考",
        "学习贯彻党章的体会",
        "党章是党的总章程，是全党必须共同遵守的根本行为规范。党员可以在学习平台下载学习资料。",
        "第 1 页 共 3 页",
        "全体党员要自觉学习党章、遵守党章、贯彻党章、维护党章，做合格党员。",
        "- 2 -",
        "第2页",
        "相关推荐",
        "党章学习心得体会范文",
        "学习党章个人总结",
        "猜你喜欢",
    ])
    title, text = clean_text(raw)
    assert title == "学习贯彻党章的体会"
    assert text.split("\n") == [
        "党章是党的总章程，是全党必须共同遵守的根本行为规范。党员可以在学习平台下载学习资料。",
        "全体党员要自觉学习党章、遵守党章、贯彻党章、维护党章，做合格党员。",
    ]


def test_given_title_is_dropped_from_body_and_markdown_title():
    title, text = clean_text("# 四风\n\n四风问题是指形式主义、官僚主义、享乐主义和奢靡之风。\n\n四风", title=None)
    assert title == "四风"
    assert text == "四风问题是指形式主义、官僚主义、享乐主义和奢靡之风。"
    title, text = clean_text("正文第一段，说明情况。\n党建工作要点\n正文第二段。", title="党建工作要点")
    assert title == "党建工作要点"
    assert text == "正文第一段，说明情况。\n正文第二段。"


def test_first_line_that_is_not_a_title_stays_in_body():
    title, text = clean_text("党支部要加强学习，提高能力。\n第二段内容。")
    assert title == ""
    assert text.startswith("党支部要加强学习")


def test_clean_does_not_join_complete_or_title_lines():
    raw = "说明\n\n组织部、党校 2025年6月\n中国共产党支部工作条例（试行）\n\n同志们：\n现在，我代表委员会作报告。"
    _, text = clean_text(raw)
    assert text.split("\n") == ["组织部、党校2025年6月", "中国共产党支部工作条例（试行）", "同志们：", "现在，我代表委员会作报告。"]


# ---------------------------------------------------------------- heading / sentence recognition
@pytest.mark.parametrize(
    "line, expected",
    [
        ("# 总标题", (1, "总标题")),
        ("### 三、工作要求", (3, "三、工作要求")),
        ("第一编 总则", (1, "第一编 总则")),
        ("第四章　工作机制", (2, "第四章 工作机制")),
        ("**第二章 会议分类和审批**", (2, "第二章 会议分类和审批")),
        ("第三节 纪律处分", (3, "第三节 纪律处分")),
        ("一、坚定信念不动摇，把握政治宣传方向，实施形式任务教育，做好宣传者", (4, "一、坚定信念不动摇，把握政治宣传方向，实施形式任务教育，做好宣传者")),
        ("四、为民服务永不变，做好服务者。", (4, "四、为民服务永不变，做好服务者。")),
        ("二十三、附则", (4, "二十三、附则")),
        ("（一）加强组织建设", (5, "（一）加强组织建设")),
        ("(二)严格组织生活", (5, "(二)严格组织生活")),
        ("1.延安整风运动（1942-1945）", (6, "1.延安整风运动（1942-1945）")),
        ("2、支部委员会的组成", (6, "2、支部委员会的组成")),
    ],
)
def test_heading_level_headings(line, expected):
    assert heading_level(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "第十一条 党支部党员大会是党支部的议事决策机构。",
        "## 第一条 为了坚持和加强党的全面领导，制定本条例。",
        "一、要坚持把政治建设摆在首位，牢固树立“四个意识”，坚定“四个自信”，做到“两个维护”。然后要不断提高党支部的组织力和战斗力。",
        "（一）警告；",
        "（二）坚持把党的政治建设摆在首位，牢固树立“四个意识”，坚定“四个自信”，做到“四个服从”，旗帜鲜明讲政治。",
        "1.表决人对每个表决对象只能在以上三种意见中选择一种，多选无效。",
        "1、患有精神病或因其他疾病导致不能表达本人意志的；",
        "党支部是党的基础组织。",
        "",
        "### ",
    ],
)
def test_heading_level_non_headings(line):
    assert heading_level(line) is None


def test_upper_level_labels_and_the_outline_that_uses_them():
    """structure.opens_part names the 编/章/节/部分 and 一、 labels; the document page's outline (webui.render) keeps
    by it a one-sentence 一、 heading that ends in 。 and drops a numbered item the splitter took for a heading."""
    from webui.render import _list_item

    for text in ("第一编 总则", "第四章 工作机制", "第三节 纪律处分", "第一部分 总体要求", "四、为民服务永不变，做好服务者。",
                 "二十三、附则"):
        assert opens_part(text), text
    for text in ("（一）加强组织建设", "1.延安整风运动", "第十一条 党支部党员大会", "党支部是党的基础组织。", "第十条"):
        assert not opens_part(text), text
    assert not _list_item("四、为民服务永不变，做好服务者。") and not _list_item("二十三、附则")
    assert _list_item("（二）严格组织生活。") and _list_item("四、坚持学习。提高本领。") and _list_item("五、" + "学" * 60)


def test_article_label():
    assert article_label("第十一条 党支部党员大会是议事决策机构。") == "第十一条"
    assert article_label("第二条本条例的任务，是维护党的章程。") == "第二条"
    assert article_label("## 第三条 党支部工作必须遵循以下原则：") == "第三条"
    assert article_label("**第一条**\u3000为加强和规范差旅费管理，制定本办法。") == "第一条"
    assert article_label("第三十八条规定，对违反组织纪律的行为给予处分。") is None
    assert article_label("第103条、第106条") is None
    assert article_label("党章第十条规定") is None


def test_sentence_spans():
    text = "他说：“要学习。”然后离开！\n真的吗？？是的……好\n  \n最后一句没有句号"
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["他说：“要学习。”", "然后离开！", "真的吗？？", "是的……", "好", "最后一句没有句号"]
    covered = set()
    for s, e in spans:
        covered.update(range(s, e))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    assert sentence_spans("") == [] and sentence_spans(" \n ") == []


# ---------------------------------------------------------------- split behaviour
def test_regulation_fixture():
    title, text = clean_text(FIXTURE.read_text(encoding="utf-8"))
    assert title == "党支部工作示范条例（试行）"
    doc, passages = _split_checked(title, text, "reg")
    by_section: dict[str, list] = {}
    for p in passages:
        by_section.setdefault(p.section, []).append(p)
    assert "第二章 组织设置 > 第五条" in by_section
    assert "第四章 工作机制 > 第八条" in by_section
    labels = re.findall(r"^(第[一二三四五六七八九十]+条)", text, flags=re.M)
    assert len(labels) == 18
    for label in labels:
        secs = [s for s in by_section if s.endswith(" > " + label)]
        assert len(secs) == 1, label
        parts = by_section[secs[0]]
        assert parts[0].text.startswith(label + " ")  # the article line is content
        body = "\n".join(p.text for p in parts)
        assert len(re.findall(r"^第[一二三四五六七八九十]+条", body, flags=re.M)) == 1  # one article per unit
    # items stay inside their article
    items = [p for p in passages if "（三）" in p.text]
    assert items and all(re.search(r"> 第(三|七|十六)条$", p.section) for p in items)
    assert all("（一）" in p.text for p in by_section["第三章 基本任务 > 第七条"])
    # a long article is split at sentence ends, never above max_chars
    long_parts = by_section["第六章 党支部委员会建设 > 第十五条"]
    assert len(long_parts) >= 2
    assert all(len(p.text) <= 350 and p.text.endswith("。") for p in long_parts)
    # chapter headings are not passage text
    assert not any(re.search(r"^第[一二三四五六七]章", p.text, flags=re.M) for p in passages)


def test_markdown_sections():
    raw = (
        "# 党支部工作手册\n\n导言：本手册说明党支部日常工作的基本要求，供支部书记参考使用。\n\n"
        "## 组织生活\n\n### 三会一课\n\n党支部应当按期召开支部党员大会、支部委员会会议和党小组会，按时上好党课。\n\n"
        "### 主题党日\n\n党支部每月相对固定一天开展主题党日。\n\n## 发展党员\n\n发展党员必须坚持标准，严格程序。\n"
    )
    title, text = clean_text(raw)
    assert title == "党支部工作手册"
    doc, passages = _split_checked(title, text, "md")
    sections = [p.section for p in passages]
    assert sections == ["", "组织生活 > 三会一课", "组织生活 > 主题党日", "发展党员"]
    assert not any("#" in p.text for p in passages)


def test_tiny_paragraphs_merge_within_section_only():
    text = "一、学习\n学习一。\n学习二。\n二、实践\n实践一。\n" + "实践要求很多，" * 20 + "必须落实。"
    doc, passages = _split_checked("t", text)
    assert [(p.section, p.text) for p in passages][0] == ("一、学习", "学习一。\n学习二。")
    assert all(p.section == "二、实践" for p in passages[1:])
    assert passages[1].text.startswith("实践一。\n实践要求很多")


# a list-style notice: a title, one sentence of preamble, then eight one-sentence items and no body under any
LIST_NOTICE = "\n".join([
    "关于加强机关作风建设的若干规定",
    "为进一步改进工作作风、密切联系群众，现作如下规定。",
    "一、要改进调查研究，到基层调研要深入了解真实情况。",
    "二、要精简会议活动，开短会、讲短话，力戒空话、套话。",
    "三、要精简文件简报，可发可不发的文件一律不发。",
    "四、要规范公务接待，不安排宴请，不上高档菜肴。",
    "五、要改进警卫工作，一般情况下不得封路、不清场闭馆。",
    "六、要改进新闻报道，压缩报道的数量、字数、时长。",
    "七、要严格文稿发表，个人不公开出版著作、讲话单行本。",
    "八、要厉行勤俭节约，严格执行住房、车辆配备等有关规定。",
])


def test_list_items_without_body_are_content():
    title, text = clean_text(LIST_NOTICE)
    assert title == "关于加强机关作风建设的若干规定"
    doc, passages = _split_checked(title, text, "notice")
    items = [line for line in LIST_NOTICE.split("\n") if line[1:2] == "、"]
    assert len(items) == 8
    for item in items:
        assert any(item in p.text for p in passages), item
        assert not any(item in p.section for p in passages), item  # an item is never a section title
    assert {p.section for p in passages} == {""}
    assert all(len(p.text) <= 350 for p in passages) and len(passages) <= 3  # short items merged


def test_list_items_under_real_headings():
    text = "\n".join([
        "一、工作要求",
        "（一）要坚持把政治建设摆在首位。",
        "（二）要严格落实“三会一课”制度。",
        "（三）要经常开展谈心谈话。",
        "二、组织保障",
        "各级党组织要加强领导，明确责任分工，把各项要求落到实处，确保取得实效。",
        "三、附则",
        "第一条 本规定由组织部负责解释。",
        "第二条 本规定自印发之日起施行。",
        "四、其他事项",
    ])
    doc, passages = _split_checked("t", text)
    by_text = {p.text: p.section for p in passages}
    items = "（一）要坚持把政治建设摆在首位。\n（二）要严格落实“三会一课”制度。\n（三）要经常开展谈心谈话。"
    assert by_text[items] == "一、工作要求"  # 一、 heads its items: a heading; the items are content
    assert by_text["各级党组织要加强领导，明确责任分工，把各项要求落到实处，确保取得实效。"] == "二、组织保障"
    assert by_text["第一条 本规定由组织部负责解释。"] == "三、附则 > 第一条"  # a heading over articles stays
    # the last line heads nothing (end of document): content, in its parent section
    assert any(p.text.endswith("四、其他事项") for p in passages)


def test_last_list_item_before_a_paragraph_is_content():
    text = "\n".join([
        "具有下列情形之一的，应当认定为“情节严重”：",
        "（一）导致事故后果扩大，增加死亡一人以上的；",
        "（二）采用暴力、胁迫、命令等方式阻止他人报告事故情况的；",
        "（三）其他情节严重的情形。",
        "具有下列情形之一的，应当认定为“情节特别严重”：",
        "（一）导致事故后果扩大，增加死亡三人以上的；",
        "（二）其他情节特别严重的情形。",
    ])
    doc, passages = _split_checked("t", text)
    for line in text.split("\n"):
        assert any(line in p.text for p in passages), line
    assert {p.section for p in passages} == {""}


def test_numbered_items_between_bold_subtitles_are_content():
    text = "\n".join([
        "五、党纪细化",
        "**政治纪律**",
        "1.在重大原则问题上不同党中央保持一致且有实际言论、行为或者造成不良后果的",
        "2.搞投机钻营，结交政治骗子或者被政治骗子利用的",
        "3.充当政治骗子的",
        "**组织纪律**",
        "1.违反议事规则，个人或者少数人决定重大问题",
        "2.不如实填报个人档案资料",
    ])
    doc, passages = _split_checked("t", text)
    for line in text.split("\n")[1:]:
        assert any(line in p.text for p in passages), line
    assert {p.section for p in passages} == {"五、党纪细化"}


def test_lone_list_label_joins_its_text():
    _, text = clean_text("通知\n\n\u3000一、要改进调查研究。\n\n\u3000二、\n要精简会议活动。\n（三）\n\u3000要精简文件简报。\n4.\n5倍以上")
    assert text.split("\n") == ["一、要改进调查研究。", "二、要精简会议活动。", "（三）要精简文件简报。", "4.", "5倍以上"]


def test_long_paragraph_split_at_sentence_ends():
    text = "".join(f"第{i}项，党支部要把严的要求落实到党员教育管理全过程，做到真管真严、敢管敢严。" for i in range(25))
    doc, passages = _split_checked("t", text)
    assert len(passages) >= 3
    assert all(p.text.endswith("。") and len(p.text) <= 350 for p in passages)
    assert "".join(p.text for p in passages) == text


def test_over_long_sentence_split_at_commas():
    text = "，".join(f"党支部要加强第{i}方面的政治建设" for i in range(60)) + "。"
    doc, passages = _split_checked("t", text)
    assert len(passages) >= 3
    assert all(len(p.text) <= 350 for p in passages)
    assert all(p.text.endswith(("，", "。")) for p in passages)


def test_empty_and_duplicate_documents():
    assert split_document(_doc("只有标题", "")) == []
    title, text = clean_text("只有标题\n\n只有标题\n")
    assert (title, text) == ("只有标题", "")
    assert split_document(_doc(title, text)) == []
    para = "党支部应当经常开展谈心谈话，了解党员思想状况，帮助党员解决实际困难，增强党组织的凝聚力和向心力。" * 2
    other = "其他内容也很重要，党员要积极参加组织生活，按时交纳党费，完成党组织分配的任务。"
    doc, passages = _split_checked("t", f"{para}\n{other}\n{para}")
    assert [p.text for p in passages].count(para) == 1
    assert all(p.section == "" for p in passages)


def test_bad_split_arguments():
    with pytest.raises(ValueError):
        split_document(_doc("t", "内容。"), min_chars=400, max_chars=350)


# ---------------------------------------------------------------- real documents from ../shared/bench
@pytest.fixture(scope="module")
def party_docs() -> list[dict]:
    if not PARTY_DOCS.is_file():
        pytest.skip("party-docs corpus not found: ../shared/bench absent")
    with PARTY_DOCS.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def party_split(party_docs) -> list[tuple[dict, Document, list]]:
    out = []
    for row in party_docs:
        title, text = clean_text(row["text"], row.get("title"))
        doc = _doc(title, text, row["doc_id"])
        out.append((row, doc, split_document(doc)))
    return out


def test_bench_all_documents(party_split):
    lengths = []
    for _, doc, passages in party_split:
        _check_passages(doc, passages)
        lengths.extend(len(p.text) for p in passages)
    assert len(lengths) > 1000
    assert 80 <= statistics.median(lengths) <= 350


def test_bench_branch_regulation_sections(party_split):
    [(_, doc, passages)] = [x for x in party_split if x[0]["doc_id"].endswith("partymate/party_rules.md")]
    art = [p for p in passages if p.text.startswith("第十一条") and "党支部党员大会" in p.text]
    assert art, "支部工作条例 第十一条 not found"
    assert re.search(r"第[一二三四五六七八九十]+章[^>]* > 第十一条$", art[0].section), art[0].section
    assert "第四章 工作机制" in art[0].section
    # no passage starts with the markdown marker the converter put before articles
    assert not any(p.text.startswith("#") for p in passages)


def test_bench_regulations_keep_content(party_split):
    checked = 0
    for row, doc, _ in party_split:
        if not ("xtjeyvc-dangfa" in row["doc_id"] or "partymate" in row["doc_id"]) or row.get("kind") == "index":
            continue
        before = len(CJK.findall(row["text"]))
        after = len(CJK.findall(doc.title + doc.text))
        assert after >= 0.97 * before, (row["doc_id"], before, after)
        checked += 1
    assert checked >= 20


def test_bench_eight_point_rules_items_are_passage_text():
    path = BENCH / "party-docs" / "xtjeyvc-8gui" / "00.md"
    if not path.is_file():
        pytest.skip("八项规定 00.md not found: ../shared/bench absent")
    title, text = clean_text(path.read_text(encoding="utf-8"))
    doc, passages = _split_checked(title, text, "8gui/00.md")
    assert any("个人不公开出版著作" in p.text for p in passages)
    items = [line for line in text.split("\n") if re.match(r"^[一二三四五六七八]、", line)]
    assert [i[0] for i in items] == list("一二三四五六七八")
    for item in items:
        assert any(item in p.text for p in passages), item
    assert not any(re.match(r"^[一二三四五六七八]、", p.section) for p in passages)


def test_bench_no_line_lost(party_split):
    """Every line of cleaned text is in some passage's text or, as a heading, in some passage's section."""
    lost = total = 0
    for _, doc, passages in party_split:
        covered = bytearray(len(doc.text))
        for p in passages:
            covered[p.start:p.end] = b"\x01" * (p.end - p.start)
        sections = "\n".join({p.section.replace(" ", "") for p in passages})
        texts = [p.text for p in passages]
        total += len(CJK.findall(doc.text))
        pos = 0
        for line in doc.text.split("\n"):
            end = pos + len(line)
            if not any(covered[pos:end]) and not any(line in t for t in texts):  # duplicates are not lost
                key = re.sub(r"^#{1,6}\s*|\*\*", "", line).replace(" ", "")
                if key not in sections:
                    lost += len(CJK.findall(line))
            pos = end + 1
    assert total > 1_000_000
    assert lost <= total * 0.0001, f"{lost} CJK characters are in no passage text and no section"


def test_bench_no_notice_boilerplate(party_split):
    for _, doc, passages in party_split:
        for phrase in ("下载文档前请自行甄别", "如文档侵犯您的权益"):
            assert phrase not in doc.text
        assert not any(p.text.startswith(("![", "###")) for p in passages)
