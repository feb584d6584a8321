"""问答对 (FAQ entries, issue 26) over the seed essay and the regulation fixture: an xlsx import searchable by
question and answer, a bad file refused naming its rows, an entry edited (found by its new text, never by its old)
and deleted like a document through the engine, the CLI, the API and the 问答对 page, each write audited with its
user, and a SIGKILL during an import or an edit leaving the index and the audit log consistent."""
from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.parse import quote

import pytest

from test_robust_kill import assert_consistent, kill_at, run
from indexer import Config, Engine
from indexer import faq
from indexer.cli import main as cli_main
from indexer.types import PartyQAError
from webui import create_app

# Pairs written for these tests (paraphrased rules, not sentences of the corpus).
PAIRS = [("入党积极分子要培养多长时间", "一般要经过一年以上的培养教育和考察，才能列为发展对象。", "发展党员工作细则"),
         ("党费按什么比例交纳", "按每月工资收入的百分之零点五至百分之二交纳，收入越高比例越高。", "")]
NEW_ANSWER = "每月按规定标准交纳，具体数额由党支部在组织生活会上公布。"
OLD_WORDS = "工资收入百分之零点五"  # words of the old answer only


def faq_xlsx(path: Path, rows: list[tuple[str, ...]]) -> Path:
    """An xlsx with the header 问题 / 答案 / 来源 and ``rows``."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["问题", "答案", "来源"])
    for row in rows:
        sheet.append(list(row))
    book.save(path)
    return path


def faq_ids(e: Engine) -> list[str]:
    return [d for d in e.doc_ids() if d.startswith("问答/")]


def top(e: Engine, q: str) -> dict:
    return e.search(q, k=3, mode="keyword")[0]


@pytest.fixture()
def imported(eng: Engine) -> Engine:
    """``eng`` with PAIRS imported from 常见 问题.xlsx (entries 问答/常见_问题/1 and /2)."""
    faq.import_faq(eng, faq_xlsx(eng.root.parent / "常见 问题.xlsx", PAIRS))
    return eng


# ------------------------------------------------------------------------------------------- import
def test_a_faq_xlsx_import_is_searchable_by_question_and_answer_and_replaced_on_reimport(eng: Engine) -> None:
    client = create_app(eng).test_client()
    path = faq_xlsx(eng.root.parent / "常见 问题.xlsx", PAIRS)
    with open(path, "rb") as fh:
        r = client.post("/api/faq", data={"file": (fh, "常见 问题.xlsx")}, content_type="multipart/form-data")
    assert r.status_code == 201, r.json
    assert r.json["entries"] == ["问答/常见_问题/1", "问答/常见_问题/2"] and r.json["linked"] == 2
    listed = client.get("/api/faq").json["entries"]
    assert [(e["doc_id"], e["question"], e["answer"], e["source"], e["linked"]) for e in listed] == [
        ("问答/常见_问题/1", *PAIRS[0], True), ("问答/常见_问题/2", *PAIRS[1], True)]
    hit = top(eng, "党费按什么比例交纳？")  # the question: the entry, as 标准答案
    assert hit["doc_id"] == "问答/常见_问题/2" and hit["standard_answer"] is True
    assert "百分之零点五" in hit["text"]
    by_answer = eng.search(OLD_WORDS, k=3, mode="keyword")  # the answer's words find it too
    assert by_answer[0]["doc_id"] == "问答/常见_问题/2" and not by_answer[0].get("standard_answer")
    assert "来源：发展党员工作细则" in eng.document("问答/常见_问题/1")["text"]
    # importing the file again with one pair changed and one dropped replaces the entries
    faq_xlsx(path, [(PAIRS[1][0], "按月交纳，比例见党费规定。", "")])
    out = faq.import_faq(eng, path)
    assert out["entries"] == ["问答/常见_问题/1"]
    assert faq_ids(eng) == ["问答/常见_问题/1"]
    hit = top(eng, PAIRS[1][0])
    assert hit["doc_id"] == "问答/常见_问题/1" and hit["standard_answer"] and "党费规定" in hit["text"]
    assert [q["question"] for q in eng.curator.standard_questions()] == [PAIRS[1][0]]  # the dropped pair's link too
    # one audit entry per import: the add and the links are one write
    assert [(e["action"], e["result"]) for e in eng.curator.audit()][:2] == [("import", "ok"), ("import", "ok")]


# Pairs for the csv and jsonl imports, each with words of its answer only (none of them is in the corpus).
CSV_PAIRS = [("党员组织关系转接要带什么材料", "持党员组织关系介绍信，在规定时限内到接收的党组织报到。",
              "党员组织关系介绍信管理办法, 第三条", "组织关系介绍信"),  # an ASCII comma: a quoted csv field
             ("流动党员外出前要办什么手续", "向所在党支部报告，领取流动党员活动证，外出期间定期联系。", "", "领取流动党员活动证")]
JSONL_PAIRS = [("预备党员的预备期有多长", "预备期为一年，自支部大会通过其为预备党员之日起计算。", "发展党员工作细则",
                "支部大会通过其为预备党员之日"),
               ("党员多久不交党费按自行脱党处理", "无正当理由连续六个月不交纳党费的，按自行脱党处理。", "", "无正当理由连续六个月")]


def _assert_searchable(e: Engine, prefix: str, pairs: list[tuple[str, str, str, str]]) -> None:
    """Each pair's entry answers its question (as 标准答案) and is found by words of its answer alone."""
    listed = {x["doc_id"]: (x["question"], x["answer"], x["source"]) for x in faq.list_entries(e)}
    for n, (question, answer, source, answer_words) in enumerate(pairs, start=1):
        entry = f"{prefix}/{n}"
        assert listed[entry] == (question, answer, source)
        hit = top(e, question)
        assert hit["doc_id"] == entry and hit["standard_answer"] is True and hit["best_sentence"] == answer
        assert answer_words not in question
        assert top(e, answer_words)["doc_id"] == entry, answer_words


