"""Keyword half: jieba analysis with the party-building dictionary, and the whoosh BM25F passage index."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import pytest
import whoosh.index

from indexer.backends.local.keyword import WhooshKeywordIndex, build_query, make_weighting
from indexer.backends.local.postings import PostingsCache
from indexer.text.analyzer import (
    STOPWORDS_PATH,
    SUBWORD_WEIGHT,
    USERDICT_PATH,
    ChineseAnalyzer,
    query_terms,
    stopwords,
    tokenize,
    weighted_query_terms,
)
from indexer.types import IndexLockedError, Passage

from conftest import ROOT, SEED
SEED_TITLE = "基层党支部工作论文"


def seed_paragraphs() -> list[str]:
    """The seed essay's paragraphs: the raw file split at blank lines (boilerplate included)."""
    raw = SEED.read_text(encoding="utf-8")
    return [p.strip() for p in re.split(r"\n\s*\n", raw) if p.strip()]


def seed_passages(doc_id: str = "seed") -> list[Passage]:
    """One Passage per seed paragraph, with real offsets into the raw text."""
    raw = SEED.read_text(encoding="utf-8")
    out, pos = [], 0
    for i, para in enumerate(seed_paragraphs()):
        start = raw.index(para, pos)
        pos = start + len(para)
        out.append(Passage(doc_id=doc_id, title=SEED_TITLE, section="", text=para, start=start, end=pos, ordinal=i))
    return out


@pytest.fixture(scope="module")
def seed_index(tmp_path_factory):
    """A keyword index over the ~30 seed paragraphs (read-only in tests)."""
    ix = WhooshKeywordIndex.create(tmp_path_factory.mktemp("kw") / "keyword")
    ix.add(seed_passages())
    yield ix
    ix.close()


@pytest.fixture(scope="module")
def seed_text() -> dict[str, str]:
    """pid -> paragraph text."""
    return {p.pid: p.text for p in seed_passages()}


# --- analysis -------------------------------------------------------------------------------


def test_dictionary_terms_stay_whole():
    tokens = tokenize("三会一课制度和主题党日活动")
    assert "三会一课" in tokens and "主题党日" in tokens
    sentences = {
        "民主集中制": "党支部必须坚持民主集中制原则",
        "组织生活会": "党支部每年至少召开一次组织生活会",
        "入党积极分子": "党支部要做好入党积极分子的培养工作",
        "预备党员": "预备党员的预备期为一年",
        "八项规定": "党员干部要严格落实八项规定",
    }
    for term, sentence in sentences.items():
        assert term in tokenize(sentence), (term, tokenize(sentence))


def test_long_terms_also_yield_their_dictionary_subwords():
    tokens = tokenize("严格遵守中央八项规定精神")
    # the whole term, and the shorter terms inside it, so a query for either finds the passage
    for t in ("中央八项规定精神", "八项规定", "中央", "规定", "精神"):
        assert t in tokens, (t, tokens)


def test_userdict_is_a_real_list_of_whole_terms():
    lines = [l for l in USERDICT_PATH.read_text(encoding="utf-8").splitlines() if l.strip()]
    assert len(lines) >= 300
    words = []
    for line in lines:
        word, freq, tag = line.split()
        assert len(word) >= 2 and int(freq) > 0 and tag.isalpha(), line
        words.append(word)
    assert len(set(words)) == len(words), "duplicate entries in userdict.txt"
    for word in ("三会一课", "两个维护", "留党察看", "全面从严治党", "党支部标准化规范化建设", "谈心谈话"):
        assert word in words
    # every entry comes out whole, alone and inside a sentence
    for word in words:
        assert word in tokenize(word), word
        assert word in tokenize(f"我们要抓好{word}。"), word


def test_positions_monotonic_and_chars_exact():
    text = "坚持民主集中制，认真开展批评和自我批评。ABC 是 Party 的 Test。"
    tokens = [(t.text, t.pos, t.startchar, t.endchar) for t in ChineseAnalyzer()(text, positions=True, chars=True)]
    assert len(tokens) > 8
    positions = [p for _, p, _, _ in tokens]
    assert positions == sorted(set(positions)), "positions must strictly increase"
    starts = [s for _, _, s, _ in tokens]
    assert starts == sorted(starts), "start offsets must not decrease"
    for word, _, start, end in tokens:
        assert text[start:end].lower() == word
    # offsets shift with start_char (whoosh uses this for multi-valued fields)
    shifted = [(t.text, t.startchar) for t in ChineseAnalyzer()(text, chars=True, start_char=5)]
    assert shifted == [(w, s + 5) for w, _, s, _ in tokens]


