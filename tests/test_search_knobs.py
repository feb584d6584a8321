"""The retrieval-test knobs (issue 26 item 4) through the JSON API, the engine and the CLI, on a real index (keyword +
e5 vectors) of the seed essay and two small documents: ``semantic_weight`` sets the semantic share of hybrid fusion,
``min_confidence`` the answer threshold, for one search only."""
from __future__ import annotations

import json
import re
import threading

import pytest

from indexer import Config
from indexer.types import QueryError
from webui import create_app

from test_webui import RULES_ID, built  # noqa: F401  (the module's real index)

Q = "党支部怎样当好监督者"  # the essay answers it; the rules and the other document share some of its words
TOL = 2e-3  # hit scores are rounded to 6 places; a prose passage's noise factor may differ from 1 by < 0.001


@pytest.fixture()
def client(built):  # noqa: F811
    return create_app(built, Config()).test_client()


def _search(client, **params):
    resp = client.get("/api/search", query_string={"q": Q, "mode": "hybrid", "k": 10, **params})
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    return resp.get_json()


def _plain(hit) -> bool:
    """A hit whose score is the fusion alone: no bonus, demotion or reordering named in ``why``, both halves ran."""
    return not hit["why"] and hit.get("keyword_score") is not None and hit.get("semantic_score") is not None


@pytest.mark.parametrize("w", [0.0, 0.25, 0.9, 1.0])
def test_semantic_weight_is_the_share_each_hit_score_is_fused_with(client, w):
    body = _search(client, semantic_weight=w)
    assert body["semantic_share"] == w
    hits = body["results"]
    plain = [h for h in hits if _plain(h)]
    assert len(plain) >= 3, [h["why"] for h in hits]
    for h in plain:
        expected = (1 - w) * h["keyword_score"] + w * h["semantic_score"]
        assert h["score"] == pytest.approx(expected, abs=TOL), (h["pid"], h["score"], h["keyword_score"],
                                                                h["semantic_score"])
    # the plain hits stand in the order of that formula
    fused = [(1 - w) * h["keyword_score"] + w * h["semantic_score"] for h in plain]
    assert fused == sorted(fused, reverse=True)
    for h in hits:
        assert 0.0 <= h["keyword_score"] <= 1.0 and 0.0 <= h["semantic_score"] <= 1.0


def test_changing_the_weight_moves_hits_the_way_the_halves_say(client):
    keyword_only, semantic_only = _search(client, semantic_weight=0), _search(client, semantic_weight=1)
    kw_order = [h["pid"] for h in keyword_only["results"]]
    sem_order = [h["pid"] for h in semantic_only["results"]]
    assert kw_order != sem_order
    # weight 0: the keyword half alone orders the list (its best passage scores 1.0); weight 1: the semantic half
    assert keyword_only["results"][0]["keyword_score"] == pytest.approx(1.0)
    assert semantic_only["results"][0]["semantic_score"] == pytest.approx(1.0)
    ks = [h["keyword_score"] for h in keyword_only["results"] if not h["why"]]
    ss = [h["semantic_score"] for h in semantic_only["results"] if not h["why"]]
    assert ks == sorted(ks, reverse=True) and ss == sorted(ss, reverse=True)


def test_defaults_are_untouched_by_a_tried_weight_even_under_concurrent_searches(client, built):  # noqa: F811
    before = _search(client)
    assert before["min_confidence"] == Config().min_confidence
    assert before["semantic_share"] is not None and 0 < before["semantic_share"] < 1
    weights = [0.0, 0.1, 0.5, 0.95, 1.0] * 2
    seen: dict[int, float] = {}
    errors: list[BaseException] = []

    def one(i: int, w: float) -> None:
        try:
            c = create_app(built, Config()).test_client()
            seen[i] = _search(c, semantic_weight=w, min_confidence=w)["semantic_share"]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i, w)) for i, w in enumerate(weights)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert [seen[i] for i in range(len(weights))] == weights  # each search saw its own weight
    after = _search(client)
    assert [(h["pid"], h["score"]) for h in after["results"]] == [(h["pid"], h["score"]) for h in before["results"]]
    assert after["semantic_share"] == before["semantic_share"]
    cfg = built.config
    assert (cfg.alpha, cfg.search_alpha, cfg.min_confidence) == (Config().alpha, -1.0, Config().min_confidence)


