"""Courtesy around a question (indexer.text.courtesy): greetings, "请问" and thanks are not searched for; what the
person says about the matter, and words that only look like courtesy, are."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from conftest import ROOT
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import HashEncoder  # noqa: E402
from indexer.config import Config  # noqa: E402
from indexer.engine import Engine  # noqa: E402
from indexer.search.query import analyse  # noqa: E402
from indexer.text.courtesy import strip_courtesy  # noqa: E402


@pytest.mark.parametrize("asked, searched", [
    ("老师您好，请问入党积极分子要培养多久？谢谢！", "入党积极分子要培养多久？"),
    ("您好请问党费怎么交", "党费怎么交"),
    ("咨询一下，预备党员能投票吗", "预备党员能投票吗"),
    ("打扰一下，请问支委会多久开一次", "支委会多久开一次"),
    ("请教一下老师，党小组长怎么产生", "党小组长怎么产生"),
    ("大家好，想问下入党誓词是什么？多谢各位！", "入党誓词是什么？"),
    ("党员能炒股吗？在线等，急！", "党员能炒股吗？"),
    ("违纪党员怎么处理？求解答", "违纪党员怎么处理？"),
    ("预备党员转正，辛苦老师解答", "预备党员转正"),
    ("党费怎么交谢谢", "党费怎么交"),
    ("问一下转正要开支部大会吗", "转正要开支部大会吗"),
    ("请问，什么叫“一案双查”？", "什么叫“一案双查”？"),
    # formulas one after another, and the ones announcing a question (session 15)
    ("打扰一下，问个问题，党费怎么交", "党费怎么交"),
    ("求助：入党誓词是什么", "入党誓词是什么"),
    ("我有个问题想请教：支委会多久开一次会", "支委会多久开一次会"),
    ("问个问题，党员能炒股吗", "党员能炒股吗"),
    # what the person says about themselves is part of the question
    ("各位领导好！我是一名预备党员，组织关系怎么转？麻烦解答一下，谢谢。", "我是一名预备党员，组织关系怎么转？"),
])
def test_courtesy_is_stripped(asked: str, searched: str) -> None:
    assert strip_courtesy(asked) == searched


@pytest.mark.parametrize("question", [
    "怎么对待你好的同事",          # 你好 inside a sentence is no greeting
    "党员你好好想想",
    "咨询委员会的职责是什么",       # 咨询 names a committee
    "想问题要从群众的实际出发",     # 想问题 is not 想问
    "问下级党组织要材料需要什么手续",  # 下级, not 问下
    "我想问题出在哪里",
    "党员对群众你好我好的态度算不算违纪",
    "工作很急，支部会议能不能临时召开",  # 急 and 麻烦 and 感谢 as words of the question
    "手续会不会很麻烦",
    "对帮助过自己的人怎么表示感谢",
    "在线等，急！党员能炒股吗",      # a plea in front is left alone (only the end is stripped)
    "请问", "谢谢", "您好", "你好，",   # nothing but courtesy: kept whole, the search refuses or answers it as typed
    "《条例》第七条规定的组织调整的含义是什么，包括哪些措施？",
    "求助热线是多少",              # 求助 as a word of the question, not before a stop
    "有个问题想不明白：党员能不能经商",  # what they say about the matter
    "打扰一下", "我有个问题",         # nothing but courtesy
])
def test_questions_without_courtesy_are_kept(question: str) -> None:
    assert strip_courtesy(question) == question


def _bench_questions() -> list[str]:
    out = []
    for path in sorted((ROOT / "bench").glob("*questions.jsonl")):
        out += [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


def test_no_question_of_the_bench_sets_is_changed() -> None:
    """The paraphrase, secretary, held-out, off-topic and look-up sets are searched as written, but for a leading
    请问 (one look-up question has it)."""
    questions = _bench_questions()
    assert len(questions) > 500
    changed = [q for q in questions if strip_courtesy(q) != q]
    assert all(q == "请问" + strip_courtesy(q) for q in changed) and len(changed) <= 2, changed


def test_the_query_keeps_what_was_asked() -> None:
    q = analyse("老师您好，请问支委会多久开一次会？谢谢！")
    assert q.text == "支委会多久开一次会？" and q.asked == "老师您好，请问支委会多久开一次会？谢谢！"
    assert not any("谢谢" in t or "请问" in t or "老师" in t for t in q.hit_terms + tuple(t for t, _ in q.terms))
    assert analyse("支委会多久开一次会？").terms == q.terms


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    corpus = tmp_path_factory.mktemp("corpus")
    for name in ("中国共产党支部工作条例（试行）.md", "中国共产党章程.md"):
        shutil.copy(ROOT / "corpus" / name, corpus / name)
    eng = Engine.open(tmp_path_factory.mktemp("index"), Config())
    eng._encoder = HashEncoder()
    eng.index(corpus)
    yield eng
    eng.close()


@pytest.mark.parametrize("plain", ["支委会多久开一次会", "预备党员的预备期是多长", "党章第七条"])
def test_a_courteous_question_gets_the_plain_questions_hits(engine: Engine, plain: str) -> None:
    for courteous in (f"老师您好，请问{plain}？谢谢！", f"您好，想咨询一下：{plain}？麻烦解答一下，谢谢。"):
        got = engine.search(courteous, k=5, mode="keyword")
        want = engine.search(plain, k=5, mode="keyword")
        assert [h["pid"] for h in got] == [h["pid"] for h in want]
        assert [h["best_sentence"] for h in got] == [h["best_sentence"] for h in want]
        assert got.envelope()["answer_found"] == want.envelope()["answer_found"]


def test_a_standard_question_matches_with_or_without_courtesy(engine: Engine) -> None:
    """A standard question linked as typed (courtesy and all) is matched by the same words typed again and by the
    plain question; one linked plainly is matched by a courteous asking of it."""
    passages = [p for p in engine.passages("中国共产党支部工作条例（试行）.md") if "第十二条" in p["section"]]
    target = passages[0]["pid"]
    engine.curator.link_question("老师您好，请问支部的委员会议多长时间召集一回？谢谢！", target)
    for asked in ("老师您好，请问支部的委员会议多长时间召集一回？谢谢！", "支部的委员会议多长时间召集一回"):
        top = engine.search(asked, k=3, mode="keyword")[0]
        assert top["pid"] == target and top["standard_answer"] is True, asked
    engine.curator.link_question("党小组长怎样产生才合规", target)
    top = engine.search("您好，请问党小组长怎样产生才合规？在线等，急！", k=3, mode="keyword")[0]
    assert top["pid"] == target and top["standard_answer"] is True