def test_stopwords_dropped_and_latin_lowercased():
    tokens = tokenize("党支部是在党的基层组织中的战斗堡垒，What is the PARTY Branch?")
    for stop in ("是", "在", "的", "中", "，", "?", "is", "the", "what"):
        assert stop not in tokens
    for kept in ("党支部", "党", "战斗堡垒", "party", "branch"):
        assert kept in tokens
    assert all(t == t.lower() for t in tokens)
    # full-width Latin is folded to ASCII
    assert "abc123" in tokenize("ＡＢＣ１２３")


def test_stopword_list_keeps_content_words():
    stops = stopwords()
    assert len(stops) >= 300
    for function_word in ("的", "了", "是", "在", "和", "与", "及", "等", "什么", "怎么", "如何", "哪些", "吗", "呢", "吧", "是否", "多久", "几"):
        assert function_word in stops
    for content_word in ("党", "会", "年", "组织", "工作", "党员", "不得", "监督"):
        assert content_word not in stops
    assert STOPWORDS_PATH.is_file()


def test_subwords_of_a_query_word_weigh_less():
    weighted = weighted_query_terms("中国特色社会主义最本质的特征是什么？", 0.3)
    assert [t for t, _ in weighted] == query_terms("中国特色社会主义最本质的特征是什么？")
    w = dict(weighted)
    assert w["中国特色社会主义"] == w["本质"] == w["特征"] == 1.0
    assert w["社会主义"] == w["特色"] == w["中国"] == 0.3
    # a token that is a word in its own right somewhere in the question keeps the full weight
    w = dict(weighted_query_terms("社会主义 中国特色社会主义", 0.3))
    assert w["社会主义"] == 1.0 and w["特色"] == 0.3
    assert dict(weighted_query_terms("Party 党员", 0.3)) == {"party": 1.0, "党员": 1.0}


def test_query_terms_unique_in_order():
    terms = query_terms("党支部如何监督？党支部的监督是什么")
    assert terms[0] == "党支部"
    assert len(terms) == len(set(terms))
    assert "监督" in terms and "如何" not in terms and "？" not in terms and "是" not in terms
    assert query_terms("") == [] and query_terms("的了吗？！") == []


