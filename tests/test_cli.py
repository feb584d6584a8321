"""The `partyqa` command end to end, as a user or a script runs it (real subprocesses, real seed essay)."""
from __future__ import annotations

import csv
import io
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SEED, make_corpus, with_seed_cache

pytestmark = pytest.mark.slow  # real `partyqa` subprocesses with the real model

BIN = Path(sys.executable).parent / "partyqa"


def run(*args: str, index: Path | None = None, check: bool = True, **kw) -> subprocess.CompletedProcess:
    cmd = [str(BIN)] + (["--index-dir", str(index)] if index else []) + ["-q", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_split_seed_json_contract():
    out = json.loads(run("split", str(SEED), "--json").stdout)
    assert isinstance(out, list) and out
    for key in ("doc_id", "title", "section", "text", "start", "end"):
        assert all(key in p for p in out)
    joined = "\n".join(p["text"] for p in out)
    for boiler in ("下载文档前请自行甄别", "仅部分预览", "如文档侵犯您的权益", "合集下载", "相关文档", "最新文档"):
        assert boiler not in joined
    for repaired in ("必然要涉及的内容。", "同时,要认真学习", "要让职工群众及时", "民主决策,民主管理"):
        assert any(repaired in p["text"] for p in out), repaired
    heads = {p["section"].split(" > ")[0][:2] for p in out if p["section"]}
    assert {"一、", "二、", "三、", "四、"} <= heads
    assert 80 <= statistics.median(len(p["text"]) for p in out) <= 350
    # Offsets point into the cleaned document text: rebuild it from the in-process pipeline and compare.
    from indexer.ingest.prepare import prepare
    from indexer.ingest.files import load_file

    doc, _ = prepare(load_file(SEED)[0])
    assert all(doc.text[p["start"]:p["end"]] == p["text"] for p in out)


def test_split_bad_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "损坏.docx"
    bad.write_bytes(b"PK\x03\x04 truncated")
    proc = run("split", str(bad), check=False)
    assert proc.returncode == 2 and "损坏.docx" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory, seed_cache):
    base = tmp_path_factory.mktemp("cli")
    corpus = make_corpus(base / "corpus")
    index = with_seed_cache(seed_cache, base / "index")
    proc = run("index", str(corpus), "--json", index=index)
    report = json.loads(proc.stdout)
    assert sorted(report["added"]) == sorted(p.name for p in corpus.iterdir())
    assert report["passages_encoded"] == 0, "the run's embedding cache served the seed corpus"
    return index, corpus


def test_ask_json_and_text(cli_index):
    index, _ = cli_index
    data = json.loads(run("ask", "党支部怎样做好职工群众的服务者", "-k", "3", "--json", index=index).stdout)
    assert data["question"] and len(data["results"]) == 3
    top = data["results"][0]
    assert top["doc_id"] == SEED.name and top["section"].startswith("四、")
    text = run("ask", "党支部怎样做好职工群众的服务者", "-k", "2", "--mode", "keyword", index=index).stdout
    assert "基层党支部工作论文" in text and "#1" in text and "#3" not in text


def test_ask_errors_are_clear(cli_index):
    index, _ = cli_index
    proc = run("ask", "   ", index=index, check=False)
    assert proc.returncode == 2 and "empty" in proc.stderr
    proc = run("ask", "党" * 2000, index=index, check=False)
    assert proc.returncode == 2 and "too long" in proc.stderr
    assert run("ask", "党支部 AND (监督 OR *", "--json", index=index).returncode == 0


def test_batch_formats(cli_index, tmp_path):
    index, _ = cli_index
    qs = ["如何加强制度建设", "党支部怎样上传下达", "基层党支部在改革中的作用"]
    txt = tmp_path / "q.txt"
    txt.write_text("\n".join(qs) + "\n\n", "utf-8")
    csv_in = tmp_path / "q.csv"
    csv_in.write_text("id,question\n" + "\n".join(f"{i},{q}" for i, q in enumerate(qs)), "utf-8")
    jl = tmp_path / "q.jsonl"
    jl.write_text("\n".join(json.dumps({"q": q} if i % 2 else {"question": q}, ensure_ascii=False)
                            for i, q in enumerate(qs)), "utf-8")
    gbk = tmp_path / "q_gbk.txt"
    gbk.write_bytes("\n".join(qs).encode("gbk"))
    outputs = []
    for src in (txt, csv_in, jl, gbk):
        out = tmp_path / f"{src.stem}.out.jsonl"
        run("batch", str(src), "-k", "2", "-o", str(out), index=index)
        lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
        assert [item["question"] for item in lines] == qs
        assert all(len(item["results"]) == 2 and item["results"][0]["rank"] == 1 for item in lines)
        outputs.append([[h["pid"] for h in item["results"]] for item in lines])
    assert all(o == outputs[0] for o in outputs), "same questions, same answers, whatever the input format"
    out = run("batch", str(txt), "-k", "2", "--format", "csv", index=index).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 6 and rows[0]["question"] == qs[0] and rows[0]["rank"] == "1" and rows[0]["best_sentence"]


