"""End to end in a real headless Chromium: search, open the source passage, upload a document, find it.

Needs Debian's ``chromium`` and ``chromium-driver`` (``bash tests/ensure_browser.sh`` installs them as root);
skips with a message when no browser is available. Screenshots go to tests/artifacts/ (git-ignored).
"""
from __future__ import annotations

import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from indexer import Config, Engine
from webui import serve

pytestmark = pytest.mark.browser

from conftest import ROOT, SEED
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
DRIVER_CANDIDATES = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]

UPLOAD_TEXT = """西柏坡主题教育活动记录

本支部于今年春季组织全体党员赴西柏坡纪念馆开展“赶考”精神主题教育，重温入党誓词，撰写心得体会十二篇。

活动结束后，支部书记以“永远在赶考路上”为题讲了专题党课。
"""


def _find(candidates: list[str], name: str) -> str | None:
    for c in candidates:
        if Path(c).is_file():
            return c
    return shutil.which(name)


def _browser() -> tuple[str, str]:
    chromium = _find(CHROMIUM_CANDIDATES, "chromium")
    driver = _find(DRIVER_CANDIDATES, "chromedriver")
    if not chromium or not driver:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver "
                    "(run `bash tests/ensure_browser.sh` as root) to run the end-to-end browser test")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    return chromium, driver


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """The real app served by waitress on a free 127.0.0.1 port, over a real index of the seed essay."""
    base = tmp_path_factory.mktemp("browser")
    corpus = base / "corpus"
    corpus.mkdir()
    shutil.copy(SEED, corpus / SEED.name)
    eng = Engine.open(base / "index", Config())
    report = eng.index(corpus)
    assert report.added == [SEED.name], report.to_dict()
    servers: list = []
    ready = threading.Event()

    def on_ready(server):
        servers.append(server)
        ready.set()

    thread = threading.Thread(target=serve, args=(eng, "127.0.0.1", 0),
                              kwargs={"threads": 4, "warm_up": True, "on_ready": on_ready}, daemon=True)
    thread.start()
    assert ready.wait(60), "the server did not start"
    server = servers[0]
    yield f"http://127.0.0.1:{server.effective_port}", eng, base
    server.close()
    thread.join(10)
    eng.close()