def test_faq_csv_and_jsonl_imports_are_searchable_by_question_and_answer(eng: Engine, tmp_path: Path, capsys) -> None:
    """Issue 26 §2: a csv (Excel's utf-8 with BOM, header 问题 / 答案 / 来源) imported with the CLI and a jsonl
    (question / answer / source) posted to the API each become entries found by their question and their answer."""
    import csv

    table = tmp_path / "组织关系问答.csv"
    with open(table, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["问题", "答案", "来源"])
        writer.writerows(row[:3] for row in CSV_PAIRS)
    assert '"党员组织关系介绍信管理办法, 第三条"' in table.read_text("utf-8-sig")
    lines = tmp_path / "发展党员问答.jsonl"
    lines.write_text("".join(json.dumps({"question": q, "answer": a, **({"source": s} if s else {})},
                                        ensure_ascii=False) + "\n" for q, a, s, _ in JSONL_PAIRS), "utf-8")
    index = eng.root
    eng.close()
    assert cli_main(["--index-dir", str(index), "-q", "faq", "import", str(table), "--no-wait"]) == 0
    with Engine.open(index, Config()) as e:
        client = create_app(e).test_client()
        with open(lines, "rb") as fh:
            r = client.post("/api/faq", data={"file": (fh, lines.name)}, content_type="multipart/form-data")
        assert r.status_code == 201, r.json
        assert r.json["entries"] == ["问答/发展党员问答/1", "问答/发展党员问答/2"] and r.json["linked"] == 2
        assert sorted(faq_ids(e)) == ["问答/发展党员问答/1", "问答/发展党员问答/2", "问答/组织关系问答/1", "问答/组织关系问答/2"]
        _assert_searchable(e, "问答/组织关系问答", CSV_PAIRS)
        _assert_searchable(e, "问答/发展党员问答", JSONL_PAIRS)
        assert [a["action"] for a in e.curator.audit()][:2] == ["import", "import"]