def test_batch_keeps_going_past_a_bad_question(cli_index, tmp_path):
    index, _ = cli_index
    src = tmp_path / "q.jsonl"
    src.write_text(json.dumps({"question": "党" * 900}) + "\n" + json.dumps({"question": "如何做好监督者"}), "utf-8")
    lines = [json.loads(x) for x in run("batch", str(src), index=index).stdout.splitlines()]
    assert "error" in lines[0] and lines[0]["results"] == []
    assert lines[1]["results"]


def test_docs_add_remove_eval(cli_index, tmp_path):
    index, corpus = cli_index
    docs = json.loads(run("docs", "--json", index=index).stdout)
    assert {d["doc_id"] for d in docs} == {p.name for p in corpus.iterdir()}
    new = tmp_path / "党费规定摘要.md"
    new.write_text("# 党费规定摘要\n\n## 交纳标准\n\n每月工资收入在3000元以下（含3000元）者，交纳月工资收入的0.5%。"
                   "党员应当增强党员意识，主动按月交纳党费。", "utf-8")
    rep = json.loads(run("add", str(new), "--json", index=index).stdout)
    assert rep["added"] == ["党费规定摘要.md"]
    again = json.loads(run("add", str(new), "--json", index=index).stdout)
    assert again["unchanged"] == ["党费规定摘要.md"] and not again["added"]
    gold = tmp_path / "dev.jsonl"
    gold.write_text(json.dumps({"question": "工资三千以下的党员每月交多少党费", "gold_doc": "党费规定摘要.md",
                                "gold_text": "0.5%"}, ensure_ascii=False), "utf-8")
    table = json.loads(run("eval", str(gold), "--json", index=index).stdout)
    assert set(table) == {"keyword", "semantic", "hybrid"}
    assert table["hybrid"]["R@5"] == 1.0
    assert run("remove", "党费规定摘要.md", index=index).returncode == 0
    proc = run("remove", "党费规定摘要.md", index=index, check=False)
    assert proc.returncode == 1 and "not found" in proc.stderr
    bad = tmp_path / "bad.docx"
    bad.write_bytes(b"garbage")
    proc = run("add", str(bad), "--json", index=index, check=False)
    assert proc.returncode == 1 and "bad.docx" in proc.stdout


def test_index_dir_from_env(cli_index, tmp_path):
    """Without --index-dir, PARTYQA_INDEX_DIR names the index: reads come from it and writes go to it (run from an
    empty folder, so the default ./index cannot answer instead)."""
    index, corpus = cli_index
    env = {**os.environ, "PARTYQA_INDEX_DIR": str(index), "HF_HUB_OFFLINE": "1"}
    work = tmp_path / "elsewhere"
    work.mkdir()

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN), "-q", *args], capture_output=True, text=True, env=env, cwd=work, timeout=300)

    proc = cli("docs", "--json")
    assert proc.returncode == 0, proc.stderr
    assert {d["doc_id"] for d in json.loads(proc.stdout)} == {p.name for p in corpus.iterdir()}
    note = tmp_path / "环境变量测试.txt"
    note.write_text("环境变量测试\n\n紫荆花学习小组每周四下午集中学习一次。", "utf-8")
    proc = cli("add", str(note), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["added"] == [note.name], proc.stderr
    try:
        assert note.name in {d["doc_id"] for d in json.loads(run("docs", "--json", index=index).stdout)}
        assert not list(work.iterdir()), "nothing was written to the default ./index"
        # --index-dir wins over the variable
        other = tmp_path / "other-index"
        proc = cli("--index-dir", str(other), "docs")
        assert proc.returncode == 2 and "no index" in proc.stderr
    finally:
        run("remove", note.name, index=index)


def test_global_options_after_the_command_and_missing_index(cli_index, tmp_path):
    index, _ = cli_index
    data = json.loads(run("ask", "党支部怎样做好监督者", "--json", "--index-dir", str(index), "-k", "1").stdout)
    assert len(data["results"]) == 1
    missing = tmp_path / "no-index-here"
    proc = run("ask", "党支部", index=missing, check=False)
    assert proc.returncode == 2 and "no index" in proc.stderr and "partyqa" in proc.stderr
    assert not missing.exists(), "a read command must not create an empty index"
