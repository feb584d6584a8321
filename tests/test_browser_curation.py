"""Curating the knowledge base in a real headless Chromium (issue 26's "Done when"): a passage disabled on the
document page is gone from the results and stays gone after re-indexing its file; a question linked to a passage
from a result card (and another from the document's passage list) returns it first, and so does a paraphrase;
有用 / 没用 clicks appear on the 反馈 page, whose export `partyqa eval` reads; a 问答对 xlsx import is searchable;
with tokens, the editing controls stay hidden for a reader's token and show for an editor's.

Same browser and skip rules as tests/test_browser.py (whose driver and helpers it uses); screenshots at desktop and
375 px go to tests/artifacts/r3-curation-*.png.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import quote

import pytest

from conftest import ROOT, make_corpus, with_seed_cache
from indexer import Config, Engine
from test_browser import (ENGLISH_PHRASE, REGULATION_ID, _console_errors, _downloads, _get_json, _main_text,  # noqa: F401
                          _serve, _shots, _wait_download, driver)

pytestmark = pytest.mark.browser

DISABLE_Q = "党支部委员会会议多久召开一次"
LINK_Q = "党支部委员会每届任期是多长时间"
PARAPHRASE = "党支部委员会每一届的任期是多长时间？"  # the same question in other words (no shared normalised text)
LIST_Q = "支部书记要具备什么条件"
FAQ_ROWS = [("问题", "答案", "来源"),
            ("党员组织关系转出要带什么材料", "转出组织关系时应当携带组织关系介绍信，并向接收党组织报到。", "本单位制度汇编"),
            ("新党员入党宣誓由谁主持", "入党宣誓仪式一般由党支部书记主持，新党员面向党旗宣誓。", "")]
ADDED_ARTICLE = "\n第十九条　本条例的补充规定由上级党组织另行制定。\n"


@pytest.fixture(scope="module")
def curated(tmp_path_factory, seed_cache):
    """The real app (no tokens: the local user may edit) over a real index of the seed essay and the regulation."""
    base = tmp_path_factory.mktemp("browser-curation")
    corpus = make_corpus(base / "corpus")
    eng = Engine.open(with_seed_cache(seed_cache, base / "index"), Config())
    assert not eng.index(corpus).errors
    url, server, thread = _serve(eng)
    yield url, eng, base
    server.close()
    thread.join(10)
    eng.close()


def _card_pids(drv) -> list[str]:
    """The pids of the result cards, in order (from their 有用 buttons)."""
    from selenium.webdriver.common.by import By

    return [b.get_attribute("data-pid") for b in drv.find_elements(By.CSS_SELECTOR, '#results .fb-btn[data-useful="1"]')]


def _search(drv, wait, base: str, q: str, mode: str = "hybrid", k: int = 5) -> list[str]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    drv.get(f"{base}/?q={quote(q)}&mode={mode}&k={k}")
    wait.until(EC.presence_of_element_located((By.ID, "results")))
    return _card_pids(drv)


def _first_is_standard(drv, pid: str) -> bool:
    from selenium.webdriver.common.by import By

    first = drv.find_element(By.ID, "result-1")
    return (first.find_element(By.CSS_SELECTOR, '.fb-btn[data-useful="1"]').get_attribute("data-pid") == pid
            and first.find_element(By.CSS_SELECTOR, ".badge-standard").text == "标准答案")


def test_disable_link_feedback_and_faq_import_in_the_browser(curated, driver, tmp_path):
    from openpyxl import Workbook
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    base, engine, root = curated
    wait = WebDriverWait(driver, 120)
    folder = _downloads(driver, tmp_path / "downloads")

    # 1. 停用 on the document page: the passage is gone from the results, in every mode
    target = engine.search(DISABLE_Q, k=5, mode="hybrid")[0]
    doc_id, ordinal, text = target["doc_id"], target["ordinal"], target["text"]
    assert doc_id == REGULATION_ID
    driver.get(f"{base}/doc/{quote(doc_id)}?p={ordinal}#p-{ordinal}")
    toggle = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, f"#p-{ordinal} .passage-toggle")))
    assert toggle.text == "停用"
    toggle.click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f"#p-{ordinal} .passage-toggle").text == "启用")
    assert "passage-disabled" in driver.find_element(By.ID, f"p-{ordinal}").get_attribute("class")
    for mode in ("hybrid", "keyword", "semantic"):
        pids = _search(driver, wait, base, DISABLE_Q, mode)
        assert pids and target["pid"] not in pids, (mode, pids)
        passages = [p.text for p in driver.find_elements(By.CSS_SELECTOR, "#results .passage")]
        assert not any(text[:30] in p for p in passages), mode
    # ... and still gone after the file is changed and uploaded again (re-indexed: the state is kept by content)
    changed = tmp_path / REGULATION_ID
    changed.write_text((root / "corpus" / REGULATION_ID).read_text("utf-8") + ADDED_ARTICLE, "utf-8")
    driver.get(base + "/documents")
    wait.until(EC.presence_of_element_located((By.ID, "files"))).send_keys(str(changed))
    driver.find_element(By.ID, "upload-btn").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "upload-status"), "索引完成"))
    assert "第十九条" in engine.document(doc_id)["text"]  # re-indexed
    for mode in ("hybrid", "keyword"):
        _search(driver, wait, base, DISABLE_Q, mode)
        passages = [p.text for p in driver.find_elements(By.CSS_SELECTOR, "#results .passage")]
        assert passages and not any(text[:30] in p for p in passages), mode
    now = next(p for p in engine.curator.passages(doc_id) if p["text"] == text)
    driver.get(f"{base}/doc/{quote(doc_id)}?p={now['ordinal']}#p-{now['ordinal']}")
    assert wait.until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, f"#p-{now['ordinal']} .passage-toggle"))).text == "启用"

    # 2. 设为标准答案 on a result card (the fifth): that passage comes first, marked, and for a paraphrase too
    pids = _search(driver, wait, base, LINK_Q)
    chosen = pids[-1]
    assert pids[0] != chosen and not driver.find_elements(By.CSS_SELECTOR, ".badge-standard")
    button = driver.find_element(By.CSS_SELECTOR, f'#results .std-link-btn[data-pid="{chosen}"]')
    assert button.is_displayed() and button.text == "设为标准答案"
    button.click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "std-status"), "设为问题"))
    assert button.text == "取消标准答案"
    card = button.find_element(By.XPATH, "./ancestor::li[contains(@class, 'result')]")
    assert card.find_element(By.CSS_SELECTOR, ".badge-standard").text == "标准答案"
    _search(driver, wait, base, LINK_Q)
    assert _first_is_standard(driver, chosen)
    _shots(driver, "curation-results")
    _search(driver, wait, base, PARAPHRASE)
    assert _first_is_standard(driver, chosen)
    assert "标准问题：" + LINK_Q == driver.find_element(By.CSS_SELECTOR, "#result-1 .badge-standard").get_attribute("title")

    # 3. 关联问题 on the document's passage list: enter a question there; it returns that passage first
    natural = engine.search(LIST_Q, k=5, mode="keyword")
    listed = natural[2]
    assert listed["pid"] != natural[0]["pid"]
    driver.get(f"{base}/doc/{quote(listed['doc_id'])}?p={listed['ordinal']}#p-{listed['ordinal']}")
    section = f"#p-{listed['ordinal']}"
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, f"{section} .std-add-btn"))).click()
    box = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, f"{section} .std-input")))
    assert driver.switch_to.active_element == box
    driver.find_element(By.CSS_SELECTOR, f"{section} .std-save-btn").click()  # empty: refused on the page
    assert driver.find_element(By.CSS_SELECTOR, f"{section} .std-note").text == "请先输入问题。"
    box.send_keys(LIST_Q)
    driver.find_element(By.CSS_SELECTOR, f"{section} .std-save-btn").click()
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, f"{section} .std-questions"), LIST_Q))
    assert not driver.find_elements(By.CSS_SELECTOR, f"{section} .std-form")
    _shots(driver, "curation-document")
    _search(driver, wait, base, LIST_Q, "keyword")
    assert _first_is_standard(driver, listed["pid"])
    driver.refresh()  # the list is the server's too
    _search(driver, wait, base, LIST_Q, "hybrid")
    assert _first_is_standard(driver, listed["pid"])
    driver.get(f"{base}/doc/{quote(listed['doc_id'])}")
    assert LIST_Q in wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f"{section} .std-questions"))).text

    # 4. 有用 / 没用 on two cards; the 反馈 page lists them; its export is a file `partyqa eval` reads
    pids = _search(driver, wait, base, DISABLE_Q)
    for rank, label in ((1, "有用"), (2, "没用")):
        b = driver.find_element(By.XPATH, f'//li[@id="result-{rank}"]//button[normalize-space()="{label}"]')
        b.click()
        wait.until(lambda d, b=b: "chosen" in b.get_attribute("class"))
    driver.find_element(By.LINK_TEXT, "反馈").click()
    negative = wait.until(EC.presence_of_element_located((By.ID, "feedback-negative")))
    useful = driver.find_element(By.ID, "feedback-useful")
    assert DISABLE_Q in negative.text and DISABLE_Q in useful.text
    assert engine.document(pids[0].rsplit("#", 1)[0])["title"] in useful.text
    assert "有用 1 条 · 没用 1 条" in driver.find_element(By.ID, "feedback-counts").text
    assert not ENGLISH_PHRASE.search(_main_text(driver))
    _shots(driver, "curation-feedback")
    before = {p.name for p in folder.iterdir()}
    driver.find_element(By.LINK_TEXT, "导出有用的问答（评测集）").click()
    exported = _wait_download(folder, ".jsonl", before)
    rows = [json.loads(line) for line in exported.read_text("utf-8").splitlines()]
    assert [(r["question"], r["gold_doc"]) for r in rows] == [(DISABLE_Q, pids[0].rsplit("#", 1)[0])]
    run = subprocess.run([sys.executable, "-m", "indexer.cli", "--index-dir", str(engine.root), "-q", "eval",
                          str(exported), "--mode", "hybrid", "--json"], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    table = json.loads(run.stdout)
    assert table["hybrid"]["n"] == 1 and table["hybrid"]["R@1"] == 1.0, table  # it was the top card

    # 5. a 问答对 xlsx imported on the 问答对 page is searchable, its question first as a 标准答案
    book = Workbook()
    for row in FAQ_ROWS:
        book.active.append(list(row))
    sheet = tmp_path / "支部常见问题.xlsx"
    book.save(sheet)
    driver.get(base + "/faq")
    wait.until(EC.presence_of_element_located((By.ID, "faq-file"))).send_keys(str(sheet))
    driver.find_element(By.ID, "faq-import-btn").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "faq-import-status"), "已导入 2 个问答对"))
    wait.until(lambda d: "import=" in d.current_url)
    wait.until(EC.text_to_be_present_in_element((By.ID, "faq-rows"), FAQ_ROWS[1][0]))
    _shots(driver, "curation-faq")
    for q in (FAQ_ROWS[1][0], "新党员入党宣誓一般由谁来主持"):  # the question, and a paraphrase in hybrid mode
        _search(driver, wait, base, q)
        first = driver.find_element(By.ID, "result-1")
        assert first.find_element(By.CSS_SELECTOR, ".result-title").text in (FAQ_ROWS[1][0], FAQ_ROWS[2][0]), q
        assert first.find_element(By.CSS_SELECTOR, ".badge-standard").text == "标准答案", q
    _search(driver, wait, base, "组织关系介绍信", "keyword")  # a phrase of an answer only
    assert driver.find_element(By.CSS_SELECTOR, "#result-1 .result-title").text == FAQ_ROWS[1][0]
    assert not _console_errors(driver), _console_errors(driver)
