/* PartyQA web UI: search options, copy citation, recent questions, document outline and find, upload, delete,
   and live index jobs (an indicator on every page, progress on the documents page).
   No external code; data is only ever set as text (never innerHTML). */
(function () {
  "use strict";

  var TOKEN_KEY = "partyqa-token";  // localStorage: one token for every page and tab, until 退出
  var RANK = { reader: 0, editor: 1, admin: 2 };
  var ROLE_NAMES = { reader: "读者", editor: "编辑", admin: "管理员" };
  var STATUS_LABELS = { added: "已添加", updated: "已更新", unchanged: "未变化", removed: "已删除", error: "失败",
                        queued: "已排队" };
  var DOC_STATE_LABELS = { keyword: "可检索", embedding: "语义索引中", done: "完成" };

  function root() {
    return document.body.getAttribute("data-root") || "/";
  }

  function encodePath(docId) {
    return docId.split("/").map(encodeURIComponent).join("/");
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text; // never innerHTML with data
    return node;
  }

  // Reasons arrive as "中文 / English" (the API keeps both); the page shows the Chinese half.
  function zh(text) {
    text = text || "";
    var cut = text.indexOf(" / ");
    return cut > 0 ? text.slice(0, cut) : text;
  }

  function errorMessage(data, fallback) {
    if (data && data.error) return data.error.message_zh || data.error.message_en || fallback;
    return fallback;
  }

  /* ---------------------------------------------------------------- the token (named users, issue 26)
     Entered once under 登录令牌 in the nav (#account, rendered only when the server has tokens), kept in this
     browser's localStorage -- every page and every tab -- until 退出; every write sends it as X-Admin-Token. A
     page renders the controls its request's user may not use hidden (.needs-editor / .needs-admin) and shows
     them here once /api/me says what the kept token's user may do. */
  function accountShown() { return !!document.getElementById("account"); }

  function adminToken() {
    if (!accountShown()) return "";  // no tokens on this server: nothing to send
    try { return localStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }  // storage disabled
  }

  // The user of ``token``: {name, role}, or {bad: why (Chinese), status} when the server refuses or cannot say.
  function askMe(token) {
    return fetch(root() + "api/me", { headers: { Accept: "application/json", "X-Admin-Token": token } })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (d) {
          if (r.ok && d.role) return { name: d.name, role: d.role };
          var code = d && d.error ? d.error.code : "";
          return { status: r.status, bad: code === "bad_token" ? "令牌不正确，请检查后重新输入。"
                                                               : errorMessage(d, "无法验证令牌（服务器返回 " + r.status + "）。") };
        });
      }, function () { return { status: 0, bad: "无法连接服务器，请稍后重试。" }; });
  }

  var mePromise = null;
  // The kept token's user (see askMe), null without a token; asked once a page.
  function me() {
    if (!mePromise) {
      var token = adminToken();
      mePromise = token ? askMe(token) : Promise.resolve(null);
    }
    return mePromise;
  }

  var currentRank = -1;  // the kept token's role as a rank (-1: none or not known yet)
  // Whether a control needing ``role`` is shown (always without tokens: the local user may do everything).
  function mayShow(role) { return !accountShown() || currentRank >= RANK[role]; }

  // Show the controls ``role`` may use, hide the others (and the 请登录 notes once an editor is in).
  function applyRole(role) {
    if (!accountShown()) return;
    currentRank = role in RANK ? RANK[role] : -1;
    var each = function (sel, fn) { Array.prototype.forEach.call(document.querySelectorAll(sel), fn); };
    each(".needs-editor", function (n) { if (!n.classList.contains("faq-held")) n.hidden = !mayShow("editor"); });
    each(".needs-admin", function (n) { if (!n.classList.contains("faq-held")) n.hidden = !mayShow("admin"); });
    each(".needs-login", function (n) { n.hidden = mayShow("editor"); });
    var audit = document.getElementById("nav-audit");
    if (audit) audit.hidden = !mayShow("admin");
  }

  function initAccount() {
    var box = document.getElementById("account");
    if (!box) return;
    var open = document.getElementById("login-open");
    var user = document.getElementById("account-user");
    var out = document.getElementById("logout-btn");
    var form = document.getElementById("login-form");
    var input = document.getElementById("login-token");
    var submit = document.getElementById("login-submit");
    var msg = document.getElementById("login-msg");

    function showForm(on) {
      form.hidden = !on;
      open.setAttribute("aria-expanded", on ? "true" : "false");
      if (on) input.focus();
    }
    function show(who) {
      var known = !!(who && who.role);
      open.hidden = known;
      user.hidden = out.hidden = !known;
      user.textContent = known ? who.name + "（" + (ROLE_NAMES[who.role] || who.role) + "）" : "";
      user.title = known ? "当前登录：" + who.name + "，角色：" + (ROLE_NAMES[who.role] || who.role) : "";
      applyRole(known ? who.role : null);
    }
    function settle(who) {
      show(who && !who.bad ? who : null);
      if (!who || !who.bad) return;
      if (who.status === 403) {  // the kept token is no longer known (withdrawn, or the tokens file changed)
        try { localStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
        msg.textContent = "保存的令牌已失效（不正确或已被停用），请重新输入。";
      } else {
        msg.textContent = who.bad;
      }
      showForm(true);
    }

    open.addEventListener("click", function () { showForm(form.hidden); });
    document.getElementById("login-cancel").addEventListener("click", function () {
      msg.textContent = "";
      showForm(false);
      open.focus();
    });
    form.addEventListener("keydown", function (e) { if (e.key === "Escape") { showForm(false); open.focus(); } });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var token = input.value.trim();
      if (!token) { msg.textContent = "请输入令牌。"; input.focus(); return; }
      submit.disabled = true;
      msg.textContent = "正在验证令牌……";
      askMe(token).then(function (who) {
        submit.disabled = false;
        if (who.bad) { msg.textContent = who.bad; input.select(); return; }
        try { localStorage.setItem(TOKEN_KEY, token); } catch (e) {
          msg.textContent = "浏览器不允许保存令牌（本地存储已关闭），无法登录。";
          return;
        }
        window.location.reload();  // this page again, with what this user may do
      });
    });
    out.addEventListener("click", function () {
      try { localStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
      window.location.reload();  // rendered for no one: the editing controls hidden
    });
    // 登录 or 退出 in another tab: this one follows (its controls shown or hidden; nothing reloads under the user)
    window.addEventListener("storage", function (e) {
      if (e.key !== TOKEN_KEY && e.key !== null) return;
      mePromise = null;
      msg.textContent = "";
      me().then(settle);
    });
    me().then(settle);
  }

  // for curation.js (loaded after this file)
  window.PartyQA = { adminToken: adminToken, me: me, mayShow: mayShow, el: el };

  /* ---------------------------------------------------------------- document view */
  function initDocument() {
    var article = document.getElementById("document");
    if (!article) return;
    initFind();
    var chosenId = article.getAttribute("data-chosen");
    if (!chosenId) return;
    var passage = document.getElementById(chosenId);
    if (!passage) return;
    // The answer sentence the search pointed at, else the whole passage.
    var target = passage.querySelector("strong.answer") || passage;
    if (!location.hash || location.hash.slice(1) !== chosenId) {
      target.scrollIntoView({ block: "center" });
    } else {
      // Centre the passage instead of pinning it under the top edge.
      window.requestAnimationFrame(function () { target.scrollIntoView({ block: "center" }); });
    }
  }

  /* ---------------------------------------------------------------- documents page */
  function formatDate(iso) {
    if (!iso) return "";
    var m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(iso);
    return m ? m[1] + " " + m[2] : iso;
  }

  function sizeLabel(chars) {
    var n = parseInt(chars, 10);
    if (isNaN(n)) return "";
    return n < 10000 ? n + " 字" : (n / 10000).toFixed(1) + " 万字";
  }

  function setStatus(text, kind) {
    var status = document.getElementById("doc-status");
    if (!status) return;
    status.textContent = text || "";
    status.className = "doc-status" + (kind ? " " + kind : "");
    status.hidden = !text;
  }

  function renderRows(docs) {
    var tbody = document.getElementById("doc-rows");
    if (!tbody) return;
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    if (!docs.length) {
      var empty = el("tr", "empty-row");
      var q = docTable().q;
      var cell = el("td", null, q ? "没有名称含“" + q + "”的文档。" : "还没有文档，请先上传。");
      cell.colSpan = 7;
      empty.appendChild(cell);
      tbody.appendChild(empty);
    }
    docs.forEach(function (d) {
      var tr = el("tr");
      tr.setAttribute("data-doc-id", d.doc_id);
      var title = el("td", "title-cell");
      var link = el("a", null, d.title);
      link.href = root() + "doc/" + encodePath(d.doc_id);
      title.appendChild(link);
      title.appendChild(el("div", "doc-id", d.doc_id));
      if (d.versions && d.versions.length) {  // links to the regulation's other versions
        var others = el("div", "doc-versions", "其他版本：");
        d.versions.forEach(function (v, i) {
          if (i) others.appendChild(document.createTextNode("、"));
          var a = el("a", null, v.version_label || v.title);
          a.href = root() + "doc/" + encodePath(v.doc_id);
          others.appendChild(a);
        });
        title.appendChild(others);
      }
      tr.appendChild(title);
      var kind = el("td");
      kind.appendChild(el("span", "badge", d.kind));
      tr.appendChild(kind);
      tr.appendChild(el("td", "num", String(d.passages)));
      tr.appendChild(el("td", "num size", sizeLabel(d.chars)));
      var state = el("td", "state");
      var ds = DOC_STATE_LABELS[d.state] ? d.state : "done";
      var badge = el("span", "badge badge-index-" + ds, docStateLabel(d));
      badge.setAttribute("data-state", ds);
      state.appendChild(badge);
      var versions = { current: ["badge badge-current", "现行"], historical: ["badge badge-historical", "历史版本"] };
      var st = versions[d.version_status];
      if (st) { state.appendChild(document.createTextNode(" ")); state.appendChild(el("span", st[0], st[1])); }
      if (d.version_label) state.appendChild(el("span", "version-label", " " + d.version_label));
      if (d.status && d.status !== "现行") {
        state.appendChild(document.createTextNode(" "));
        var status = el("span", "badge badge-status", d.status);
        if (d.superseded_by) status.title = d.superseded_by;
        state.appendChild(status);
      }
      tr.appendChild(state);
      var date = el("td", "date", formatDate(d.added_at));
      if (d.updated_at && d.updated_at !== d.added_at) date.appendChild(el("div", "updated", "更新 " + formatDate(d.updated_at)));
      tr.appendChild(date);
      var action = el("td");
      var btn = el("button", "btn btn-small btn-danger delete-btn needs-admin", "删除");
      btn.type = "button";
      btn.hidden = !mayShow("admin");
      btn.setAttribute("data-url", root() + "api/documents/" + encodePath(d.doc_id));
      btn.setAttribute("data-title", d.title);
      action.appendChild(btn);
      tr.appendChild(action);
      tbody.appendChild(tr);
    });
  }

  function docStateLabel(d) {
    if (d.state === "embedding" && d.passages && d.embedded >= d.passages) return DOC_STATE_LABELS.done;
    if (d.state === "embedding" && !d.embedded) return "可检索 · 等待语义索引"; // its turn has not come yet
    var label = DOC_STATE_LABELS[d.state] || DOC_STATE_LABELS.done;
    if (d.state === "embedding" && d.passages) label += " " + Math.min(99, percent(d.embedded, d.passages)) + "%";
    return label;
  }

  // The table shows one page (data-offset, data-limit) of the documents whose name contains data-q: a refresh
  // fetches just that page, so polling costs the same at 70 documents or 70,000.
  function docTable() {
    var table = document.getElementById("doc-table");
    if (!table) return null;
    return { node: table, q: table.getAttribute("data-q") || "",
             offset: parseInt(table.getAttribute("data-offset"), 10) || 0,
             limit: parseInt(table.getAttribute("data-limit"), 10) || 100 };
  }

  function docsPageUrl(q, page) {
    var params = new URLSearchParams();
    if (q) params.set("q", q);
    if (page > 1) params.set("page", String(page));
    var query = params.toString();
    return root() + "documents" + (query ? "?" + query : "");
  }

  function renderPager(total, offset, limit, q, shown) {
    var pages = Math.max(1, Math.ceil(total / limit));
    var page = Math.floor(offset / limit) + 1;
    var counter = document.getElementById("doc-filter-count");
    if (counter) {
      var parts = [];
      if (q) parts.push("找到 " + total + " 篇");
      if (pages > 1) parts.push("第 " + (offset + 1) + "–" + (offset + shown) + " 篇");
      counter.textContent = parts.join("，");
    }
    var nav = document.getElementById("doc-pager");
    if (!nav) return;
    nav.hidden = pages <= 1;
    var prev = document.getElementById("doc-page-prev");
    var next = document.getElementById("doc-page-next");
    var info = document.getElementById("doc-page-info");
    if (info) info.textContent = "第 " + page + " / " + pages + " 页";
    if (prev) { prev.hidden = page <= 1; prev.href = docsPageUrl(q, page - 1); }
    if (next) { next.hidden = page >= pages; next.href = docsPageUrl(q, page + 1); }
  }

  function refreshCounts() {
    return fetch(root() + "api/health", { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (h) {
        if (!h) return;
        var count = document.getElementById("doc-count");
        if (count) count.textContent = String(h.documents);
        var passages = document.getElementById("passage-count");
        if (passages) passages.textContent = String(h.passages);
      })
      .catch(function () { /* the next refresh will tell */ });
  }

  var docsRequest = 0;

  function refreshDocuments() {
    var t = docTable();
    if (!t) return Promise.resolve();
    var mine = ++docsRequest;
    var url = root() + "api/documents?offset=" + t.offset + "&limit=" + t.limit + (t.q ? "&q=" + encodeURIComponent(t.q) : "");
    refreshCounts();
    return fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status)); })
      .then(function (data) {
        if (mine !== docsRequest) return null; // a newer filter or refresh is on its way
        var docs = data.documents || [];
        if (!docs.length && data.total > 0 && t.offset > 0) {
          // The page emptied (its last documents were deleted): show the new last page.
          t.node.setAttribute("data-offset", String(Math.floor((data.total - 1) / t.limit) * t.limit));
          return refreshDocuments();
        }
        t.node.setAttribute("data-total", String(data.total));
        renderRows(docs);
        renderPager(data.total, t.offset, t.limit, t.q, docs.length);
        return null;
      })
      .catch(function () { setStatus("刷新文档列表失败，请刷新页面。", "error"); });
  }

  function filterDocuments(q) {
    var t = docTable();
    if (!t) return;
    t.node.setAttribute("data-q", q);
    t.node.setAttribute("data-offset", "0");
    try { history.replaceState(null, "", docsPageUrl(q, 1)); } catch (e) { /* the URL just stays */ }
    refreshDocuments();
  }

  function onDelete(event) {
    var btn = event.target.closest ? event.target.closest(".delete-btn") : null;
    if (!btn) return;
    var title = btn.getAttribute("data-title") || "";
    if (!window.confirm("确定删除《" + title + "》吗？删除后将不再出现在检索结果中。")) return;
    var headers = { Accept: "application/json" };
    var token = adminToken();
    if (token) headers["X-Admin-Token"] = token;
    btn.disabled = true;
    fetch(btn.getAttribute("data-url"), { method: "DELETE", headers: headers })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) {
          return { ok: r.ok, status: r.status, data: data };
        });
      })
      .then(function (res) {
        if (res.status === 202) {
          // Queued behind another job: the job list shows it, and the table refreshes when it is done.
          setStatus("删除《" + title + "》已排入索引任务，完成后列表会自动更新。", "ok");
          pollJobsNow();
          return null;
        }
        if (res.ok) {
          setStatus("已删除《" + title + "》。", "ok");
          return refreshDocuments();
        }
        btn.disabled = false;
        setStatus("删除失败：" + errorMessage(res.data, "未知错误"), "error");
      })
      .catch(function () {
        btn.disabled = false;
        setStatus("删除失败：无法连接服务器。", "error");
      });
  }

  function renderResults(list, files) {
    while (list.firstChild) list.removeChild(list.firstChild);
    (files || []).forEach(function (f) {
      var li = el("li", "upload-result status-" + f.status);
      li.appendChild(el("span", "badge badge-" + f.status, STATUS_LABELS[f.status] || f.status));
      li.appendChild(el("span", "upload-name", f.filename || f.saved_as || ""));
      if (f.saved_as && f.filename && f.saved_as !== f.filename) {
        li.appendChild(el("span", "upload-note", "保存为 " + f.saved_as));
      }
      if (f.reason) li.appendChild(el("span", "upload-reason", zh(f.reason)));
      list.appendChild(li);
    });
  }

  function initUpload() {
    var form = document.getElementById("upload-form");
    if (!form) return;
    var input = document.getElementById("files");
    var button = document.getElementById("upload-btn");
    var progress = document.getElementById("upload-progress");
    var fill = document.getElementById("upload-fill");
    var bar = fill.parentNode;
    var statusText = document.getElementById("upload-status");
    var results = document.getElementById("upload-results");
    var label = form.querySelector(".file-drop-text");
    var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10) || 0;

    input.addEventListener("change", function () {
      var names = Array.prototype.map.call(input.files, function (f) { return f.name; });
      label.textContent = names.length ? "已选择 " + names.length + " 个文件：" + names.join("、") : "选择文件（可多选）";
    });

    function done(message, kind) {
      button.disabled = false;
      statusText.textContent = message;
      statusText.className = "progress-text " + (kind || "");
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var files = input.files;
      if (!files || !files.length) {
        progress.hidden = false;
        bar.hidden = true;
        done("请先选择要上传的文件。", "error");
        return;
      }
      var total = 0;
      var data = new FormData();
      Array.prototype.forEach.call(files, function (f) { total += f.size; data.append("files", f, f.name); });
      if (maxBytes && total > maxBytes) {
        progress.hidden = false;
        bar.hidden = true;
        done("文件总大小超过上限（" + Math.round(maxBytes / 1048576) + " MB），请分批上传。", "error");
        return;
      }
      renderResults(results, []);
      button.disabled = true;
      progress.hidden = false;
      bar.hidden = false;
      fill.style.width = "0%";
      statusText.className = "progress-text";
      statusText.textContent = "正在上传 0%";

      send(data, total);
    });

    function send(data, total) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("action"));
      xhr.setRequestHeader("Accept", "application/json");
      var token = adminToken();
      if (token) xhr.setRequestHeader("X-Admin-Token", token);
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable) return;
        var pct = Math.round((e.loaded / e.total) * 100);
        fill.style.width = pct + "%";
        statusText.textContent = "正在上传 " + pct + "%";
      };
      xhr.onload = function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        // The bar only ever showed the transfer; indexing progress is the job's, in the list below.
        bar.hidden = true;
        fill.style.width = "0%";
        if (xhr.status === 202 && body && body.job) {
          var refused = (body.files || []).filter(function (f) { return f.status === "error"; });
          renderResults(results, refused);
          var queued = (body.files || []).length - refused.length;
          done("已提交 " + queued + " 个文件" + (refused.length ? "（" + refused.length + " 个未接受，原因见下方）" : "") +
               "，正在后台建立索引，进度见“索引任务”。", refused.length ? "warn" : "ok");
          jobs.uploadJob = body.job.id;
          form.reset();
          label.textContent = "选择文件（可多选）";
          pollJobsNow();
        } else if (xhr.status === 409 && body && body.error && body.error.code === "duplicate_upload") {
          // The same file is indexed under another name: ask before adding a copy.
          if (window.confirm(errorMessage(body, "文件与已收录的文档相同。确定要再添加一份吗？"))) {
            data.set("allow_duplicate", "1");
            send(data, total);
          } else {
            done("未上传：文件与已收录的文档内容相同。", "warn");
          }
        } else {
          if (body && body.files) renderResults(results, body.files);
          done("上传失败：" + errorMessage(body, "服务器返回 " + xhr.status), "error");
        }
      };
      xhr.onerror = function () {
        bar.hidden = true;
        done("上传失败：无法连接服务器，或文件过大。", "error");
      };
      xhr.send(data);
    }
  }

  function initDocuments() {
    var table = document.getElementById("doc-table");
    if (table) table.addEventListener("click", onDelete);
    var filter = document.getElementById("doc-filter");
    var form = document.getElementById("doc-filter-form");
    if (filter && form && table) {
      // Typing filters every document on the server (debounced); without script the form does the same.
      var timer = null;
      var run = function () {
        window.clearTimeout(timer);
        timer = null;
        var q = filter.value.trim();
        if (q !== (table.getAttribute("data-q") || "")) filterDocuments(q);
      };
      filter.addEventListener("input", function () {
        window.clearTimeout(timer);
        timer = window.setTimeout(run, FILTER_DELAY_MS);
      });
      form.addEventListener("submit", function (event) { event.preventDefault(); run(); });
    }
    initUpload();
  }

  /* ---------------------------------------------------------------- index jobs */
  // Polled from /api/jobs: every 1.5 s while a job runs, every 15 s when idle, not at all while the tab is hidden.
  var POLL_ACTIVE_MS = 1500;
  var POLL_IDLE_MS = 15000;
  var DOCS_REFRESH_MS = 1400; // the documents table (per-document 语义索引中 n%) follows every poll while a job embeds
  var FILES_SHOWN = 50;
  var JOB_KIND_LABELS = { add: "添加文档", remove: "删除文档", index: "同步文档目录" };
  var JOB_STATE_LABELS = { queued: "排队中", reading: "读取中", "keyword-ready": "可检索", embedding: "语义索引中",
                           done: "完成", failed: "失败", unchanged: "未变化", removed: "已删除（语义索引已停止）" };
  var jobs = { timer: null, busy: false, again: false, seen: {}, first: true, docsAt: 0, flashUntil: 0, uploadJob: null };

  function percent(done, total) {
    return total ? Math.max(0, Math.min(100, Math.floor((done || 0) * 100 / total))) : 0;
  }

  function durationLabel(seconds) {
    var s = Math.max(1, Math.round(seconds));
    if (s < 60) return s + " 秒";
    var m = Math.floor(s / 60);
    s %= 60;
    if (m < 60) return m + " 分" + (s ? " " + s + " 秒" : "");
    var h = Math.floor(m / 60);
    m %= 60;
    return h + " 小时" + (m ? " " + m + " 分" : "");
  }

  // Vectors are one shared backlog, embedded in order: a later job's passages wait for an earlier job's.
  function waitsForEarlier(job, list) {
    if ((job.state !== "keyword-ready" && job.state !== "embedding") || job.passages_embedded) return false;
    var at = list.indexOf(job);
    return list.some(function (other, i) {
      return i > at && (other.state === "keyword-ready" || other.state === "embedding"); // newest first: i > at is earlier
    });
  }

  function jobStateLabel(job, waiting) {
    if (waiting) return "可检索 · 排队等待语义索引";
    if (job.state === "queued") return "排队中" + (job.queue_position ? "（第 " + job.queue_position + " 位）" : "");
    if (job.state === "embedding") return "语义索引中 " + percent(job.passages_embedded, job.passages_total) + "%";
    if (job.state === "keyword-ready") return "可检索 · 等待语义索引";
    var files = job.files || [];
    // every file's documents were deleted before their vectors landed: the job did not end as 完成
    if (job.state === "done" && files.length && files.every(function (f) { return f.state === "removed"; })) {
      return JOB_STATE_LABELS.removed;
    }
    return JOB_STATE_LABELS[job.state] || job.state;
  }

  function fileStateLabel(f, waiting) {
    var embedding = f.state === "embedding" || f.state === "keyword-ready";
    // A file whose passages all have their vectors is done, whatever the rest of the job still does.
    if (embedding && f.passages && f.embedded >= f.passages) return "完成";
    // Searchable by keyword, its turn for the encoder not come yet.
    if (embedding && (waiting || !f.embedded)) return "可检索 · 等待语义索引";
    if (f.state === "embedding") return "语义索引中 " + Math.min(99, percent(f.embedded, f.passages)) + "%";
    return JOB_STATE_LABELS[f.state] || f.state;
  }

  function progressLine(job) {
    var parts = [];
    if (job.passages_total) parts.push("语义索引 " + (job.passages_embedded || 0) + " / " + job.passages_total + " 段");
    if (job.rate) parts.push("速度 " + job.rate.toFixed(1) + " 段/秒");
    if (job.eta_seconds !== null && job.eta_seconds !== undefined && job.state !== "done") {
      parts.push("预计剩余 " + durationLabel(job.eta_seconds));
    }
    return parts.join(" · ");
  }

  function progressBar(value, label) {
    var bar = el("div", "progress-bar");
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.setAttribute("aria-valuenow", String(value));
    bar.setAttribute("aria-label", label);
    var fill = el("div", "progress-fill");
    fill.style.width = value + "%";
    bar.appendChild(fill);
    return bar;
  }

  function renderJob(job, waiting) {
    var li = el("li", "job job-" + job.state);
    li.setAttribute("data-job-id", job.id);
    li.setAttribute("data-state", job.state);
    var head = el("div", "job-head");
    head.appendChild(el("span", "job-kind", JOB_KIND_LABELS[job.kind] || job.kind));
    head.appendChild(el("span", "badge badge-job badge-job-" + job.state, jobStateLabel(job, waiting)));
    var when = job.finished_at || job.started_at || job.created_at;
    head.appendChild(el("span", "job-time", (job.finished_at ? "结束于 " : job.started_at ? "开始于 " : "提交于 ") +
                                            formatDate(when)));
    li.appendChild(head);
    if (job.active && job.passages_total) {
      var row = el("div", "progress job-progress");
      row.appendChild(progressBar(percent(job.passages_embedded, job.passages_total), "语义索引进度"));
      row.appendChild(el("span", "progress-text job-progress-text", progressLine(job)));
      li.appendChild(row);
    }
    if (!job.active && job.summary) li.appendChild(el("p", "job-summary", job.summary));
    if (job.error) li.appendChild(el("p", "job-error", "失败：" + zh(job.error)));
    var files = job.files || [];
    if (files.length) {
      var list = el("ul", "job-files");
      files.slice(0, FILES_SHOWN).forEach(function (f) {
        var item = el("li", "job-file file-" + f.state);
        item.appendChild(el("span", "job-file-name", f.name));
        item.appendChild(el("span", "badge badge-file badge-file-" + f.state, fileStateLabel(f, waiting)));
        if (f.state === "done" && STATUS_LABELS[f.status] && f.status !== "error") {
          item.appendChild(el("span", "job-file-outcome", STATUS_LABELS[f.status]));
        }
        if (f.passages) item.appendChild(el("span", "job-file-count", f.passages + " 段"));
        // A failed file: the badge says 失败, this line says why (Chinese first). Skipped .jsonl lines likewise.
        if (f.state === "failed" || (f.reason && f.state !== "unchanged")) {
          item.appendChild(el("span", "upload-reason", zh(f.reason) || "未知原因"));
        }
        list.appendChild(item);
      });
      if (files.length > FILES_SHOWN) list.appendChild(el("li", "job-file more", "另有 " + (files.length - FILES_SHOWN) + " 个文件"));
      li.appendChild(list);
    }
    return li;
  }

  function renderJobList(list) {
    var ol = document.getElementById("job-list");
    if (!ol) return;
    while (ol.firstChild) ol.removeChild(ol.firstChild);
    list.forEach(function (job) { ol.appendChild(renderJob(job, waitsForEarlier(job, list))); });
    var empty = document.getElementById("jobs-empty");
    if (empty) empty.hidden = list.length > 0;
  }

  function indicatorText(active) {
    var total = 0;
    var embedded = 0;
    active.forEach(function (j) {
      if (j.state === "embedding" || j.state === "keyword-ready") {
        total += j.passages_total || 0;
        embedded += j.passages_embedded || 0;
      }
    });
    var text = "正在更新索引：" + active.length + " 个任务";
    if (total) return text + " · 语义索引 " + percent(embedded, total) + "%";
    var states = active.map(function (j) { return j.state; });
    if (states.indexOf("reading") >= 0) return text + " · 读取中";
    return text + " · 排队中";
  }

  function announce(text) {
    var live = document.getElementById("job-indicator-live");
    if (live && live.textContent !== text) live.textContent = text;
  }

  function renderIndicator(active, finished) {
    var box = document.getElementById("job-indicator");
    var text = document.getElementById("job-indicator-text");
    if (!box || !text) return;
    if (active.length) {
      box.hidden = false;
      box.className = "job-indicator";
      text.textContent = indicatorText(active);
      // Announced once per change of the running set, not at every percent (polite, not chatty).
      announce("正在更新索引：" + active.length + " 个任务");
    } else if (finished.length) {
      var last = finished[0]; // newest first
      var failed = finished.filter(function (j) { return j.state === "failed"; }).length;
      box.hidden = false;
      box.className = "job-indicator " + (failed ? "job-indicator-failed" : "job-indicator-done");
      if (finished.length > 1) {
        text.textContent = "索引已更新：" + finished.length + " 个任务结束" + (failed ? "，其中 " + failed + " 个失败" : "") +
                           "，详见文档管理";
      } else {
        text.textContent = failed ? "索引任务失败：" + zh(last.error || last.summary || "") : "索引已更新：" + (last.summary || "完成");
      }
      announce(text.textContent);
      jobs.flashUntil = Date.now() + 10000;
    } else if (Date.now() > jobs.flashUntil) {
      box.hidden = true;
    }
  }

  // The upload form's "已提交 … 正在后台建立索引" line gives way to the job's outcome once it ends.
  function followUpload(list) {
    if (!jobs.uploadJob) return;
    var job = list.filter(function (j) { return j.id === jobs.uploadJob; })[0];
    var status = document.getElementById("upload-status");
    if (!job || job.active || !status) return;
    jobs.uploadJob = null;
    var failed = job.state === "failed";
    var fileFailed = (job.files || []).some(function (f) { return f.state === "failed" || f.status === "error"; });
    status.textContent = failed ? "索引失败：" + zh(job.error || job.summary || "") : "索引完成：" + (job.summary || "已完成");
    status.className = "progress-text " + (failed ? "error" : fileFailed ? "warn" : "ok");
  }

  function onJobs(list) {
    followUpload(list);
    var active = list.filter(function (j) { return j.active; });
    var byId = {};
    list.forEach(function (j) { byId[j.id] = j; });
    var finished = [];
    var changed = false;
    var missing = [];
    Object.keys(jobs.seen).forEach(function (id) {
      if (!byId[id] && jobs.seen[id] !== "done" && jobs.seen[id] !== "failed") missing.push(id);
    });
    list.forEach(function (j) {
      var before = jobs.seen[j.id];
      if (before !== j.state) {
        if (!jobs.first && j.state !== "queued" && j.state !== "reading") changed = true;
        if (before && !j.active) finished.push(j);
      }
      jobs.seen[j.id] = j.state;
    });
    jobs.first = false;
    // Jobs that left the active list (other pages poll ?active=1): fetch each once for its summary.
    missing.forEach(function (id) {
      delete jobs.seen[id];
      fetch(jobsApi() + "/" + encodeURIComponent(id), { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (job) {
          if (!job) return;
          if (job.active) { jobs.seen[id] = job.state; return; } // only beyond the list's limit
          if (!active.length) renderIndicator([], [job]);
          if (document.getElementById("doc-rows")) refreshDocuments();
        })
        .catch(function () { /* the next poll will tell */ });
    });
    renderIndicator(active, finished);
    renderJobList(list);
    var embedding = active.some(function (j) { return j.state === "embedding" || j.state === "keyword-ready"; });
    if (document.getElementById("doc-rows") && (changed || (embedding && Date.now() - jobs.docsAt > DOCS_REFRESH_MS))) {
      jobs.docsAt = Date.now();
      refreshDocuments();
    }
    return active.length > 0;
  }

  function jobsApi() {
    var box = document.getElementById("job-indicator");
    return (box && box.getAttribute("data-api")) || root() + "api/jobs";
  }

  function scheduleJobs(ms) {
    window.clearTimeout(jobs.timer);
    jobs.timer = null;
    if (document.visibilityState === "hidden") return; // resumed by visibilitychange
    jobs.timer = window.setTimeout(pollJobs, ms);
  }

  function pollJobs() {
    if (jobs.busy) { jobs.again = true; return; }
    jobs.busy = true;
    // The documents page lists recent finished jobs too; other pages only need the running ones.
    var url = jobsApi() + (document.getElementById("job-list") ? "?limit=8" : "?active=1");
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status)); })
      .then(function (data) {
        jobs.busy = false;
        var running = onJobs(data.jobs || []);
        if (jobs.again) { jobs.again = false; pollJobs(); return; }
        scheduleJobs(running ? POLL_ACTIVE_MS : POLL_IDLE_MS);
      })
      .catch(function () {
        jobs.busy = false;
        scheduleJobs(POLL_IDLE_MS);
      });
  }

  function pollJobsNow() {
    window.clearTimeout(jobs.timer);
    pollJobs();
  }

  function initJobs() {
    if (!document.getElementById("job-indicator")) return;
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") pollJobsNow();
      else { window.clearTimeout(jobs.timer); jobs.timer = null; }
    });
    pollJobs();
  }

  /* ---------------------------------------------------------------- in-document find */
  function initFind() {
    var input = document.getElementById("doc-find-input");
    var body = document.getElementById("doc-body");
    if (!input || !body) return;
    var counter = document.getElementById("doc-find-count");
    var hits = [];
    var current = -1;
    var timer = null;

    function clear() {
      hits.forEach(function (m) {
        var parent = m.parentNode;
        if (!parent) return;
        parent.replaceChild(document.createTextNode(m.textContent), m);
        parent.normalize();
      });
      hits = [];
      current = -1;
    }

    function show(i) {
      if (!hits.length) return;
      if (current >= 0) hits[current].classList.remove("current");
      current = (i + hits.length) % hits.length;
      hits[current].classList.add("current");
      hits[current].scrollIntoView({ block: "center" });
      counter.textContent = (current + 1) + " / " + hits.length;
    }

    function search() {
      clear();
      var needle = input.value.trim();
      if (!needle) { counter.textContent = ""; return; }
      // the passages' 出处 lines, linked questions and editors' buttons are not the document's text
      var walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT, function (n) {
        return n.parentNode.closest(".passage-cite, .std-questions, button") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT;
      });
      var nodes = [];
      while (walker.nextNode()) nodes.push(walker.currentNode);
      var lower = needle.toLowerCase();
      nodes.forEach(function (node) {
        var text = node.nodeValue;
        var idx = text.toLowerCase().indexOf(lower);
        while (idx >= 0 && hits.length < 2000) {
          var match = node.splitText(idx);
          node = match.splitText(needle.length);
          var mark = el("mark", "find-hit", match.nodeValue);
          match.parentNode.replaceChild(mark, match);
          hits.push(mark);
          text = node.nodeValue;
          idx = text.toLowerCase().indexOf(lower);
        }
      });
      if (hits.length) show(0);
      else counter.textContent = "未找到";
    }

    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(search, 200);
    });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter") {
        e.preventDefault();
        if (timer) { window.clearTimeout(timer); timer = null; if (!hits.length) { search(); return; } }
        show(current + (e.shiftKey ? -1 : 1));
      }
    });
    document.getElementById("doc-find-next").addEventListener("click", function () { show(current + 1); });
    document.getElementById("doc-find-prev").addEventListener("click", function () { show(current - 1); });
  }

  /* ---------------------------------------------------------------- search page */
  var RECENT_KEY = "partyqa-recent";
  var RECENT_MAX = 8;

  function loadRecent() {
    try {
      var list = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
      return Array.isArray(list) ? list.filter(function (q) { return typeof q === "string" && q; }) : [];
    } catch (e) { return []; }
  }

  function saveRecent(list) {
    try { localStorage.setItem(RECENT_KEY, JSON.stringify(list.slice(0, RECENT_MAX))); } catch (e) { /* disabled */ }
  }

  function initRecent() {
    // Questions stay in this browser's localStorage; nothing is sent anywhere.
    var params = new URLSearchParams(location.search);
    var q = (params.get("q") || "").trim();
    if (q && document.getElementById("results")) {
      saveRecent([q].concat(loadRecent().filter(function (x) { return x !== q; })));
    }
    var section = document.getElementById("recent");
    var list = document.getElementById("recent-list");
    if (!section || !list) return;
    var items = loadRecent();
    while (list.firstChild) list.removeChild(list.firstChild);
    items.forEach(function (text) {
      var li = el("li");
      var a = el("a", null, text);
      a.href = root() + "?q=" + encodeURIComponent(text);
      li.appendChild(a);
      list.appendChild(li);
    });
    section.hidden = !items.length;
    var clearBtn = document.getElementById("recent-clear");
    if (clearBtn) {
      clearBtn.onclick = function () {
        try { localStorage.removeItem(RECENT_KEY); } catch (e) { /* ignore */ }
        initRecent();
      };
    }
  }

  function initSearchOptions() {
    var form = document.getElementById("searchbox");
    if (!form) return;
    var box = document.getElementById("q");
    function rerun() {
      // Only when there is a question: on the empty home page a mode change just sets the option.
      if (box && box.value.trim()) form.submit();
    }
    // A click on a mode searches again at once; arrow keys only move the choice (each press would reload the
    // page), and Enter or Space then searches.
    var byKey = false;
    var hint = null;
    Array.prototype.forEach.call(form.querySelectorAll('input[name="mode"]'), function (input) {
      input.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); byKey = false; rerun(); return; }
        byKey = /^Arrow/.test(e.key);
      });
      input.addEventListener("change", function () {
        if (!byKey) { rerun(); return; }
        byKey = false;
        if (!box || !box.value.trim()) return;
        if (!hint) {
          hint = el("span", "mode-hint", "按回车键用新的检索方式搜索");
          hint.id = "mode-hint";
          hint.setAttribute("role", "status");
          var modes = form.querySelector(".modes");
          if (modes && modes.parentNode) modes.parentNode.insertBefore(hint, modes.nextSibling);
        }
      });
    });
    // 检索测试: empty knobs are left out of the URL (the configured defaults apply)
    form.addEventListener("submit", function () {
      Array.prototype.forEach.call(form.querySelectorAll("#advanced input"), function (input) {
        if (!input.value.trim()) input.disabled = true;
      });
    });
    window.addEventListener("pageshow", function () {  // back to this page: the fields are usable again
      Array.prototype.forEach.call(form.querySelectorAll("#advanced input"), function (input) { input.disabled = false; });
    });
    Array.prototype.forEach.call(form.querySelectorAll('select[name="k"], select[name="category"]'), function (input) {
      input.addEventListener("change", rerun);
    });
    initDocPicker(form);
  }

  /* The search box's document picker lists at most ~200 documents (selected, then those with hits for the
     question); when the list is cut, its filter also asks the server for every document whose name matches and
     adds them as options. Ticked options stay (hidden when they do not match) and submit with the form. */
  var FILTER_DELAY_MS = 250;
  var FOUND_LIMIT = 50;

  function foldName(text) {
    text = text || "";
    return (text.normalize ? text.normalize("NFKC") : text).toLowerCase();
  }

  function initDocPicker(form) {
    var filter = document.getElementById("doc-picker-filter");
    var list = document.getElementById("doc-picker-list");
    if (!filter || !list) return;
    var status = document.getElementById("doc-picker-status");
    var note = status ? status.getAttribute("data-note") || "" : "";
    var cut = list.getAttribute("data-cut") === "1";
    var countsUrl = list.getAttribute("data-counts");
    var counts = null; // document id -> passages with the question's words, fetched when the picker opens
    var timer = null;
    var asked = 0;

    function say(text) { if (status && status.textContent !== text) status.textContent = text; }
    function options() { return Array.prototype.slice.call(list.querySelectorAll(".doc-option")); }
    function boxOf(li) { return li.querySelector('input[name="doc"]'); }
    function optionFor(docId) {
      return options().filter(function (li) { return boxOf(li).value === docId; })[0] || null;
    }
    function folderOf(docId) {
      var found = "";
      Array.prototype.forEach.call(list.querySelectorAll("input[data-folder]:checked"), function (f) {
        if (docId.indexOf(f.value) === 0) found = f.value;
      });
      return found;
    }
    function showMatching(needle) {
      var shown = 0;
      options().forEach(function (li) {
        var hit = !needle || foldName(li.textContent).indexOf(needle) >= 0;
        li.hidden = !hit;
        if (hit) shown += 1;
      });
      return shown;
    }
    function dropUnticked() {
      options().forEach(function (li) {
        if (li.classList.contains("doc-option-found") && !boxOf(li).checked) list.removeChild(li);
      });
    }
    function addOption(d) {
      var li = el("li", "doc-option doc-option-found");
      var label = el("label");
      var box = el("input");
      box.type = "checkbox";
      box.name = "doc";
      box.value = d.doc_id;
      var folder = folderOf(d.doc_id);
      if (folder) {
        box.checked = box.disabled = true;
        box.setAttribute("data-in-folder", folder);
        label.title = "已随文件夹 " + folder + " 选中";
      }
      label.appendChild(box);
      label.appendChild(document.createTextNode(" "));
      label.appendChild(el("span", "doc-option-title", d.title));
      label.appendChild(document.createTextNode(" "));
      label.appendChild(el("span", "doc-option-id", d.doc_id));
      li.appendChild(label);
      list.appendChild(li);
      showCount(li);
    }
    // Each listed document's count: the passages that contain the question's words, which is what a keyword
    // search restricted to that document returns. Fetched once, when the picker is first opened.
    function showCount(li) {
      var box = boxOf(li);
      if (!counts || !box || box.getAttribute("data-folder")) return;
      var n = counts[box.value] || 0;
      var span = li.querySelector(".doc-count");
      if (!span) {
        span = el("span", "doc-count");
        span.title = "该文档中含问题词语的段落数（按关键词检索限定该文档时的结果数）";
        var label = li.querySelector("label");
        label.appendChild(document.createTextNode(" "));
        label.appendChild(span);
      }
      span.textContent = n + " 段含问题词语";
      span.setAttribute("data-doc-count", String(n));
      if (n > 0) li.classList.add("has-hits"); else li.classList.remove("has-hits");
    }
    function loadCounts() {
      if (!countsUrl || counts) return;
      var url = countsUrl;
      countsUrl = null; // once
      fetch(url, { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status)); })
        .then(function (data) {
          counts = data.counts || {};
          options().forEach(showCount);
          var legend = document.getElementById("doc-picker-legend");
          if (legend) legend.hidden = false;
          list.setAttribute("data-counts-ready", "1");
        })
        .catch(function () { /* no counts: the list still works */ });
    }
    var details = document.getElementById("doc-picker");
    if (details) {
      details.addEventListener("toggle", function () { if (details.open) loadCounts(); });
      if (details.open) loadCounts();
    }
    function ask(raw, needle) {
      var mine = ++asked;
      var url = list.getAttribute("data-api") + "?q=" + encodeURIComponent(raw) + "&limit=" + FOUND_LIMIT;
      fetch(url, { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status)); })
        .then(function (data) {
          if (mine !== asked) return; // the filter changed meanwhile
          dropUnticked();
          showMatching(needle);
          (data.documents || []).forEach(function (d) {
            var li = optionFor(d.doc_id);
            if (li) li.hidden = false; // matched on the server's folding (繁体, full-width) but not here
            else addOption(d);
          });
          var found = data.total || 0;
          var listed = (data.documents || []).length;
          say(found ? "找到 " + found + " 篇" + (found > listed ? "，列出前 " + listed + " 篇，输入更多字缩小范围" : "")
                    : "没有名称含“" + raw + "”的文档");
        })
        .catch(function () { if (mine === asked) say("查找文档失败，请稍后重试。"); });
    }

    filter.addEventListener("input", function () {
      var raw = filter.value.trim();
      var needle = foldName(raw);
      window.clearTimeout(timer);
      var shown = showMatching(needle);
      if (!needle) {
        asked += 1; // an answer still on its way is stale
        dropUnticked();
        say(note);
        return;
      }
      if (!cut) { say("显示 " + shown + " 篇"); return; }
      say("正在查找全部文档…");
      timer = window.setTimeout(function () { ask(raw, needle); }, FILTER_DELAY_MS);
    });
    filter.addEventListener("keydown", function (e) { if (e.key === "Enter") e.preventDefault(); });
    // The summary counts what will be submitted: ticked documents, and a ticked folder's documents.
    function countSelected() {
      var summary = document.getElementById("doc-picker-summary");
      if (!summary) return;
      var n = 0;
      options().forEach(function (li) {
        var box = boxOf(li);
        if (box.checked && !box.disabled) n += parseInt(box.getAttribute("data-count") || "1", 10) || 1;
      });
      summary.textContent = n ? "（已选 " + n + " 篇）" : "（全部文档）";
    }
    // A ticked folder ticks (and locks) the listed documents under it; unticking frees them.
    list.addEventListener("change", function (e) {
      var folder = e.target.getAttribute && e.target.getAttribute("data-folder");
      if (folder) {
        options().forEach(function (li) {
          var box = boxOf(li);
          if (box === e.target || box.value.indexOf(folder) !== 0) return;
          box.checked = box.disabled = e.target.checked;
        });
      }
      countSelected();
    });
    var clearBtn = document.getElementById("doc-picker-clear");
    if (clearBtn) {
      clearBtn.addEventListener("click", function () {
        Array.prototype.forEach.call(form.querySelectorAll('input[name="doc"]'), function (c) {
          c.checked = false;
          c.disabled = false;
        });
        countSelected();
      });
    }
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {
      var area = el("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) resolve(); else reject(new Error("copy failed"));
    });
  }

  function initCopy() {
    document.addEventListener("click", function (event) {
      var btn = event.target.closest ? event.target.closest(".copy-cite") : null;
      if (!btn) return;
      var label = btn.getAttribute("data-label") || "复制引用";
      copyText(btn.getAttribute("data-copy") || "").then(function () {
        btn.textContent = "已复制";
        btn.classList.add("copied");
      }, function () {
        btn.textContent = "复制失败，请手动选择文字";
      });
      window.setTimeout(function () { btn.textContent = label; btn.classList.remove("copied"); }, 2500);
    });
  }

  /* After a results page loads, the keyboard starts at the answer (or the first result, or the no-answer note). */
  function initFocus() {
    if (!document.getElementById("results")) return;
    var target = document.getElementById("answer-box") || document.getElementById("no-answer") ||
                 document.querySelector("#results .result");
    if (!target) return;
    if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
    try { target.focus({ preventScroll: true }); } catch (e) { target.focus(); }
  }

  function initBatch() {
    var input = document.getElementById("batch-file");
    if (!input) return;
    var label = input.parentNode.querySelector(".file-drop-text");
    input.addEventListener("change", function () {
      var f = input.files && input.files[0];
      label.textContent = f ? "已选择：" + f.name : (label.getAttribute("data-empty") || "选择问题文件");
    });
  }

  function initTrash() {
    var list = document.getElementById("trash-list");
    if (!list) return;
    var status = document.getElementById("trash-status");
    function say(text, kind) {
      status.textContent = text;
      status.className = "doc-status" + (kind ? " " + kind : "");
      status.hidden = !text;
    }
    list.addEventListener("click", function (event) {
      var btn = event.target.closest ? event.target.closest(".restore-btn") : null;
      if (!btn) return;
      var name = btn.getAttribute("data-name") || "";
      var headers = { Accept: "application/json" };
      var token = adminToken();
      if (token) headers["X-Admin-Token"] = token;
      btn.disabled = true;
      fetch(btn.getAttribute("data-url"), { method: "POST", headers: headers })
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (data) { return { ok: r.ok, data: data }; });
        })
        .then(function (res) {
          if (!res.ok) {
            btn.disabled = false;
            say("恢复失败：" + errorMessage(res.data, "未知错误"), "error");
            return;
          }
          var item = btn.closest(".trash-item");
          if (item) item.parentNode.removeChild(item);
          say("正在恢复“" + name + "”，进度见“索引任务”，完成后出现在文档列表中。", "ok");
          pollJobsNow();
        })
        .catch(function () { btn.disabled = false; say("恢复失败：无法连接服务器。", "error"); });
    });
  }

  /* 停用 / 启用 on the document page's passages (editors): POST /api/passages/<pid>/disable|enable (# as %23). */
  function initPassageToggles() {
    var body = document.getElementById("doc-body");
    if (!body || !body.querySelector(".passage-toggle")) return;
    body.addEventListener("click", function (event) {
      var btn = event.target.closest ? event.target.closest(".passage-toggle") : null;
      if (!btn) return;
      var disabling = btn.getAttribute("data-state") !== "disabled";
      var headers = { Accept: "application/json" };
      var tok = adminToken();
      if (tok) headers["X-Admin-Token"] = tok;
      btn.disabled = true;
      var url = root() + "api/passages/" + encodeURIComponent(btn.getAttribute("data-pid")) +
                (disabling ? "/disable" : "/enable");
      fetch(url, { method: "POST", headers: headers })
        .then(function (r) { return r.json().catch(function () { return {}; }).then(function (d) { return { ok: r.ok, data: d }; }); })
        .then(function (res) {
          btn.disabled = false;
          if (!res.ok) { window.alert((disabling ? "停用" : "启用") + "失败：" + errorMessage(res.data, "未知错误")); return; }
          btn.setAttribute("data-state", disabling ? "disabled" : "enabled");
          btn.textContent = disabling ? "启用" : "停用";
          var section = btn.closest(".doc-passage");
          if (section) section.classList.toggle("passage-disabled", disabling);
          var link = section ? section.querySelector(".std-add-btn") : null;  // a disabled passage answers nothing
          if (link) { link.disabled = disabling; link.title = disabling ? "已停用的段落不能作为标准答案" : ""; }
        })
        .catch(function () { btn.disabled = false; window.alert("操作失败：无法连接服务器。"); });
    });
  }

  /* 有用 / 没用 on a result card: POST /api/feedback (a reader may; the token, if any, names the user). */
  function initFeedback() {
    var list = document.getElementById("results");
    if (!list) return;
    list.addEventListener("click", function (event) {
      var btn = event.target.closest ? event.target.closest(".fb-btn") : null;
      if (!btn) return;
      var headers = { Accept: "application/json", "Content-Type": "application/json" };
      var token = adminToken();
      if (token) headers["X-Admin-Token"] = token;
      var group = btn.parentNode;
      var body = { question: list.getAttribute("data-q") || "", pid: btn.getAttribute("data-pid"),
                   useful: btn.getAttribute("data-useful") === "1", mode: list.getAttribute("data-mode") || "" };
      btn.disabled = true;
      fetch(root() + "api/feedback", { method: "POST", headers: headers, body: JSON.stringify(body) })
        .then(function (r) { return r.json().catch(function () { return {}; }).then(function (d) { return { ok: r.ok, data: d }; }); })
        .then(function (res) {
          btn.disabled = false;
          if (!res.ok) { btn.title = "反馈失败：" + errorMessage(res.data, "未知错误"); return; }
          Array.prototype.forEach.call(group.querySelectorAll(".fb-btn"), function (b) { b.classList.remove("chosen"); });
          btn.classList.add("chosen");
          btn.title = "已记录，谢谢反馈";
        })
        .catch(function () { btn.disabled = false; btn.title = "反馈失败：无法连接服务器。"; });
    });
  }

  /* The 反馈 page opened without an editor's token in the request: load the page again with the token kept here
     and show its lists; its export link then downloads with that token too (a plain link cannot send it). */
  function initFeedbackPage() {
    var rootNode = document.getElementById("feedback-root");
    if (!rootNode) return;
    var token = adminToken();
    document.addEventListener("click", function (event) {
      var link = event.target.closest ? event.target.closest("#feedback-export") : null;
      if (!link || !adminToken()) return;
      event.preventDefault();
      fetch(link.href, { headers: { "X-Admin-Token": adminToken() } })
        .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.blob(); })
        .then(function (blob) {
          var a = el("a");
          a.href = URL.createObjectURL(blob);
          a.download = "feedback-eval.jsonl";
          document.body.appendChild(a);
          a.click();
          document.body.removeChild(a);
          window.setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
        })
        .catch(function () { window.alert("导出失败：该令牌没有编辑权限，或无法连接服务器。"); });
    });
    var note = document.getElementById("feedback-token-note");
    if (!note || !token) return;
    fetch(window.location.href, { headers: { Accept: "text/html", "X-Admin-Token": token } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        var fresh = html ? new DOMParser().parseFromString(html, "text/html").getElementById("feedback-root") : null;
        if (!fresh || fresh.querySelector("#feedback-token-note")) {
          note.textContent = "该令牌没有编辑权限，无法查看反馈。";
          return;
        }
        rootNode.parentNode.replaceChild(document.importNode(fresh, true), rootNode);
      })
      .catch(function () { note.textContent = "无法读取反馈：无法连接服务器。"; });
  }

  // The documents page's 修改文档信息 form is a plain form: it carries the kept token in its hidden field.
  function initMetaForm() {
    var field = document.getElementById("meta-token");
    if (!field) return;
    field.form.addEventListener("submit", function () { field.value = adminToken(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    initAccount();
    initMetaForm();
    initFeedback();
    initFeedbackPage();
    initPassageToggles();
    initFocus();
    initBatch();
    initTrash();
    initDocument();
    initDocuments();
    initJobs();
    initSearchOptions();
    initRecent();
    initCopy();
  });
})();
