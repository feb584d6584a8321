"""Curating the knowledge base (issue 26) on the seed essay and the regulation fixture: a document's passages and
their state, disabled passages gone from every result (also after re-indexing the file), standard questions first,
feedback that `partyqa eval` reads, the audit log with named users and roles, and a kill during a disable."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import ESSAY, make_corpus, with_seed_cache
from test_faq import PAIRS, faq_xlsx
from test_robust_kill import kill_at
from indexer import Config, Engine, faq
from indexer.cli import main as cli_main
from indexer.index import curation, journal
from indexer.index.curation import CurationError, normalise_question
from webui import create_app

REG = "支部工作条例示例.txt"
# 第十五条 of the fixture answers this (a paraphrase, not a sentence of the text).
TERM_Q = "党支部委员会一届干几年"
QUESTIONS = ["党支部委员会一届干几年", "正式党员不够三个人怎么设支部", "党支部怎样当好监督者", "组织生活会多久开一次",
             "党支部的基本任务有哪些", "党员人数多的支部怎么办"]


def top_pid(e: Engine, q: str, mode: str = "keyword") -> str:
    """The first hit's pid."""
    return e.search(q, k=5, mode=mode)[0]["pid"]


def every_pid(results) -> set[str]:
    """The pids of the hits and of everything folded into them."""
    out = set()
    for h in results:
        out.add(h["pid"])
        out.update(o["pid"] for o in h.get("also_in") or [])
    return out


# ------------------------------------------------------------------------------------------- passages
def test_passages_list_a_documents_passages_with_section_citation_and_state(eng: Engine) -> None:
    doc = eng.document(REG)
    listed = eng.passages(REG)
    assert [p["pid"] for p in listed] == [f"{REG}#{p['ordinal']}" for p in doc["passages"]]
    assert [p["text"] for p in listed] == [p["text"] for p in doc["passages"]]
    first = listed[0]
    assert first["section"].startswith("第一章") and "第一条" in first["section"]
    assert first["citation"].startswith("《党支部工作示范条例（试行）》")
    assert {p["state"] for p in listed} == {"enabled"}
    with pytest.raises(KeyError):
        eng.passages("没有这个文件.txt")


def test_the_document_page_shows_each_passages_citation(eng: Engine) -> None:
    """Issue 26 §1: every passage on the document page carries its 出处, the API's citation for that passage."""
    import html as html_lib
    import re

    page = create_app(eng).test_client().get(f"/doc/{quote(REG)}").get_data(as_text=True)
    shown = {int(o): html_lib.unescape(c) for o, c in re.findall(
        r'<section class="doc-passage[^"]*" id="p-(\d+)"[^>]*>.*?<p class="passage-cite"[^>]*>出处：([^<]*)</p>',
        page, re.S)}
    listed = eng.passages(REG)
    assert shown == {p["ordinal"]: p["citation"] for p in listed}
    articles = [c for c in shown.values() if c.endswith("第十五条")]
    assert articles and all(c.startswith("《党支部工作示范条例（试行）》") for c in articles)
    assert len(set(shown.values())) > len(listed) // 2  # the citations name each passage's own article


def test_a_disabled_passage_is_never_returned_nor_folded_and_comes_back_when_enabled(eng: Engine) -> None:
    before = {q: eng.search(q, k=5, mode="keyword") for q in QUESTIONS}
    target = before[TERM_Q][0]["pid"]
    target_text = next(p["text"] for p in eng.passages(REG) if p["pid"] == target)
    generation = eng.stats()["generation"]
    assert eng.set_passage_enabled([target], False) == {"changed": [target], "unchanged": []}
    assert eng.stats()["generation"] == generation + 1  # stored as a generation
    assert next(p for p in eng.passages(REG) if p["pid"] == target)["state"] == "disabled"
    for q in QUESTIONS:
        for mode in ("keyword",):
            res = eng.search(q, k=10, mode=mode)
            assert target not in every_pid(res), (q, mode)
            assert all(h["text"] != target_text for h in res)
    # the next passages move up: the rest of the list is the old one without the target
    after = eng.search(TERM_Q, k=5, mode="keyword")
    assert [h["pid"] for h in after][:3] == [h["pid"] for h in before[TERM_Q] if h["pid"] != target][:3]
    assert eng.set_passage_enabled([target], False)["unchanged"] == [target]
    assert eng.stats()["generation"] == generation + 1  # nothing changed: nothing written
    eng.set_passage_enabled([target], True)
    for q in QUESTIONS:  # with nothing curated the results are the ones before
        assert eng.search(q, k=5, mode="keyword") == before[q]


def test_an_unknown_pid_refuses_the_whole_request_and_writes_nothing(eng: Engine) -> None:
    real = top_pid(eng, TERM_Q)
    generation = eng.stats()["generation"]
    with pytest.raises(CurationError, match="unknown passage"):
        eng.set_passage_enabled([real, f"{REG}#9999"], False)
    assert eng.stats()["generation"] == generation
    assert real in every_pid(eng.search(TERM_Q, k=5, mode="keyword"))