def test_a_bad_faq_file_is_refused_naming_its_rows(eng: Engine, tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text("问题,答案\n党费怎么交,按月交纳\n党员有哪些权利,\n支委会多久换届,\n", "utf-8")
    with pytest.raises(PartyQAError, match=r"row\(s\) 3, 4 have no answer"):
        faq.import_faq(eng, path)
    assert not faq_ids(eng)
    assert cli_main(["--index-dir", str(eng.root), "-q", "faq", "import", str(path)]) == 2
    client = create_app(eng).test_client()
    sheet = faq_xlsx(tmp_path / "缺答案.xlsx", [("党费怎么交", "按月交纳", ""), ("党员有哪些权利", "", "")])
    with open(sheet, "rb") as fh:
        r = client.post("/api/faq", data={"file": (fh, "缺答案.xlsx")}, content_type="multipart/form-data")
    assert r.status_code == 400 and r.json["error"]["message_zh"] == "缺答案.xlsx：第 3 行缺少答案（列名：答案 或 answer）"
    r = client.post("/api/faq", data={"file": (io.BytesIO(b'{"not": "a workbook"}'), "坏文件.xlsx")},
                    content_type="multipart/form-data")  # not a workbook
    assert r.status_code == 400 and r.json["error"]["message_zh"].startswith("坏文件.xlsx：")
    r = client.post("/api/faq", data={"file": (io.BytesIO(b"question,answer\n"), "x.txt")}, content_type="multipart/form-data")
    assert r.status_code == 400 and "csv、xlsx 或 jsonl" in r.json["error"]["message_zh"]
    assert not faq_ids(eng)
    assert [(e["action"], e["result"]) for e in eng.curator.audit()][:1] == [("index", "ok")]  # refused: not begun


# ------------------------------------------------------------------------------------------- edit
def test_an_edited_entry_is_found_by_its_new_text_and_its_old_text_is_never_returned(imported: Engine) -> None:
    e = imported
    client = create_app(e).test_client()
    entry = "问答/常见_问题/2"
    old_answer = PAIRS[1][1]
    e.set_passage_enabled([f"{entry}#0"], False)  # a disabled entry keeps a record of its text's opening
    assert old_answer[:20] in json.dumps(client.get("/api/passages/disabled").json, ensure_ascii=False)
    e.set_passage_enabled([f"{entry}#0"], True)
    generation = e.stats()["generation"]
    r = client.patch(f"/api/faq/{quote(entry)}", json={"answer": NEW_ANSWER})
    assert r.status_code == 200, r.json
    assert (r.json["question"], r.json["answer"], r.json["state"]) == (PAIRS[1][0], NEW_ANSWER, "keyword")
    assert e.stats()["generation"] == generation + 1  # the entry and its link: one generation
    # found by the new answer's words at once (keyword), as the standard answer of its question
    assert top(e, "组织生活会上公布交纳标准")["doc_id"] == entry
    hit = top(e, PAIRS[1][0])
    assert hit["doc_id"] == entry and hit["standard_answer"] and NEW_ANSWER in hit["text"]
    # never by the old one: not in any hit, the document, the listings, the data folder's file
    assert all(h["doc_id"] != entry for h in e.search(OLD_WORDS, k=10, mode="keyword"))
    shown = [e.document(entry), client.get("/api/faq").json, client.get(f"/api/faq/{quote(entry)}").json,
             client.get("/api/standard_questions").json, client.get("/api/passages/disabled").json,
             client.get(f"/api/documents/{quote(entry)}/passages").json, client.get("/faq").get_data(as_text=True),
             e.curator.audit()]
    for item in shown:
        assert old_answer not in json.dumps(item, ensure_ascii=False)
    data_file = Path(e.stats()["corpus_dir"]) / "问答-常见_问题.jsonl"
    assert NEW_ANSWER in data_file.read_text("utf-8") and old_answer not in data_file.read_text("utf-8")
    # the other entry is untouched; editing the question moves the standard question with it
    assert top(e, PAIRS[0][0])["doc_id"] == "问答/常见_问题/1"
    faq.edit_entry(e, entry, question="党费每月交多少")
    assert top(e, "党费每月交多少")["standard_answer"] is True
    assert sorted(q["question"] for q in e.curator.standard_questions()) == sorted([PAIRS[0][0], "党费每月交多少"])
    assert not any(h.get("standard_answer") for h in e.search(PAIRS[1][0], k=3, mode="keyword"))
    # refused edits change nothing
    generation = e.stats()["generation"]
    assert client.patch(f"/api/faq/{quote(entry)}", json={"answer": "  "}).status_code == 400
    assert client.patch(f"/api/faq/{quote('问答/常见_问题/9')}", json={"answer": "x"}).status_code == 404
    assert client.patch(f"/api/faq/{quote(entry)}", json={"answer": 3}).status_code == 400
    assert e.stats()["generation"] == generation
    assert [(a["action"], a["target"], a["result"]) for a in e.curator.audit()[:2]] == [
        ("edit", {"faq": entry}, "ok"), ("edit", {"faq": entry}, "ok")]


def test_cli_lists_edits_and_removes_entries(imported: Engine, capsys) -> None:
    index = str(imported.root)
    imported.close()
    base = ["--index-dir", index, "-q"]
    capsys.readouterr()
    assert cli_main([*base, "faq", "list", "--json"]) == 0
    assert [e["doc_id"] for e in json.loads(capsys.readouterr().out)] == ["问答/常见_问题/1", "问答/常见_问题/2"]
    assert cli_main([*base, "faq", "edit", "问答/常见_问题/2", "--answer", NEW_ANSWER, "--no-wait"]) == 0
    assert cli_main([*base, "faq", "edit", "常见_问题/9", "--answer", "x"]) == 2
    assert cli_main([*base, "faq", "edit", "问答/常见_问题/2"]) == 2  # nothing to change
    assert cli_main([*base, "faq", "remove", "问答/常见_问题/1"]) == 0
    capsys.readouterr()
    assert cli_main([*base, "faq", "list", "--json"]) == 0
    assert [(e["doc_id"], e["answer"]) for e in json.loads(capsys.readouterr().out)] == [
        ("问答/常见_问题/2", NEW_ANSWER)]
    assert cli_main([*base, "ask", PAIRS[0][0], "--mode", "keyword", "--json"]) == 0
    assert all(not h["doc_id"].startswith("问答/常见_问题/1") for h in json.loads(capsys.readouterr().out)["results"])
    assert cli_main([*base, "faq", "remove", "--import", "常见_问题"]) == 0
    with Engine.open(index, Config()) as e:
        assert faq_ids(e) == [] and e.curator.standard_questions() == []
        assert list((e.root / "removed").rglob("问答-常见_问题.jsonl"))  # kept like a deleted document's file
        # refused requests (an unknown entry, nothing to change) changed nothing and are not in the log
        assert [(a["action"], a["who"], a["result"]) for a in e.curator.audit()[:4]] == [
            ("delete", "local", "ok"), ("delete", "local", "ok"), ("edit", "local", "ok"), ("import", "local", "ok")]


# ------------------------------------------------------------------------------------------- roles and the page
def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_editors_import_and_edit_admins_delete_and_every_write_is_audited(imported: Engine, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("r-token reader 王读者\ne-token editor 李编辑\na-token admin 张管理\n", "utf-8")
    monkeypatch.setenv("PARTYQA_TOKENS_FILE", str(tokens))
    client = create_app(imported).test_client()
    url = f"/api/faq/{quote('问答/常见_问题/2')}"
    assert client.get("/api/faq").status_code == 200  # readers (anonymous too) list
    assert client.patch(url, json={"answer": NEW_ANSWER}).status_code == 401
    assert client.patch(url, json={"answer": NEW_ANSWER}, headers=_auth("r-token")).status_code == 403
    assert client.patch(url, json={"answer": NEW_ANSWER}, headers=_auth("e-token")).status_code == 200
    assert client.delete(url, headers=_auth("e-token")).status_code == 403
    sheet = faq_xlsx(tmp_path / "补充.xlsx", [("预备党员的预备期多长", "预备期为一年，从支部大会通过之日算起。", "")])
    with open(sheet, "rb") as fh:
        assert client.post("/api/faq", data={"file": (fh, "补充.xlsx")}, headers=_auth("r-token"),
                           content_type="multipart/form-data").status_code == 403
    with open(sheet, "rb") as fh:
        assert client.post("/api/faq", data={"file": (fh, "补充.xlsx")}, headers=_auth("e-token"),
                           content_type="multipart/form-data").status_code == 201
    r = client.delete(url, headers=_auth("a-token"))
    assert r.status_code == 200 and r.json["removed"] == ["问答/常见_问题/2"]
    assert client.delete(url, headers=_auth("a-token")).status_code == 404
    r = client.delete("/api/faq?import=补充", headers=_auth("a-token"))
    assert r.status_code == 200 and r.json["removed"] == ["问答/补充/1"]
    assert faq_ids(imported) == ["问答/常见_问题/1"]
    entries = client.get("/api/audit", headers=_auth("a-token")).json["entries"]
    assert [(a["who"], a["action"], a["result"]) for a in entries[:5]] == [
        ("张管理", "delete", "ok"), ("张管理", "delete", "ok"), ("李编辑", "import", "ok"), ("李编辑", "edit", "ok"),
        ("local", "import", "ok")]


def test_the_faq_page_lists_entries_with_controls_by_role(imported: Engine, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    client = create_app(imported).test_client()
    html = client.get("/faq").get_data(as_text=True)
    assert 'id="nav-faq"' in html and "问答对" in html
    assert html.count('class="faq-row"') == 2 and 'data-doc-id="问答/常见_问题/1"' in html
    assert PAIRS[0][1] in html and 'id="faq-file"' in html and 'id="faq-import-btn"' in html
    # without tokens the local user is an admin: import, edit and delete are shown
    assert 'id="faq-import-panel">' in html
    assert 'faq-edit-btn needs-editor" type="button">' in html and 'faq-delete-btn needs-admin" type="button">' in html
    one = client.get("/faq?import=常见_问题&page=2").get_data(as_text=True)  # clamped to the last page
    assert one.count('class="faq-row"') == 2
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("e-token editor 李编辑\n", "utf-8")
    monkeypatch.setenv("PARTYQA_TOKENS_FILE", str(tokens))
    client = create_app(imported).test_client()
    anonymous = client.get("/faq").get_data(as_text=True)
    assert anonymous.count('class="faq-row"') == 2 and 'id="login-open"' in anonymous
    assert 'id="faq-import-panel" hidden>' in anonymous  # shown by curation.js once /api/me says editor
    assert 'faq-edit-btn needs-editor" type="button" hidden>' in anonymous
    editor = client.get("/faq", headers=_auth("e-token")).get_data(as_text=True)
    assert 'faq-edit-btn needs-editor" type="button">' in editor  # shown
    assert 'faq-delete-btn needs-admin" type="button" hidden>' in editor  # deleting is an admin's


# ------------------------------------------------------------------------------------------- kill tests
V2 = [(PAIRS[1][0], NEW_ANSWER, ""), ("预备党员的预备期多长", "预备期为一年，从支部大会通过之日算起。", "")]


def _assert_whole(e: Engine, expected: list[tuple[str, str, str]]) -> None:
    """The import holds exactly ``expected``, each entry linked to its own question and returned first for it."""
    listed = faq.list_entries(e)
    assert [(x["question"], x["answer"], x["source"]) for x in listed] == expected
    assert all(x["linked"] for x in listed)
    links = e.curator.standard_questions()
    assert sorted(q["question"] for q in links) == sorted(q for q, _, _ in expected)
    assert all(q["pid"] is not None and q["doc_id"] in faq_ids(e) for q in links)
    for x in listed:
        hit = top(e, x["question"])
        assert hit["doc_id"] == x["doc_id"] and hit["standard_answer"]
    assert_consistent(e)


@pytest.mark.parametrize("point", ["faq", "keyword", "before_switch", "after_switch"])
def test_a_killed_import_leaves_the_index_and_the_audit_log_consistent(imported: Engine, point: str) -> None:
    index = imported.root
    path = faq_xlsx(index.parent / "常见 问题.xlsx", V2)  # the same file again, one pair changed, one new
    imported.close()
    kill_at(index, point, index.parent / "import.log", "faq", "import", str(path), "--no-wait")
    committed = point == "after_switch"
    with Engine.open(index, Config(lock_timeout=0)) as after:
        _assert_whole(after, V2 if committed else list(PAIRS))
        assert [(a["action"], a["result"]) for a in after.curator.audit()[:2]] == [("import", "unfinished"),
                                                                                  ("import", "ok")]
        # no stale lock, no damaged generation: importing again goes through at once and is logged as done
        faq.import_faq(after, path)
        _assert_whole(after, V2)
        assert after.curator.audit()[0]["result"] == "ok"
        assert not list(index.glob("gen-*.tmp"))


@pytest.mark.parametrize("point", ["faq", "before_switch", "after_switch"])
def test_a_killed_edit_leaves_the_index_and_the_audit_log_consistent(imported: Engine, point: str) -> None:
    index = imported.root
    imported.close()
    kill_at(index, point, index.parent / "edit.log", "faq", "edit", "问答/常见_问题/2", "--answer", NEW_ANSWER,
            "--no-wait")
    committed = point == "after_switch"
    expected = [PAIRS[0], (PAIRS[1][0], NEW_ANSWER if committed else PAIRS[1][1], "")]
    with Engine.open(index, Config(lock_timeout=0)) as after:
        _assert_whole(after, [tuple(x) for x in expected])
        assert [(a["action"], a["result"]) for a in after.curator.audit()[:1]] == [("edit", "unfinished")]
        faq.edit_entry(after, "问答/常见_问题/2", answer=NEW_ANSWER)
        _assert_whole(after, [PAIRS[0], (PAIRS[1][0], NEW_ANSWER, "")])
        corpus = after.stats()["corpus_dir"]
    # a sync of the data folder afterwards finds its files and the index agreeing: nothing re-read, nothing lost
    out = run(index, "index", corpus, "--no-wait", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert not report["added"] and not report["removed"] and not report["updated"], report


# ------------------------------------------------------------------------------------------- the answer shown
def test_an_entry_answers_with_its_answer_not_its_own_question(imported: Engine) -> None:
    question, answer, _ = PAIRS[0]
    for mode in ("keyword", "hybrid"):
        hit = imported.search(question, k=3, mode=mode)[0]
        assert hit["doc_id"] == "问答/常见_问题/1" and hit["best_sentence"] == answer, (mode, hit["best_sentence"])
        assert hit["text"][hit["best_span"][0]:hit["best_span"][1]] == answer
    # the results page's answer box and the exports carry the answer too
    client = create_app(imported).test_client()
    html = client.get("/", query_string={"q": question, "mode": "keyword"}).get_data(as_text=True)
    assert f'<span id="answer-sentence">{answer}</span>' in html
    import csv

    body = client.get("/api/search", query_string={"q": question, "mode": "keyword", "format": "csv"}).get_data(
        as_text=True)
    head, first = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))[:2]
    assert first[[h.split(" ")[-1] for h in head].index("best_sentence")] == answer
    # another document's best sentence is the ranker's, untouched
    other = imported.search("党支部委员会每届任期是多长时间", k=1, mode="keyword")[0]
    assert not other["doc_id"].startswith("问答/") and other["best_sentence"] in other["text"]