@pytest.fixture()
def driver(tmp_path):
    chromium, chromedriver = _browser()
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,900", "--lang=zh-CN", f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        drv = webdriver.Chrome(service=Service(chromedriver), options=opts)
    except WebDriverException as exc:
        pytest.skip(f"chromium is installed but could not start headless: {exc.msg or exc}")
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _shot(drv, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    drv.save_screenshot(str(path))
    return path


def _console_errors(drv) -> list[str]:
    try:
        logs = drv.get_log("browser")
    except Exception:  # not every driver exposes logs
        return []
    return [entry["message"] for entry in logs if entry.get("level") == "SEVERE"]


def test_search_view_upload_and_find(live_server, driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    base, engine, _ = live_server
    wait = WebDriverWait(driver, 90)

    # 1. the home page: type a question about the seed essay and press Enter
    driver.get(base + "/")
    box = wait.until(EC.presence_of_element_located((By.ID, "q")))
    assert driver.find_elements(By.CSS_SELECTOR, "#examples a"), "example questions missing on the empty page"
    _shot(driver, "01-home.png")
    box.send_keys("党支部怎样当好监督者")
    box.send_keys(Keys.ENTER)
    wait.until(EC.presence_of_element_located((By.ID, "results")))
    assert "q=" in driver.current_url and "mode=hybrid" in driver.current_url  # a shareable URL
    titles = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".result-title")]
    assert titles and titles[0] == "基层党支部工作论文", titles
    first = driver.find_element(By.CSS_SELECTOR, ".result")
    assert first.find_elements(By.CSS_SELECTOR, "mark"), "matched terms are not highlighted"
    assert first.find_elements(By.CSS_SELECTOR, "strong.answer"), "the answer sentence is not emphasised"
    assert "监督" in first.find_element(By.CSS_SELECTOR, ".passage").text
    assert "关键词" in first.find_element(By.CSS_SELECTOR, ".ranks").text
    _shot(driver, "02-results.png")

    # 2. click 查看原文: the document view opens scrolled to the passage, which is highlighted
    link = first.find_element(By.CSS_SELECTOR, "a.view-source")
    assert link.text.startswith("查看原文")
    link.click()
    wait.until(EC.presence_of_element_located((By.ID, "document")))
    fragment = urlsplit(driver.current_url).fragment
    assert fragment.startswith("p-"), driver.current_url
    assert unquote(urlsplit(driver.current_url).path) == "/doc/基层党支部工作论文.txt"
    chosen = driver.find_element(By.CSS_SELECTOR, ".doc-passage.chosen")
    assert chosen.get_attribute("id") == fragment
    assert "监督" in chosen.text
    background = chosen.value_of_css_property("background-color")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent"), background
    wait.until(lambda d: d.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return r.top >= 0 && r.top < window.innerHeight;", chosen))
    assert driver.find_elements(By.CSS_SELECTOR, "h2.doc-heading"), "section headings are not rendered as headings"
    _shot(driver, "03-document.png")

    # 3. the documents page: upload a new .txt and wait for its per-file result
    driver.find_element(By.LINK_TEXT, "文档管理").click()
    wait.until(EC.presence_of_element_located((By.ID, "upload-form")))
    assert "基层党支部工作论文.txt" in driver.find_element(By.ID, "doc-table").text
    upload = tmp_path / "西柏坡主题教育.txt"
    upload.write_text(UPLOAD_TEXT, encoding="utf-8")
    driver.find_element(By.ID, "files").send_keys(str(upload))
    driver.find_element(By.ID, "upload-btn").click()
    result = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#upload-results .upload-result")))
    assert "已添加" in result.text and "西柏坡主题教育.txt" in result.text, result.text
    wait.until(EC.text_to_be_present_in_element((By.ID, "doc-table"), "西柏坡主题教育活动记录"))
    assert "西柏坡主题教育.txt" in {d["doc_id"] for d in engine.documents()}
    _shot(driver, "04-upload.png")

    # 4. search for the uploaded content and find it
    driver.find_element(By.LINK_TEXT, "搜索").click()
    box = wait.until(EC.presence_of_element_located((By.ID, "q")))
    box.send_keys("西柏坡赶考精神主题教育")
    box.send_keys(Keys.ENTER)
    wait.until(EC.presence_of_element_located((By.ID, "results")))
    titles = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".result-title")]
    assert titles[0] == "西柏坡主题教育活动记录", titles
    assert "西柏坡" in driver.find_element(By.CSS_SELECTOR, ".result .passage").text
    _shot(driver, "05-search-uploaded.png")

    # 5. the same results on a phone-sized screen
    driver.set_window_size(412, 900)
    driver.refresh()
    wait.until(EC.presence_of_element_located((By.ID, "results")))
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    _shot(driver, "06-mobile.png")

    # 6. delete the uploaded document from the documents page (confirm dialog, DELETE request, row removed)
    driver.set_window_size(1280, 900)
    driver.get(base + "/documents")
    row = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-doc-id="西柏坡主题教育.txt"]')))
    row.find_element(By.CSS_SELECTOR, ".delete-btn").click()
    wait.until(EC.alert_is_present())
    driver.switch_to.alert.accept()
    wait.until(EC.text_to_be_present_in_element((By.ID, "doc-status"), "已删除"))
    assert "西柏坡主题教育活动记录" not in driver.find_element(By.ID, "doc-table").text
    assert "西柏坡主题教育.txt" not in {d["doc_id"] for d in engine.documents()}

    assert not _console_errors(driver), _console_errors(driver)