def test_the_disabled_state_survives_re_indexing_a_changed_file(eng: Engine, corpus: Path) -> None:
    target = top_pid(eng, TERM_Q)
    text = next(p["text"] for p in eng.passages(REG) if p["pid"] == target)
    eng.set_passage_enabled([target], False)
    # a paragraph inserted at the top: every passage of the file gets a new ordinal, the index re-reads the file
    path = corpus / REG
    lines = path.read_text("utf-8").split("\n", 1)
    path.write_text(lines[0] + "\n\n前言：本条例供学习参考，各支部结合实际执行，遇有问题及时向上级党组织报告。\n\n" + lines[1], "utf-8")
    report = eng.index(corpus, wait=False)
    assert report.updated == [REG]
    moved = next(p for p in eng.passages(REG) if p["text"] == text)
    assert moved["pid"] != target  # a new pid ...
    assert moved["state"] == "disabled"  # ... and still disabled: the state is kept by content
    assert moved["pid"] not in every_pid(eng.search(TERM_Q, k=10, mode="keyword"))
    assert [p["pid"] for p in eng.curator.disabled()] == [moved["pid"]]
    # and by document: the same text in another document is not disabled
    assert curation.passage_key(REG, text) != curation.passage_key(ESSAY, text)


def test_a_disabled_passage_is_gone_from_semantic_and_hybrid_results(tmp_path: Path, seed_cache: Path) -> None:
    index = with_seed_cache(seed_cache, tmp_path / "index")
    with Engine.open(index, Config()) as e:
        e.index(make_corpus(tmp_path / "corpus"))
        targets = {top_pid(e, q, "semantic") for q in QUESTIONS[:3]} | {top_pid(e, q, "hybrid") for q in QUESTIONS[:3]}
        e.set_passage_enabled(sorted(targets), False)
        for q in QUESTIONS:
            for mode in ("semantic", "hybrid", "keyword"):
                assert not targets & every_pid(e.search(q, k=10, mode=mode)), (q, mode)


# ------------------------------------------------------------------------------------------- nothing curated
# 24 questions over the seed essay and the regulation fixture: paraphrases, near-verbatim ones, an article named by
# number, an enumeration, and two off-topic ones.
UNCURATED_QUESTIONS = QUESTIONS + [
    "几个正式党员就要成立支部？", "支部委员会多长时间开一次会", "党员大会多久召开一次", "组织生活会每年开几次",
    "单位里党员不到三个人怎么建支部", "主题党日多久搞一次", "支部成员之间谈心一年至少几回", "支部怎样为职工群众办实事",
    "第十五条是怎么规定的", "党支部书记应当具备哪些条件", "三会一课包括哪些内容", "基层党支部如何做好宣传者",
    "党员发挥先锋模范作用", "支部委员会由党员大会选举产生", "党支部怎样做好团结者", "发展党员要经过哪些程序",
    "今天天气怎么样", "如何申请出国签证"]


def _hits_of(e: Engine, questions: list[str], mode: str) -> list:
    """Every question's full hit records (pids, order, scores, spans, folded copies) and answer envelope."""
    return [([dict(h) for h in res], res.envelope()) for res in e.search_many(questions, k=10, mode=mode)]