def test_min_confidence_decides_answer_found_from_the_same_confidence(client):
    low, high = _search(client, min_confidence=0), _search(client, min_confidence=1)
    assert low["confidence"] == high["confidence"] and 0 < low["confidence"] < 1
    assert low["answer_found"] is True and high["answer_found"] is False
    assert (low["min_confidence"], high["min_confidence"]) == (0.0, 1.0)
    just_below = _search(client, min_confidence=max(0.0, low["confidence"] - 0.01))
    just_above = _search(client, min_confidence=min(1.0, low["confidence"] + 0.01))
    assert just_below["answer_found"] is True and just_above["answer_found"] is False


def test_post_and_batch_take_the_knobs(client):
    post = client.post("/api/search", json={"question": Q, "k": 10, "semantic_weight": 0.3, "min_confidence": 1})
    assert post.status_code == 200
    body = post.get_json()
    assert body["semantic_share"] == 0.3 and body["answer_found"] is False
    assert [h["pid"] for h in body["results"]] == [h["pid"] for h in _search(client, semantic_weight="0.3")["results"]]
    batch = client.post("/api/batch", json={"questions": [Q, "党费怎么交"], "k": 5, "semantic_weight": 0.6})
    assert batch.status_code == 200
    answers = batch.get_json()["answers"]
    assert [a["semantic_share"] for a in answers] == [0.6, 0.6]
    keyword = _search(client, mode="keyword", semantic_weight=0.6)
    assert keyword["semantic_share"] is None  # one half only: no fusion share
    assert all(h["semantic_score"] is None and h["keyword_score"] is not None for h in keyword["results"])


@pytest.mark.parametrize("name,value", [("semantic_weight", "abc"), ("semantic_weight", "1.5"),
                                        ("semantic_weight", "-0.1"), ("semantic_weight", "nan"),
                                        ("min_confidence", "2"), ("min_confidence", "百分之五十")])
def test_bad_knob_values_are_400_in_both_languages(client, name, value):
    resp = client.get("/api/search", query_string={"q": Q, name: value})
    assert resp.status_code == 400
    err = resp.get_json()["error"]
    assert err["code"] == f"bad_{name}"
    assert {"semantic_weight": "语义权重", "min_confidence": "置信阈值"}[name] in err["message_zh"]
    assert name in err["message_en"] and re.search(r"[\u4e00-\u9fff]", err["message_en"]) is None
    post = client.post("/api/search", json={"q": Q, name: True})
    assert post.status_code == 400 and post.get_json()["error"]["code"] == f"bad_{name}"
    batch = client.post("/api/batch", json={"questions": [Q], name: value})
    assert batch.status_code == 400 and batch.get_json()["error"]["code"] == f"bad_{name}"


def test_engine_refuses_bad_knobs_bilingually(built):  # noqa: F811
    for kwargs in ({"semantic_weight": 2}, {"min_confidence": -1}, {"semantic_weight": "0.5"}):
        with pytest.raises(QueryError) as err:
            built.search(Q, **kwargs)
        assert " / " in str(err.value) and re.search(r"[\u4e00-\u9fff]", str(err.value))


def test_page_with_a_bad_knob_says_so_in_chinese_and_searches_with_the_defaults(client):
    resp = client.get("/", query_string={"q": Q, "semantic_weight": "abc"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "语义权重必须是 0 到 1 之间的数" in html and "must be a number" not in html
    assert re.search(r'<li class="result[ "]', html)


def test_cli_ask_takes_the_knobs(built, capsys):  # noqa: F811
    from indexer.cli import main

    code = main(["--index-dir", str(built.root), "ask", Q, "--semantic-weight", "0.2", "--min-confidence", "1",
                 "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["semantic_share"] == 0.2 and out["answer_found"] is False
    assert main(["--index-dir", str(built.root), "ask", Q, "--semantic-weight", "3"]) != 0
    assert "semantic_weight" in capsys.readouterr().err


def test_the_api_and_page_report_the_threshold_the_engine_searched_with(built):  # noqa: F811
    """Issue 20, no stale copy of the config: an app built without a config of its own follows ``engine.config``
    set later, and every app reports the answer threshold the search used (not a copy taken at create_app)."""
    import dataclasses

    saved = built.config
    client = create_app(built).test_client()
    try:
        confidence = _search(client)["confidence"]
        for threshold, found in ((max(0.0, confidence - 0.01), True), (min(1.0, confidence + 0.01), False)):
            built.config = dataclasses.replace(saved, min_confidence=threshold)
            body = _search(client)
            assert (body["min_confidence"], body["answer_found"]) == (threshold, found)
            page = client.get("/", query_string={"q": Q}).get_data(as_text=True)
            assert ("未找到直接回答" in page) is not found
        other = _search(create_app(built, Config(min_confidence=0.05)).test_client())  # the app's own config
        assert (other["min_confidence"], other["answer_found"]) == (min(1.0, confidence + 0.01), False)
    finally:
        built.config = saved