def test_no_jieba_analyse_import():
    code = (
        "import sys\n"
        "from indexer.backends.local.keyword import WhooshKeywordIndex\n"
        "from indexer.text.analyzer import tokenize\n"
        "tokenize('三会一课')\n"
        "assert 'jieba.analyse' not in sys.modules, 'jieba.analyse was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


# --- searching ------------------------------------------------------------------------------


def test_seed_question_finds_the_supervision_paragraph(seed_index, seed_text):
    assert seed_index.count() == len(seed_paragraphs()) >= 25
    hits = seed_index.search("基层党支部如何做好监督者", 5)
    assert hits and len(hits) <= 5
    top = hits[0]
    assert "监督者" in seed_text[top.pid]
    assert "监督者" in top.terms and "监督" in top.terms and "党支部" in top.terms
    assert all(t in query_terms("基层党支部如何做好监督者") for t in top.terms)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # every reported term really occurs in that passage (or its title)
    for h in hits:
        for t in h.terms:
            assert t in tokenize(seed_text[h.pid]) or t in tokenize(SEED_TITLE), (h.pid, t)


def test_other_seed_questions(seed_index, seed_text):
    top = seed_index.search("如何做好宣传者", 3)[0]
    assert "宣传者" in seed_text[top.pid]
    top = seed_index.search("《中国共产党纪律处分条例》", 3)[0]
    assert "纪律处分条例" in seed_text[top.pid] and "纪律处分条例" in top.terms
    assert seed_index.search("量子计算机芯片", 5) == []


def test_scores_equal_whoosh_own_bm25f_search(tmp_path):
    """The term-at-a-time scorer gives exactly whoosh's BM25F scores, also over several segments and deletions."""
    path = tmp_path / "kw"
    raw = _multi_segment_index(path)
    ix = WhooshKeywordIndex.open(path)
    assert len(raw.reader().leaf_readers()) >= 2
    for q in ("基层党支部如何做好监督者", "职工群众反映问题的渠道", "第二部分 文章", "民主集中制 纪律处分条例"):
        ours = ix.search(q, 1000)  # more than the passage count: no cut-off, so float-level ties cannot differ
        with raw.searcher(weighting=make_weighting()) as s:
            theirs = s.search(build_query(weighted_query_terms(q, SUBWORD_WEIGHT)), limit=1000, terms=True)
            expected = {h["pid"]: (h.score, {t.decode() for _, t in h.matched_terms()}) for h in theirs}
        assert ours and len(ours) == len(expected), q
        for h in ours:
            score, matched = expected[h.pid]
            assert h.score == pytest.approx(score, rel=1e-9), (q, h.pid)
            assert set(h.terms) == matched, (q, h.pid)
        assert [h.score for h in ours] == sorted((h.score for h in ours), reverse=True)
        assert ix.search(q, 7) == ours[:7]  # a short list is the head of the long one, ties included
        assert "a#16" not in [h.pid for h in ours]
    ix.close()


def _multi_segment_index(path):
    """The seed paragraphs in one segment, 15 more and 300 short ones in a second (postings of several blocks),
    and one deletion: whoosh's awkward cases."""
    ix = WhooshKeywordIndex.create(path)
    ix.add(seed_passages("a"))
    ix.close()
    raw = whoosh.index.open_dir(str(path))
    w = raw.writer()
    for p in seed_passages("b")[:15]:
        w.add_document(pid=p.pid, doc_id=p.doc_id, text=p.text, section="第二部分", title="另一篇文章")
    for i in range(300):
        w.add_document(pid=f"c#{i}", doc_id="c", text=f"党支部第{i}次会议" + "学习" * (i % 7), section="", title="会议")
    w.commit(merge=False)
    w = raw.writer()
    w.delete_by_term("pid", "a#16")
    w.delete_by_term("pid", "c#7")
    w.commit(merge=False)
    return raw


def test_postings_cache_equals_whoosh_matchers(tmp_path):
    """Block-wise numpy postings (ids, tf) and field lengths are exactly what whoosh's own API walks out."""
    raw = _multi_segment_index(tmp_path / "kw")
    reader = raw.reader()
    assert len(reader.leaf_readers()) >= 2 and any(seg.has_deletions() for seg, _ in reader.leaf_readers())
    cache = PostingsCache(reader)
    checked = 0
    for field in ("text", "section", "title"):
        lengths = cache.lengths(field)
        assert len(lengths) == reader.doc_count_all()
        for d in range(reader.doc_count_all()):
            assert lengths[d] == (reader.doc_field_length(d, field, 0) or 0)
        for term in [t.decode() for t in reader.lexicon(field)]:
            ids, tf = cache.postings(field, term)
            m = reader.postings(field, term)
            expected = []
            while m.is_active():
                expected.append((m.id(), m.weight()))
                m.next()
            assert [(int(i), float(w)) for i, w in zip(ids, tf)] == expected, (field, term)
            checked += len(expected)
    assert checked > 1000
    assert len(cache.postings("text", "党支部")[0]) > 300  # several 128-posting blocks, one of them with a deletion
    assert cache.postings("text", "不存在的词语")[0].size == 0
    reader.close()


def test_postings_cache_stays_within_its_bound(tmp_path):
    raw = _multi_segment_index(tmp_path / "kw")
    reader = raw.reader()
    cache = PostingsCache(reader, max_postings=50)
    terms = [t.decode() for t in reader.lexicon("text")]
    for term in terms:
        cache.postings("text", term)
        assert cache.cache.size <= 50 or len(cache.cache.entries) == 1
    assert 0 < len(cache.cache.entries) < len(terms)
    reader.close()


def test_unwatched_index_sees_other_commits_only_on_refresh(tmp_path):
    path = tmp_path / "kw"
    with WhooshKeywordIndex.create(path) as ix:
        ix.add(seed_passages("a"))
    watched, frozen = WhooshKeywordIndex.open(path), WhooshKeywordIndex.open(path, watch=False)
    before = frozen.search("红旗渠精神", 5)
    with WhooshKeywordIndex.open(path) as writer:
        writer.add([Passage("c", "党史", "", "学习红旗渠精神专题党课", 0, 11, 0)])
    assert watched.search("红旗渠精神", 5)[0].pid == "c#0"
    assert frozen.search("红旗渠精神", 5) == before  # a committed generation never changes: no per-query check
    assert frozen.refresh() and frozen.search("红旗渠精神", 5)[0].pid == "c#0"
    watched.close()
    frozen.close()


# whoosh query syntax typed by a user -> the plain words it must mean (written by hand: every operator character is
# text, i.e. a separator; AND / OR / NOT / TO are English stop words, not operators). "" means: nothing to search.
QUERY_SYNTAX = {"AND": "", "OR NOT": "", "(": "", ")": "", "*": "", "党支部 AND (": "党支部", "title:党": "title 党",
                '"未闭合': "未闭合", "~2": "2", "^": "", "[1 TO": "1", "党员*": "党员", "": "", "{": "", "}": "",
                "+-": "", "?": "", ":": "", "党支部^3": "党支部 3", "监督~": "监督", "NOT 监督": "监督",
                "pid:seed#1": "pid seed 1", "doc_id:*": "doc_id"}


@pytest.mark.parametrize("question", list(QUERY_SYNTAX))
def test_query_syntax_is_plain_text(seed_index, seed_text, question):
    hits = seed_index.search(question, 5)
    plain = QUERY_SYNTAX[question]
    assert [h.pid for h in hits] == [h.pid for h in seed_index.search(plain, 5)], (question, plain)
    cjk = [w for w in plain.split() if not w.isascii()]
    if cjk and all(w in "".join(seed_text.values()) for w in cjk):
        # the words are really searched: the best passage holds them (in its title or its text)
        assert hits and all(w in SEED_TITLE + seed_text[hits[0].pid] for w in cjk), (question, hits[:1])
    elif cjk:  # words that no paragraph holds find nothing
        assert hits == [], (question, hits[:1])
    if not plain:
        assert hits == []


def test_operators_do_not_change_meaning(seed_index):
    plain = seed_index.search("党支部 监督", 5)
    assert plain
    for q in ("党支部 AND 监督", "党支部 OR 监督", "(党支部) +监督", '"党支部" 监督*'):
        assert [h.pid for h in seed_index.search(q, 5)] == [h.pid for h in plain], q
    # NOT is a stopword, not negation: passages with 监督 still come first
    assert seed_index.search("党支部 NOT 监督", 1)[0].pid == plain[0].pid
    # field syntax is text: "title:党" searches the words, not the title field only
    assert seed_index.search("title:党", 3) == seed_index.search("title 党", 3)


def test_limit_and_empty(seed_index):
    assert seed_index.search("党支部", 0) == []
    assert len(seed_index.search("党支部", 2)) == 2
    assert seed_index.search("", 5) == [] and seed_index.search("的 是 在", 5) == []


# --- writing --------------------------------------------------------------------------------


def test_add_replaces_same_pid_and_delete_docs(tmp_path):
    ix = WhooshKeywordIndex.create(tmp_path / "kw")
    seed = seed_passages("seed")
    ix.add(seed)
    n = len(seed)
    assert ix.count() == n
    # re-adding the same passages does not duplicate them
    ix.add(seed[:5])
    assert ix.count() == n
    # a replaced passage is found by its new text, no longer by its old text
    old = seed[5]
    assert "宣传者" in old.text and "宣传者" in ix.search("宣传者", 1)[0].terms
    new = Passage(old.doc_id, old.title, old.section, "红旗渠精神教育专题党课安排", old.start, old.end, old.ordinal)
    ix.add([new, new])  # a repeated pid inside one batch is indexed once
    assert ix.count() == n
    hits = ix.search("红旗渠精神", 5)
    assert hits[0].pid == old.pid and "红旗渠" in hits[0].terms
    assert all("宣传者" not in h.terms for h in ix.search("宣传者", 30))
    # a second document, then delete the first
    other = [Passage("other", "党费工作", "一、党费收缴", "党员应当按月交纳党费。", 0, 11, 0)]
    ix.add(other)
    assert ix.count() == n + 1
    assert ix.doc_ids() == {"seed", "other"}
    ix.delete_docs(["seed", "no-such-doc"])
    assert ix.count() == 1 and ix.doc_ids() == {"other"}
    assert ix.search("基层党支部如何做好监督者", 5) == []
    hit = ix.search("党费收缴", 5)[0]
    assert hit.pid == "other#0" and {"党费", "收缴"} <= set(hit.terms)
    ix.delete_docs([])
    ix.close()
    # the index persists and reopens with its pickled analyzer
    again = WhooshKeywordIndex.open(tmp_path / "kw")
    assert again.count() == 1 and again.search("交纳党费", 1)[0].pid == "other#0"
    again.close()


def test_open_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no keyword index"):
        WhooshKeywordIndex.open(tmp_path / "nothing")


def test_closed_index_refuses_use(tmp_path):
    ix = WhooshKeywordIndex.create(tmp_path / "kw")
    ix.close()
    ix.close()
    with pytest.raises(RuntimeError, match="closed"):
        ix.search("党支部", 3)


@pytest.mark.timeout(60)
def test_lock_timeout_raises_index_locked(tmp_path):
    path = tmp_path / "kw"
    WhooshKeywordIndex.create(path).close()
    ix = WhooshKeywordIndex.open(path, lock_timeout=0.5)
    holder = whoosh.index.open_dir(str(path)).writer()  # another writer holds the lock
    try:
        with pytest.raises(IndexLockedError, match="locked by another writer"):
            ix.add(seed_passages()[:3])
        with pytest.raises(IndexLockedError):
            ix.delete_docs(["seed"])
        # a failed add leaves readers usable
        assert ix.count() == 0
    finally:
        holder.cancel()
    ix.add(seed_passages()[:3])  # the lock is free again
    assert ix.count() == 3
    ix.close()


@pytest.mark.timeout(300)
def test_reader_keeps_working_while_another_instance_commits(tmp_path):
    path = tmp_path / "kw"
    base = seed_passages("base")
    with WhooshKeywordIndex.create(path) as first:
        first.add(base)
    reader = WhooshKeywordIndex.open(path)
    writer = WhooshKeywordIndex.open(path)
    before = reader.search("基层党支部如何做好监督者", 3)
    assert before

    started, errors, seen = threading.Event(), [], []

    def write() -> None:
        try:
            started.wait(300)
            for i in range(6):
                writer.add(seed_passages(f"extra{i}"))
            writer.delete_docs(["extra0"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    deadline = time.monotonic() + 240
    while thread.is_alive() or not seen:
        assert time.monotonic() < deadline, "the writing thread did not finish its 7 commits within 240 s"
        hits = reader.search("基层党支部如何做好监督者", 3)
        seen.append((reader.count(), hits))
        started.set()
    thread.join()
    assert not errors
    for c, hits in seen:
        # every commit is atomic: a reader sees whole batches only, never a half-written one
        assert c % len(base) == 0 and 1 <= c // len(base) <= 7
        assert hits and all(h.pid.startswith(("base#", "extra")) for h in hits)
    # the open reader sees the final state once it is refreshed (search/count refresh automatically)
    assert reader.count() == len(base) * 6
    assert writer.count() == len(base) * 6
    reader.close()
    writer.close()


def _real_passages() -> list[Passage]:
    """The seed essay, the party rules and six regulation files of party-docs, split as the engine splits them."""
    from indexer.ingest import files as ingest
    from indexer.ingest.prepare import prepare

    from conftest import require_party_docs

    docs = require_party_docs()
    files = [(SEED, SEED.name), (docs / "partymate" / "party_rules.md", "partymate/party_rules.md")]
    files += [(p, f"xtjeyvc-dangfa/{p.name}") for p in sorted((docs / "xtjeyvc-dangfa").glob("dangfa00*.md"))[:6]]
    return [p for path, doc_id in files for raw in ingest.load_file(path, doc_id=doc_id) for p in prepare(raw)[1]]


def test_fast_scores_equal_whoosh_on_real_documents(tmp_path):
    """On real documents (seed + party docs, two commits and a deleted document), the cached per-term scores give
    exactly the passages, scores and matched terms of whoosh's own BM25F search -- warmed or not."""
    import json

    passages = _real_passages()
    half = len(passages) // 2
    path = tmp_path / "kw"
    with WhooshKeywordIndex.create(path) as ix:
        ix.add(passages[:half])
        ix.add(passages[half:])  # a second segment
        ix.delete_docs(["partymate/party_rules.md"])
    warm, cold = WhooshKeywordIndex.open(path, watch=False), WhooshKeywordIndex.open(path, watch=False, share=False)
    warm.warm_up(share=1.0, min_postings=1).join()
    assert warm._state._terms.size > 0
    raw = whoosh.index.open_dir(str(path))
    lines = (ROOT / "bench" / "dev_questions.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in lines[::6]]
    with raw.searcher(weighting=make_weighting()) as s:
        for q in questions:
            terms = weighted_query_terms(q, SUBWORD_WEIGHT)
            theirs = s.search(build_query(terms), limit=None, terms=True)
            expected = {h["pid"]: (h.score, {t.decode() for _, t in h.matched_terms()}) for h in theirs}
            ours = cold.search(q, 5000)
            assert len(ours) == len(expected) > 0, q
            for h in ours:
                score, matched = expected[h.pid]
                assert h.score == pytest.approx(score, rel=1e-9), (q, h.pid)
                assert set(h.terms) == matched, (q, h.pid)
            assert warm.search(q, 5000) == ours
            assert not any(h.pid.startswith("partymate/") for h in ours)
    raw.close()
    warm.close()
    cold.close()


def test_concurrent_searches_agree_with_serial_ones(tmp_path):
    """Questions from several threads at once (no lock around the whole search) return what one thread gets."""
    raw = _multi_segment_index(tmp_path / "kw")
    raw.close()
    questions = ["基层党支部如何做好监督者", "职工群众反映问题的渠道", "党支部会议学习", "民主集中制", "第二部分 文章"]
    expected = {q: WhooshKeywordIndex.open(tmp_path / "kw").search(q, 20) for q in questions}
    ix = WhooshKeywordIndex.open(tmp_path / "kw", watch=False)
    errors, results = [], []

    def client(i: int) -> None:
        try:
            for n in range(40):
                q = questions[(i + n) % len(questions)]
                results.append((q, ix.search(q, 20)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 240
    assert all(hits == expected[q] for q, hits in results)
    ix.close()


def test_warmed_scores_are_saved_and_loaded_by_a_restart(tmp_path, monkeypatch):
    """Warm-up with a folder saves the scores of exactly this index; reopening the unchanged index loads them
    (no decoding, same results); after a commit the index's identity changes and old scores are never used."""
    path, saved = tmp_path / "kw", tmp_path / "warm"
    _multi_segment_index(path).close()
    questions = ["基层党支部如何做好监督者", "党支部会议学习", "第二部分 文章"]
    cold = WhooshKeywordIndex.open(path, watch=False, share=False)
    expected = {q: cold.search(q, 30) for q in questions}
    first = WhooshKeywordIndex.open(path, watch=False)
    first.warm_up(share=1.0, min_postings=2, persist=saved).join()
    key = first._state.identity()
    assert (saved / key / "scores.npy").is_file()
    restarted = WhooshKeywordIndex.open(path, watch=False, share=False)  # as in a new process
    def no_decoding(*args):
        raise AssertionError("loading saved scores must not decode postings")

    monkeypatch.setattr(PostingsCache, "read", no_decoding)
    assert restarted._state.warm(1.0, 2, saved) == first._state.warm(1.0, 2, saved) > 0
    monkeypatch.undo()
    assert {q: restarted.search(q, 30) for q in questions} == expected
    with WhooshKeywordIndex.open(path) as writer:
        writer.add([Passage("z", "党史", "", "党支部会议学习红旗渠精神", 0, 11, 0)])
    changed = WhooshKeywordIndex.open(path, watch=False)
    assert changed._state.identity() != key
    changed.warm_up(share=1.0, min_postings=2, persist=saved).join()
    assert [p.name for p in saved.iterdir() if not p.name.startswith(".")] == [changed._state.identity()]
    fresh = WhooshKeywordIndex.open(path, watch=False, share=False)
    assert {q: changed.search(q, 30) for q in questions} == {q: fresh.search(q, 30) for q in questions}
    for ix in (cold, first, restarted, changed, fresh):
        ix.close()


def test_readers_of_one_index_state_share_scores(tmp_path, monkeypatch):
    """A second reader of the same, unchanged index (the next generation after a commit that only wrote vectors)
    answers from the first reader's scores without decoding anything; a cold reader gets the same hits."""
    import shutil

    path = tmp_path / "kw"
    _multi_segment_index(path).close()
    questions = ["基层党支部如何做好监督者", "党支部会议学习", "第二部分 文章"]
    first = WhooshKeywordIndex.open(path, watch=False)
    expected = {q: first.search(q, 30) for q in questions}
    copy = tmp_path / "gen-next"
    shutil.copytree(path, copy)  # what a vector-only commit's generation holds: the same whoosh files
    monkeypatch.setattr(PostingsCache, "read", lambda *a: (_ for _ in ()).throw(AssertionError("decoded")))
    second = WhooshKeywordIndex.open(copy, watch=False)
    assert second._state.identity() == first._state.identity()
    assert {q: second.search(q, 30) for q in questions} == expected
    monkeypatch.undo()
    cold = WhooshKeywordIndex.open(copy, watch=False, share=False)
    assert {q: cold.search(q, 30) for q in questions} == expected
    for ix in (first, second, cold):
        ix.close()


def test_after_a_write_only_new_segments_are_decoded_and_scores_stay_exact(tmp_path, monkeypatch):
    """After a commit that adds a segment and deletes a passage, the next reader re-scores the previous reader's
    terms (in the background) decoding only the new segment; its hits equal a cold reader's, exactly."""
    import indexer.backends.local.postings as postings_mod

    path = tmp_path / "kw"
    _multi_segment_index(path).close()
    questions = ["基层党支部如何做好监督者", "党支部会议学习", "第二部分 文章", "职工群众反映问题的渠道"]
    before = WhooshKeywordIndex.open(path, watch=False)
    assert before.hot_terms() == [] and before._st is None  # asking opens no searcher
    for q in questions:
        before.search(q, 30)
    hot = before.hot_terms()
    assert hot and set(weighted_query_terms(questions[-1], SUBWORD_WEIGHT)[0][:1]) <= set(hot)
    old_segments = {seg._segment.segment_id() for seg, _ in before._state.reader.leaf_readers()}
    with WhooshKeywordIndex.open(path) as writer:
        writer.add([Passage("z", "新增", "", "党支部会议学习红旗渠精神，职工群众反映问题", 0, 20, 0)])
        writer.delete_docs(["c"])
    decoded: list[str] = []
    real = postings_mod._read_matcher

    def counting(m):
        decoded.append(m.__class__.__name__)
        return real(m)

    monkeypatch.setattr(postings_mod, "_read_matcher", counting)
    after = WhooshKeywordIndex.open(path, watch=False)
    new_segments = {seg._segment.segment_id() for seg, _ in after._state.reader.leaf_readers()} - old_segments
    assert new_segments, "the write made a segment"
    assert after.warm_terms(hot).join(300) is None and after._state.cached_terms()
    assert set(after._state.cached_terms()) == set(hot)
    # each hot term decoded at most once per field, and only in the new segment(s)
    assert 0 < len(decoded) <= 3 * len(hot) * len(new_segments)
    monkeypatch.undo()
    cold = WhooshKeywordIndex.open(path, watch=False, share=False)
    for q in questions:
        ours = after.search(q, 50)
        assert ours == cold.search(q, 50), q
        assert not any(h.pid.startswith("c#") for h in ours)
    assert any(h.pid == "z#0" for h in after.search("红旗渠精神", 5))
    for ix in (before, after, cold):
        ix.close()


def test_term_cache_grows_with_the_index(tmp_path, monkeypatch):
    """The score cache (and the shared segment cache) hold a number of postings proportional to the index, so the
    frequent terms of a large index do not evict each other (at 1M passages a fixed 4M-posting cache held ~160)."""
    import indexer.backends.local.scores as scores
    from indexer.backends.local.postings import segment_postings

    _multi_segment_index(tmp_path / "kw").close()
    ix = WhooshKeywordIndex.open(tmp_path / "kw", watch=False, share=False)
    n = ix._state.doc_count_all
    assert ix._state._terms.max_items == scores.TERM_CACHE_POSTINGS  # a small index: the floor
    ix.close()
    monkeypatch.setattr(scores, "TERM_CACHE_PER_DOC", 2 * scores.TERM_CACHE_POSTINGS // n + 1)
    big = WhooshKeywordIndex.open(tmp_path / "kw", watch=False)
    bound = big._state._terms.max_items
    assert bound > 2 * scores.TERM_CACHE_POSTINGS
    big.search("党支部会议学习", 5)
    assert segment_postings().max_items >= bound
    big.close()


def test_a_warm_up_saved_under_a_smaller_cache_is_extended_and_replaced(tmp_path):
    """A saved warm-up made with a smaller budget (before the cache grew with the index) is loaded, the warm-up
    goes on from it, and the larger set replaces it; a set saved under the same budget is only loaded."""
    from indexer.backends.local.scores import _saved_budget

    path, saved = tmp_path / "kw", tmp_path / "warm"
    _multi_segment_index(path).close()
    small = WhooshKeywordIndex.open(path, watch=False, share=False)
    n_small = small._state.warm(0.0005, 2, saved)  # a budget of 2,000 postings: a few terms
    key = small._state.identity()
    assert n_small > 0 and _saved_budget(saved / key) == pytest.approx(0.0005 * small._state._terms.max_items)
    big = WhooshKeywordIndex.open(path, watch=False, share=False)
    n_big = big._state.warm(1.0, 2, saved)
    assert n_big > n_small and _saved_budget(saved / key) == big._state._terms.max_items
    again = WhooshKeywordIndex.open(path, watch=False, share=False)
    assert again._state.warm(1.0, 2, saved) == n_big  # loaded, nothing more to do
    assert [p.name for p in saved.iterdir() if not p.name.startswith(".")] == [key]
    for ix in (small, big, again):
        ix.close()


# --- whoosh segments read in place (indexer.backends.local.whoosh_views) ---------------------------

def test_view_reader_reads_like_bytesio():
    """The in-place reader answers every read / seek / tell as io.BytesIO over the same bytes."""
    import io
    import random

    from indexer.backends.local.whoosh_views import _ViewReader

    data = (bytes(random.Random(7).randrange(256) for _ in range(5000)) + b"x" * 10_000  # a line longer than a block
            + b"line one\nline two\n")
    ours, ref = _ViewReader(memoryview(data)), io.BytesIO(data)
    rnd = random.Random(11)
    for _ in range(2000):
        op = rnd.randrange(5)
        if op == 0:
            n = rnd.choice([-1, None, 0, 1, 7, 300, 9000])
            assert ours.read(n) == ref.read(n)
        elif op == 1:
            pos, whence = rnd.randrange(-50, 16_000), rnd.randrange(3)
            if whence == 0:
                pos = abs(pos)
            assert ours.seek(pos, whence) == ref.seek(pos, whence)
        elif op == 2:
            n = rnd.choice([-1, None, 3, 100, 9000])
            assert ours.readline(n) == ref.readline(n)
        else:
            assert ours.tell() == ref.tell()


def test_segment_files_are_read_from_the_mapping_not_copied(tmp_path):
    """A compound segment's files open as views of its mmap (no heap copy of the postings) and a search over them
    returns what whoosh's copying BufferFile returned."""
    import mmap

    from whoosh.filedb import compound, structfile

    from indexer.backends.local.whoosh_views import ViewFile

    path = tmp_path / "keyword"
    ix = WhooshKeywordIndex.create(path)
    ix.add(seed_passages())
    ix.close()
    raw = whoosh.index.open_dir(str(path))
    seg = raw._segments()[0]
    storage = seg.open_compound_file(raw.storage)
    assert isinstance(storage, compound.CompoundStorage) and storage.list()
    for name in storage.list():
        f = storage.open_file(name)
        assert isinstance(f, ViewFile), name
        assert isinstance(f.file._view.obj, mmap.mmap), name  # the view is of the mapping itself
        offset, length = storage.range(name)
        with open(path / seg.make_filename(".seg"), "rb") as whole:
            whole.seek(offset)
            assert f.read() == whole.read(length), name
    storage.close()
    raw.close()

    questions = ["基层党支部如何做好监督者", "如何做好宣传者", "职工群众的利益"]
    viewed = WhooshKeywordIndex.open(path)
    in_place = [[(h.pid, h.score) for h in viewed.search(q, 5)] for q in questions]
    viewed.close()
    compound.BufferFile = structfile.BufferFile  # whoosh's own, copying class
    try:
        copied = WhooshKeywordIndex.open(path)
        assert [[(h.pid, h.score) for h in copied.search(q, 5)] for q in questions] == in_place
        copied.close()
    finally:
        compound.BufferFile = ViewFile
    assert all(in_place)