def test_nothing_curated_ranks_exactly_as_without_the_curation_hooks(tmp_path: Path, seed_cache: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 26 "quality tables unchanged with nothing curated": with no passage disabled, no standard question and
    no 问答对, every hit list (pids, order, scores, answer sentences) and envelope is the one the search gives with
    every curation hook bypassed. The hooks are shown to matter once something is curated."""
    from indexer import engine as engine_module
    from indexer.search import searcher as searcher_module

    assert len(UNCURATED_QUESTIONS) == len(set(UNCURATED_QUESTIONS)) >= 20
    index = with_seed_cache(seed_cache, tmp_path / "index")
    with Engine.open(index, Config()) as e:
        e.index(make_corpus(tmp_path / "corpus"))
        assert e.curator.disabled() == [] and e.curator.standard_questions() == [] and faq.list_entries(e) == []
        curated = {mode: _hits_of(e, UNCURATED_QUESTIONS, mode) for mode in ("keyword", "hybrid", "semantic")}
        with monkeypatch.context() as m:  # every hook of issue 26 as the identity
            m.setattr(searcher_module, "visible_candidates", lambda gen, kw, sem: (kw, sem))
            m.setattr(searcher_module, "standard_matches", lambda gen, queries, vectors: [None] * len(queries))
            m.setattr(searcher_module, "standard_answers", lambda *args, **kwargs: None)
            m.setattr(curation, "disabled_pids", lambda gen: frozenset())  # the 第X条 look-up's
            m.setattr(engine_module, "faq_answer_sentences", lambda results: None)
            bypassed = {mode: _hits_of(e, UNCURATED_QUESTIONS, mode) for mode in curated}
            for mode, found in curated.items():
                assert sum(bool(hits) for hits, _ in found) >= 20, mode
                for q, got, want in zip(UNCURATED_QUESTIONS, found, bypassed[mode]):
                    assert got == want, (mode, q)
            # the comparison sees a curated state: one passage disabled changes what the hooks return
            target = curated["hybrid"][0][0][0]["pid"]
            e.set_passage_enabled([target], False)
            assert target in every_pid(_hits_of(e, QUESTIONS[:1], "hybrid")[0][0])  # hooks bypassed
        assert target not in every_pid(_hits_of(e, QUESTIONS[:1], "hybrid")[0][0])  # hooks in place


# ------------------------------------------------------------------------------------------- standard questions
def test_a_linked_question_returns_its_passage_first_marked(eng: Engine) -> None:
    q = "支部委员会选举多久一次"
    natural = eng.search(q, k=5, mode="keyword")
    chosen = next(p["pid"] for p in eng.passages(ESSAY) if "监督" in p["text"])  # a passage keyword search ranks low
    assert natural[0]["pid"] != chosen
    rec = eng.curator.link_question(q, chosen)
    assert rec["pid"] == chosen
    res = eng.search(" 支部委员会选举，多久一次？", k=5, mode="keyword")  # the same question, other punctuation
    assert res[0]["pid"] == chosen and res[0]["standard_answer"] is True and res[0]["rank"] == 1
    assert res[0]["standard_question"] == q
    assert len(res) == 5 and [h["rank"] for h in res] == [1, 2, 3, 4, 5]
    assert sum(1 for h in res if h["pid"] == chosen) == 1
    assert not any(h.get("standard_answer") for h in eng.search("党员人数多的支部怎么办", k=5, mode="keyword"))
    assert [p["standard_questions"] for p in eng.passages(ESSAY) if p["pid"] == chosen] == [[q]]
    # a disabled passage is never a standard answer
    eng.set_passage_enabled([chosen], False)
    assert chosen not in every_pid(eng.search(q, k=5, mode="keyword"))
    eng.set_passage_enabled([chosen], True)
    assert eng.curator.unlink_question(q + "？") is True
    assert eng.search(q, k=5, mode="keyword")[0]["pid"] == natural[0]["pid"]


def test_normalised_questions() -> None:
    assert normalise_question("支委会 多久开一次会？") == normalise_question("支委会多久开一次会?")
    assert normalise_question("ＡＢ 党费") == normalise_question("ab党费")
    assert normalise_question("党费怎么交") != normalise_question("党费交多少")


def test_same_question_needs_the_same_question_words_numbers_and_content() -> None:
    from indexer.index.curation import same_question

    for a, b in (("党费怎么交", "党费应该怎样交纳"), ("支委会多久开一次会", "支部委员会一般多长时间开一次会？"),
                 ("党支部委员会每届任期是多长时间", "党支部委员会每一届的任期是多长时间？"),
                 ("正式党员不足三人怎么成立党支部", "正式党员不到3个人的单位怎样成立党支部")):
        assert same_question(a, b) and same_question(b, a), (a, b)
    for a, b in (("党费怎么交", "党费交多少"), ("党员有哪些权利", "党员有哪些义务"), ("党章第八条", "纪律处分条例第八条"),
                 ("支部工作条例第十九条", "支部工作条例第九十九条"), ("发展党员要经过哪些程序", "发展党员要经过哪些审查"),
                 ("党小组会多久开一次", "党员大会多久开一次"), ("jjjjkkkkllll", "hjkl;'[]")):
        assert not same_question(a, b) and not same_question(b, a), (a, b)


@pytest.mark.slow
def test_a_paraphrase_of_a_linked_question_gets_the_passage_too(tmp_path: Path, seed_cache: Path) -> None:
    index = with_seed_cache(seed_cache, tmp_path / "index")
    with Engine.open(index, Config()) as e:
        e.index(make_corpus(tmp_path / "corpus"))
        chosen = next(p["pid"] for p in e.passages(REG) if p["text"].startswith("第十五条"))
        e.curator.link_question("党支部委员会每届任期是多长时间", chosen)
        assert e.curator.standard_questions()[0]["paraphrases"] is True
        para = e.search("党支部委员会每一届的任期是多长时间？", k=5, mode="hybrid")
        assert para[0]["pid"] == chosen and para[0]["standard_answer"] is True
        assert 0.93 <= para[0]["standard_similarity"] < 1.0
        for other in ("党支部委员会怎么选举产生", "党费怎么交",
                      "党支部怎样当好监督者", "党支部委员会每届有几名委员"):
            assert not any(h.get("standard_answer") for h in e.search(other, k=5, mode="hybrid")), other


# ------------------------------------------------------------------------------------------- feedback
def test_feedback_is_kept_summarised_and_exported_for_partyqa_eval(eng: Engine, capsys) -> None:
    app = create_app(eng)
    client = app.test_client()
    good = eng.search(TERM_Q, k=5, mode="keyword")
    other_q = "正式党员不够三个人怎么设支部"
    other = eng.search(other_q, k=5, mode="keyword")
    for q, pid, useful in ((TERM_Q, good[0]["pid"], True), (TERM_Q, good[1]["pid"], False),
                           (other_q, other[0]["pid"], True), ("完全答非所问的问题", good[2]["pid"], False)):
        r = client.post("/api/feedback", json={"question": q, "pid": pid, "useful": useful, "mode": "keyword"})
        assert r.status_code == 201, r.json
    assert client.post("/api/feedback", json={"question": TERM_Q, "pid": "没有#1", "useful": True}).status_code == 400
    assert client.post("/api/feedback", json={"question": TERM_Q, "pid": good[0]["pid"],
                                              "useful": "yes"}).status_code == 400
    summary = client.get("/api/feedback").json
    assert summary["counts"] == {"useful": 2, "not_useful": 2}
    assert {q["question"] for q in summary["negative"]} == {TERM_Q, "完全答非所问的问题"}
    assert {(u["question"], u["pid"]) for u in summary["useful"]} == {(TERM_Q, good[0]["pid"]),
                                                                      (other_q, other[0]["pid"])}
    lines = (eng.root / journal.FEEDBACK_FILE).read_text("utf-8").splitlines()
    assert len(lines) == 4  # the refused ones were not stored
    out = eng.root.parent / "useful.jsonl"
    index = str(eng.root)
    eng.close()
    assert cli_main(["--index-dir", index, "-q", "feedback", "export", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert {r["question"] for r in rows} == {TERM_Q, other_q}
    assert all(r["gold_doc"] == REG and r["gold_text"] for r in rows)
    capsys.readouterr()
    assert cli_main(["--index-dir", index, "-q", "eval", str(out), "--mode", "keyword", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["keyword"]["n"] == 2 and table["keyword"]["R@1"] == 1.0  # each useful passage was the top hit


def test_feedback_appends_are_safe_across_processes(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from indexer.index.journal import append\n"
            "for i in range(40): append(Path(sys.argv[1]) / 'f.jsonl', {'w': sys.argv[2], 'i': i, 'pad': 'x' * 3000})")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(w)]) for w in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    recs = journal.read_lines(tmp_path / "f.jsonl")
    assert sorted((r["w"], r["i"]) for r in recs) == sorted((str(w), i) for w in range(3) for i in range(40))


def test_a_line_cut_short_by_a_kill_is_skipped_and_the_next_starts_afresh(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    journal.append(log, {"id": "a", "phase": "once", "action": "disable"})
    with open(log, "ab") as fh:
        fh.write(b'{"id": "b", "phase": "beg')  # a kill mid-write
    journal.append(log, {"id": "c", "phase": "once", "action": "enable"})
    assert [r["id"] for r in journal.read_lines(log)] == ["a", "c"]


# ------------------------------------------------------------------------------------------- users, roles, audit
@pytest.fixture()
def tokens_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "tokens.txt"
    path.write_text("# token role name\nr-token reader 王读者\ne-token editor 李编辑\na-token admin 张管理\n", "utf-8")
    monkeypatch.setenv("PARTYQA_TOKENS_FILE", str(path))
    return path


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_roles_decide_who_may_disable_and_read_the_audit_log(eng: Engine, tokens_file: Path) -> None:
    client = create_app(eng).test_client()
    pid = top_pid(eng, TERM_Q)
    url = f"/api/passages/{quote(pid, safe='')}/disable"
    assert client.post(url).status_code == 401
    assert client.post(url, headers=_auth("wrong")).status_code == 403
    assert client.post(url, headers=_auth("r-token")).status_code == 403
    assert pid in every_pid(eng.search(TERM_Q, k=5, mode="keyword"))
    cross = client.post(url, headers={**_auth("e-token"), "Origin": "http://evil.example"})
    assert cross.status_code == 403 and cross.json["error"]["code"] == "cross_site"
    r = client.post(url, headers=_auth("e-token"))
    assert r.status_code == 200 and r.json["changed"] == [pid]
    assert pid not in every_pid(eng.search(TERM_Q, k=5, mode="keyword"))
    assert client.get("/api/me", headers=_auth("e-token")).json == {"name": "李编辑", "role": "editor",
                                                                    "tokens": True}
    assert client.get("/api/audit", headers=_auth("e-token")).status_code == 403
    entries = client.get("/api/audit", headers=_auth("a-token")).json["entries"]
    assert [(e["who"], e["action"], e["result"], e["target"]) for e in entries] == [
        ("李编辑", "disable", "ok", [pid]), ("local", "index", "ok", str(eng.corpus_dir))]  # the fixture's, in Python
    # a reader may still search and give feedback, recorded under their name
    fb = client.post("/api/feedback", headers=_auth("r-token"),
                     json={"question": TERM_Q, "pid": top_pid(eng, TERM_Q), "useful": True})
    assert fb.status_code == 201 and fb.json["who"] == "王读者"
    assert client.get("/api/feedback", headers=_auth("r-token")).status_code == 403
    r = client.post("/api/standard_questions", headers=_auth("e-token"), json={"question": TERM_Q, "pid": pid})
    assert r.status_code == 400  # a disabled passage cannot be a standard answer


def test_the_audit_helper_records_a_routes_job_under_its_user(eng: Engine, tokens_file: Path) -> None:
    from webui.auth import audit

    app = create_app(eng)
    with app.test_request_context("/api/documents", method="POST", headers=_auth("e-token")):
        assert audit("upload", ["规定.docx"], job="job-7") == "李编辑"
    entry = eng.curator.audit()[0]
    assert (entry["who"], entry["action"], entry["target"], entry["job"], entry["result"]) == (
        "李编辑", "upload", ["规定.docx"], "job-7", "queued")


def test_without_tokens_everything_is_local_and_audited_as_local(eng: Engine) -> None:
    client = create_app(eng).test_client()
    pid = top_pid(eng, TERM_Q)
    assert client.get("/api/me").json == {"name": "local", "role": "admin", "tokens": False}
    assert client.post(f"/api/passages/{quote(pid, safe='')}/disable").status_code == 200
    assert client.post("/api/passages/state", json={"pids": [pid], "enabled": True}).json["changed"] == [pid]
    r = client.get(f"/api/documents/{quote(REG)}/passages")
    assert r.status_code == 200 and r.json["count"] == len(eng.document(REG)["passages"]) and r.json["disabled"] == 0
    assert client.get(f"/api/documents/{quote('没有.txt')}/passages").status_code == 404
    assert client.post(f"/api/passages/{quote(REG + '#999', safe='')}/disable").status_code == 404
    entries = client.get("/api/audit").json["entries"]
    assert [(e["who"], e["action"], e["result"]) for e in entries] == [
        ("local", "disable", "failed"), ("local", "enable", "ok"), ("local", "disable", "ok"), ("local", "index", "ok")]


def test_tokens_file_as_json_and_bad_files(tmp_path: Path) -> None:
    from webui.auth import TokensError, parse_tokens

    users = parse_tokens(json.dumps({"tokens": [{"token": "t1", "role": "editor", "name": "甲"},
                                                {"token": "t2", "role": "ADMIN", "name": "乙"}]}))
    assert users["t1"].name == "甲" and users["t1"].can("reader") and not users["t1"].can("admin")
    assert users["t2"].can("admin")
    assert parse_tokens('{"t3": {"role": "reader", "name": "丙"}}')["t3"].role == "reader"
    with pytest.raises(TokensError):
        parse_tokens("t4 superuser 丁")
    with pytest.raises(TokensError):
        parse_tokens("t5")


def test_serving_a_network_address_needs_tokens(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    from webui.auth import check_bind
    from indexer.types import PartyQAError

    check_bind("127.0.0.1")
    check_bind("::1")
    check_bind("0.0.0.0", allow_anonymous_writes=True)
    with pytest.raises(PartyQAError, match="--allow-anonymous-writes"):
        check_bind("0.0.0.0")
    monkeypatch.setenv("PARTYQA_TOKENS_FILE", str(tmp_path / "tokens.txt"))
    with pytest.raises(PartyQAError, match="cannot read the tokens file"):
        check_bind("192.168.1.5")  # named but missing
    (tmp_path / "tokens.txt").write_text("t1 boss 甲\n", "utf-8")
    with pytest.raises(PartyQAError, match="role must be one of"):
        check_bind("127.0.0.1")
    (tmp_path / "tokens.txt").write_text("t1 admin 甲\n", "utf-8")
    check_bind("192.168.1.5")
    monkeypatch.delenv("PARTYQA_TOKENS_FILE")
    assert cli_main(["--index-dir", str(tmp_path / "index"), "serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "--allow-anonymous-writes" in capsys.readouterr().err


ENV_TOKENS = "王读者:reader:r-env, 李编辑:editor:e-env;张管理:ADMIN:a:env"  # spaces, ";" and a token holding ":"


def test_named_tokens_from_the_environment_decide_roles(eng: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 26 §5 "a tokens file, or env": PARTYQA_TOKENS names several users with roles, enforced like the
    file's (a reader may not disable, an editor may but may not read the audit log, an admin may)."""
    monkeypatch.setenv("PARTYQA_TOKENS", ENV_TOKENS)
    client = create_app(eng).test_client()
    assert client.get("/api/me", headers=_auth("a:env")).json == {"name": "张管理", "role": "admin", "tokens": True}
    assert client.get("/api/me", headers=_auth("e-env")).json["name"] == "李编辑"
    pid = top_pid(eng, TERM_Q)
    url = f"/api/passages/{quote(pid, safe='')}/disable"
    assert client.post(url).status_code == 401  # tokens are configured: no token, no write
    assert client.post(url, headers=_auth("r-env")).status_code == 403
    assert client.post(url, headers=_auth("王读者")).status_code == 403  # a name is not a token
    assert pid in every_pid(eng.search(TERM_Q, k=5, mode="keyword"))
    assert client.post(url, headers=_auth("e-env")).status_code == 200
    assert pid not in every_pid(eng.search(TERM_Q, k=5, mode="keyword"))
    assert client.get("/api/audit", headers=_auth("e-env")).status_code == 403
    entries = client.get("/api/audit", headers=_auth("a:env")).json["entries"]
    assert [(e["who"], e["action"], e["result"]) for e in entries[:1]] == [("李编辑", "disable", "ok")]


def test_tokens_file_and_environment_together_and_bad_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys) -> None:
    from webui.auth import Tokens, TokensError, check_bind, parse_env_tokens

    users = parse_env_tokens(ENV_TOKENS)
    assert {t: (u.name, u.role) for t, u in users.items()} == {
        "r-env": ("王读者", "reader"), "e-env": ("李编辑", "editor"), "a:env": ("张管理", "admin")}
    assert parse_env_tokens('[{"token": "t1", "role": "editor", "name": "甲"}]')["t1"].role == "editor"
    file = tmp_path / "tokens.txt"
    file.write_text("f-tok reader 文件读者\ne-env admin 冒名\n", "utf-8")
    both = Tokens(str(file), "adm", ENV_TOKENS).users()  # the file's first, then the environment's, then the admin's
    assert {t: (u.name, u.role) for t, u in both.items()} == {
        "f-tok": ("文件读者", "reader"), "e-env": ("冒名", "admin"), "r-env": ("王读者", "reader"),
        "a:env": ("张管理", "admin"), "adm": ("admin", "admin")}
    for bad, says in (("张三:editor", "expected 'name:role:token'"), ("张三:editor:", "expected 'name:role:token'"),
                      ("张三:boss:t1", "role must be one of"), (" , ;", "is empty"), ("[1]", "must be an object")):
        with pytest.raises(TokensError, match=says) as err:
            parse_env_tokens(bad)
        assert "PARTYQA_TOKENS" in str(err.value) and " / " in str(err.value)  # 中文 / English
        monkeypatch.setenv("PARTYQA_TOKENS", bad)
        with pytest.raises(TokensError):  # refused at start, on loopback too
            check_bind("127.0.0.1")
    monkeypatch.setenv("PARTYQA_TOKENS", "张三:editor")
    assert cli_main(["--index-dir", str(tmp_path / "index"), "serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "PARTYQA_TOKENS 第 1 项应为“名字:角色:令牌”" in err and "entry 1: expected 'name:role:token'" in err
    monkeypatch.setenv("PARTYQA_TOKENS", "张三:editor:t1")
    check_bind("0.0.0.0")  # named users from the environment are tokens enough to serve a network address


def test_cli_writes_are_audited(tmp_path: Path, corpus: Path, capsys) -> None:
    index = str(tmp_path / "index")
    assert cli_main(["--index-dir", index, "-q", "index", str(corpus), "--no-wait"]) == 0
    assert cli_main(["--index-dir", index, "-q", "disable", f"{REG}#3", f"{REG}#4"]) == 0
    assert cli_main(["--index-dir", index, "-q", "enable", f"{REG}#4"]) == 0
    assert cli_main(["--index-dir", index, "-q", "disable", "nope#1"]) == 2
    assert cli_main(["--index-dir", index, "-q", "remove", ESSAY]) == 0
    capsys.readouterr()
    assert cli_main(["--index-dir", index, "-q", "passages", REG, "--json"]) == 0
    states = {p["pid"]: p["state"] for p in json.loads(capsys.readouterr().out)}
    assert states[f"{REG}#3"] == "disabled" and states[f"{REG}#4"] == "enabled"
    assert cli_main(["--index-dir", index, "-q", "audit", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["action"], e["result"]) for e in entries] == [("remove", "ok"), ("disable", "failed"),
                                                             ("enable", "ok"), ("disable", "ok"), ("index", "ok")]
    assert {e["who"] for e in entries} == {"local"}


# ------------------------------------------------------------------------------------------- kill test
@pytest.mark.parametrize("point", ["curation", "before_switch", "after_switch"])
def test_a_killed_disable_leaves_index_and_audit_log_consistent(eng: Engine, point: str) -> None:
    index = eng.root
    target = top_pid(eng, TERM_Q)
    eng.close()
    kill_at(index, point, index.parent / "disable.log", "disable", target)
    committed = point == "after_switch"  # CURRENT was switched: the disable happened, whole
    with Engine.open(index, Config(lock_timeout=0)) as after:
        state = next(p["state"] for p in after.passages(REG) if p["pid"] == target)
        assert state == ("disabled" if committed else "enabled")
        assert (target in every_pid(after.search(TERM_Q, k=10, mode="keyword"))) is not committed
        entries = after.curator.audit()
        assert [(e["action"], e["target"], e["result"]) for e in entries[:1]] == [("disable", [target], "unfinished")]
        # no stale lock, no damaged generation: the next write goes through at once and is logged as done
        after.set_passage_enabled([target], committed)
        assert after.curator.audit()[0]["result"] == "ok"
        assert not list(index.glob("gen-*.tmp"))


@pytest.mark.parametrize("point", ["curation", "before_switch", "after_switch"])
def test_a_killed_link_leaves_no_half_link(eng: Engine, point: str) -> None:
    """A link killed before CURRENT is switched is not there at all; killed just after the switch it is there
    whole (listed, its passage first and marked); either way its audit entry is there (begun, never ended)."""
    index = eng.root
    target = top_pid(eng, "组织生活会多久开一次")  # not among TERM_Q's own first hits: the link alone puts it first
    assert target not in every_pid(eng.search(TERM_Q, k=5, mode="keyword"))
    eng.close()
    kill_at(index, point, index.parent / "link.log", "link", TERM_Q, target)
    committed = point == "after_switch"
    with Engine.open(index, Config(lock_timeout=0)) as after:
        linked = [(s["question"], s["pid"]) for s in after.curator.standard_questions()]
        assert linked == ([(TERM_Q, target)] if committed else [])
        hits = after.search(TERM_Q, k=5, mode="keyword")
        marked = [h["pid"] for h in hits if h.get("standard_answer")]
        assert marked == ([target] if committed else [])
        assert (target in every_pid(hits)) is committed and (hits[0]["pid"] == target) is committed
        entries = after.curator.audit()
        assert [(e["action"], e["result"]) for e in entries] == [("link", "unfinished"), ("index", "ok")]
        assert entries[0]["target"] == {"question": TERM_Q, "pid": target}
        # no stale lock, no damaged generation: the next write goes through at once and is logged as done
        after.curator.link_question(TERM_Q, target)
        assert after.search(TERM_Q, k=5, mode="keyword")[0]["pid"] == target
        assert after.curator.audit()[0]["result"] == "ok"
        assert not list(index.glob("gen-*.tmp"))


# ------------------------------------------------------------------------------------------- the Python API and the 操作记录 page
def test_writes_through_the_python_api_are_audited_as_local(tmp_path: Path, corpus: Path) -> None:
    """A script using the Engine is recorded like the CLI and the web: "local", or the user it acts as; a write
    inside another (import_dir's sync) is one entry; a failed one is recorded as failed."""
    extra = tmp_path / "补充材料.txt"
    extra.write_text("主题党日活动每月开展一次，由党支部书记负责组织。\n", "utf-8")
    with Engine.open(tmp_path / "index", Config()) as e:
        e.index(corpus, wait=False)
        e.add([extra], wait=False)
        e.set_metadata(REG, category="本单位制度")
        with pytest.raises(KeyError):
            e.set_metadata("没有这个文件.txt", category="x")
        pid = top_pid(e, TERM_Q)
        e.set_passage_enabled([pid], False)
        with journal.acting_as("脚本用户"):
            e.set_passage_enabled([pid], True)
            e.remove(["补充材料.txt"])
        source = tmp_path / "samples"
        make_corpus(source)
        e.import_dir(source, wait=False)
        entries = e.curator.audit()
    assert [(a["who"], a["action"], a["result"]) for a in entries] == [
        ("local", "import", "ok"), ("脚本用户", "remove", "ok"), ("脚本用户", "enable", "ok"), ("local", "disable", "ok"),
        ("local", "metadata", "failed"), ("local", "metadata", "ok"), ("local", "add", "ok"), ("local", "index", "ok")]
    assert entries[-3]["changes"] == {"category": "本单位制度"} and entries[1]["target"] == ["补充材料.txt"]


def test_the_audit_page_lists_who_what_when_newest_first_for_admins_only(eng: Engine, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from webui.curation import AUDIT_PAGE

    pids = [p["pid"] for doc in (REG, ESSAY) for p in eng.passages(doc)][:(AUDIT_PAGE + 4) // 2]
    writes = []  # with the index, AUDIT_PAGE + 5 entries
    for pid in pids:
        for enabled in (False, True):
            eng.set_passage_enabled([pid], enabled)
            writes.append(("enable" if enabled else "disable", pid))
    assert len(writes) == AUDIT_PAGE + 4
    client = create_app(eng).test_client()
    html = client.get("/audit").get_data(as_text=True)
    assert 'id="nav-audit" class="active">' in html  # local: an admin, the link shown
    rows = html.split('<tr class="audit-row"')[1:]
    assert len(rows) == AUDIT_PAGE
    assert "启用段落" in rows[0] and pids[-1] in rows[0] and "local" in rows[0] and "成功" in rows[0]  # newest first
    assert "停用段落" in rows[1] and pids[-1] in rows[1] and pids[-2] in rows[2]
    assert f"共 {len(writes) + 1} 条" in html and 'id="audit-page-next"' in html
    last = client.get("/audit?page=2").get_data(as_text=True)
    assert last.count('<tr class="audit-row"') == len(writes) + 1 - AUDIT_PAGE and "同步索引" in last
    api = client.get("/api/audit?limit=3&offset=2").json
    assert api["total"] == len(writes) + 1
    assert [(a["action"], a["target"]) for a in api["entries"]] == [(w, [pid]) for w, pid in writes[::-1][2:5]]
    # with tokens: an admin's token sees it; a reader's and an editor's get 403; no token: the page asks for one
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("r-token reader 王读者\ne-token editor 李编辑\na-token admin 张管理\n", "utf-8")
    monkeypatch.setenv("PARTYQA_TOKENS_FILE", str(tokens))
    client = create_app(eng).test_client()
    assert client.get("/audit", headers=_auth("r-token")).status_code == 403
    assert client.get("/audit", headers=_auth("e-token")).status_code == 403
    assert client.get("/api/audit", headers=_auth("e-token")).status_code == 403
    admin = client.get("/audit", headers=_auth("a-token")).get_data(as_text=True)
    assert admin.count('<tr class="audit-row"') == AUDIT_PAGE and 'id="nav-audit" class="active">' in admin
    anonymous = client.get("/audit").get_data(as_text=True)
    assert 'id="audit-token-note"' in anonymous and '<tr class="audit-row"' not in anonymous
    assert 'id="login-open"' in anonymous and 'id="nav-audit" class="active" hidden>' in anonymous
    assert 'id="nav-audit" class="" hidden>' in client.get("/faq").get_data(as_text=True)  # hidden from non-admins


# ------------------------------------------------------------------------------------------- rebuilding keeps curation
def curated_state(e: Engine) -> dict:
    """What people curated, as a user sees it: metadata, disabled passages (by text), standard questions (with the
    text of the passage each answers), FAQ entries, feedback and the audit log's writes."""
    texts = {p["pid"]: p["text"] for d in e.doc_ids() for p in e.passages(d)}
    return {
        "metadata": {d: {k: v for k, v in e.metadata(d).items()} for d in e.doc_ids() if e.metadata(d)["edited"]},
        "disabled": sorted(texts[r["pid"]] for r in e.curator.disabled() if r["pid"]),
        "standard": sorted((r["question"], texts.get(r["pid"])) for r in e.curator.standard_questions()),
        "faq": [(x["doc_id"], x["question"], x["answer"]) for x in faq.list_entries(e)],
        "feedback": e.curator.feedback()["counts"],
    }


def test_rebuild_keeps_what_people_curated(tmp_path: Path, seed_cache: Path) -> None:
    """Issue 23 item 4 / issue 26: metadata corrections, disabled passages, standard questions (also an FAQ
    import's), a removed FAQ entry, feedback and the audit log survive `index --rebuild`, also a rebuild of an
    index whose current generation is damaged, as they survive re-indexing a changed file and re-importing."""
    index = with_seed_cache(seed_cache, tmp_path / "index")
    src = make_corpus(tmp_path / "samples")
    with Engine.open(index, Config()) as e:
        e.import_dir(src)
        disabled = top_pid(e, TERM_Q)
        e.set_passage_enabled([disabled], False)
        e.set_metadata(REG, title="本支部工作规则（修订稿）", category="本单位制度", status="已废止", published="2020-03-01")
        chosen = next(p["pid"] for p in e.passages(ESSAY) if "监督" in p["text"])
        e.curator.link_question("支部委员会选举多久一次", chosen)
        faq.import_faq(e, faq_xlsx(tmp_path / "常见问题.xlsx", PAIRS + [("预备党员的预备期多长", "预备期为一年。", "")]))
        e.remove(["问答/常见问题/3"])  # one entry of the import deleted as a document
        e.curator.add_feedback(TERM_Q, top_pid(e, "支部委员会选举"), True, "keyword")
        before = curated_state(e)
        assert before["metadata"][REG]["edited"] == ["title", "category", "published", "status"]
        assert len(before["disabled"]) == 1 and len(before["faq"]) == 2
        assert ("支部委员会选举多久一次", next(p["text"] for p in e.passages(ESSAY) if p["pid"] == chosen)) in \
            before["standard"]
        audit = e.curator.audit()
        assert [a["action"] for a in audit][:6] == ["remove", "import", "link", "metadata", "disable", "import"]
        # re-importing the same folder keeps it
        e.import_dir(src)
        assert curated_state(e) == before
    with Engine.rebuild(index, config=Config())[0] as e:
        assert curated_state(e) == before
        assert e.curator.audit()[-len(audit):] == audit  # the log only grew
        assert e.search("支部委员会选举多久一次", k=3, mode="keyword")[0]["pid"] == chosen
        assert e.search("本支部工作规则", k=1, mode="keyword")[0]["title"] == "本支部工作规则（修订稿）"
    # the current generation damaged: the rebuild takes what the previous one kept
    current = json.loads((index / "CURRENT").read_text("utf-8"))["generation"]
    (index / f"gen-{current:08d}" / "manifest.json").write_text("{", "utf-8")
    with Engine.rebuild(index, config=Config())[0] as e:
        assert curated_state(e) == before


def test_rebuild_drops_the_corrections_of_documents_the_corpus_no_longer_holds(tmp_path: Path,
                                                                               seed_cache: Path) -> None:
    """A rebuild from a corpus without a corrected document forgets that correction, as removing the document does;
    the corrections of documents it still holds stay. Before, the correction stayed in the manifest and came back
    when a file of that name was added again."""
    index = with_seed_cache(seed_cache, tmp_path / "index")
    corpus = make_corpus(tmp_path / "corpus")
    with Engine.open(index, Config()) as e:
        e.index(corpus)
        e.set_metadata(REG, title="本支部工作规则（修订稿）")
        e.set_metadata(ESSAY, category="学习材料")
    moved = tmp_path / "moved.txt"
    shutil.move(str(corpus / REG), moved)
    with Engine.rebuild(index, corpus, Config())[0] as e:
        edits = e._state().manifest.get("metadata_edits") or {}
        assert REG not in edits and ESSAY in edits
        assert e.metadata(ESSAY)["category"] == "学习材料"
    shutil.move(str(moved), corpus / REG)
    with Engine.open(index, Config()) as e:
        e.index(corpus)
        assert e.metadata(REG)["title"] != "本支部工作规则（修订稿）" and not e.metadata(REG)["edited"]


@pytest.mark.slow
def test_a_killed_rebuild_keeps_the_curation_for_the_next_run(tmp_path: Path, seed_cache: Path) -> None:
    """`index --rebuild` killed after it discarded the old generations (at ``read``, and as if killed before its
    empty generation 0 was written): re-running it still brings back the disabled passage and the correction."""
    index = with_seed_cache(seed_cache, tmp_path / "index")
    corpus = make_corpus(tmp_path / "corpus")
    with Engine.open(index, Config()) as e:
        e.index(corpus)
        target = top_pid(e, TERM_Q)
        text = next(p["text"] for p in e.passages(REG) if p["pid"] == target)
        e.set_passage_enabled([target], False)
        e.set_metadata(REG, title="本支部工作规则（修订稿）")
    for killed_before_gen0 in (False, True):
        kill_at(index, "read", tmp_path / "rebuild.log", "index", "--rebuild", str(corpus))
        if killed_before_gen0:
            (index / "CURRENT").unlink()
            for gen in index.glob("gen-*"):
                shutil.rmtree(gen)
        assert (index / "REBUILDING").exists()
        assert subprocess.run([sys.executable, "-m", "indexer.cli", "--index-dir", str(index), "-q", "index",
                               "--rebuild"], capture_output=True, timeout=600).returncode == 0
        with Engine.open(index, Config(lock_timeout=0)) as after:
            assert after.metadata(REG)["title"] == "本支部工作规则（修订稿）"
            assert [p["state"] for p in after.passages(REG) if p["text"] == text] == ["disabled"]
            assert target not in every_pid(after.search(TERM_Q, k=10, mode="keyword"))


def test_a_question_vector_matches_the_same_standard_question_at_any_length() -> None:
    """match_standard normalises the stored and the asked vectors (encoders.l2_normalize): the match and its
    similarity do not depend on a vector's length, and a zero vector matches nothing instead of giving NaN."""
    import numpy as np
    from indexer.types import Passage

    rng = np.random.default_rng(7)
    passages = {p.pid: p for p in (Passage("a.txt", "甲", "", "第一条 党支部委员会每届任期三年。", 0, 17, 0),
                                   Passage("a.txt", "甲", "", "第二条 党员应当按时交纳党费。", 18, 33, 1))}
    asked = ["党支部委员会每届任期是多长时间", "党员怎么交党费"]
    vecs = rng.normal(size=(2, 384)).astype(np.float32)
    linked = {normalise_question(q): {"question": q, "key": curation.key_of(p), "doc_id": p.doc_id,
                                      "vector": curation.pack_vector(v * scale), "model_id": "m"}
              for q, p, v, scale in zip(asked, passages.values(), vecs, (0.05, 40.0))}

    class Snap:  # the parts of a Snapshot that match_standard reads
        def __init__(self) -> None:
            self.manifest = {"model_id": "m", curation.STANDARD_KEY: linked}
            self.passages, self.by_doc = passages, {"a.txt": list(passages)}

    near = vecs[0] + 0.2 * rng.normal(size=384).astype(np.float32)
    cos = float(near @ vecs[0] / (np.linalg.norm(near) * np.linalg.norm(vecs[0])))
    assert 0.93 < cos < 0.999
    for scale in (1e-3, 1.0, 250.0):
        rec, sim = curation.match_standard(Snap(), "党支部委员会每一届的任期是多长时间", near * scale)
        assert rec["pid"] == "a.txt#0" and abs(sim - cos) < 1e-3
    assert curation.match_standard(Snap(), "党支部委员会每一届的任期是多长时间", np.zeros(384, np.float32)) is None
