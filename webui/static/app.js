/* PartyQA web UI: document-view scrolling, upload with progress, delete. No external code. */
(function () {
  "use strict";

  var TOKEN_KEY = "partyqa-admin-token";
  var STATUS_LABELS = { added: "已添加", updated: "已更新", unchanged: "未变化", error: "失败" };

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

  function adminToken() {
    var input = document.getElementById("admin-token");
    var value = input ? input.value.trim() : "";
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else value = sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (e) { /* storage disabled */ }
    return value;
  }

  function errorMessage(data, fallback) {
    if (data && data.error) return data.error.message_zh || data.error.message_en || fallback;
    return fallback;
  }

  /* ---------------------------------------------------------------- document view */
  function initDocument() {
    var article = document.getElementById("document");
    if (!article) return;
    var chosenId = article.getAttribute("data-chosen");
    if (!chosenId) return;
    var target = document.getElementById(chosenId);
    if (!target) return;
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
      var cell = el("td", null, "还没有文档，请先上传。");
      cell.colSpan = 5;
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
      tr.appendChild(title);
      var kind = el("td");
      kind.appendChild(el("span", "badge", d.kind));
      tr.appendChild(kind);
      tr.appendChild(el("td", "num", String(d.passages)));
      tr.appendChild(el("td", "date", formatDate(d.added_at)));
      var action = el("td");
      var btn = el("button", "btn btn-small btn-danger delete-btn", "删除");
      btn.type = "button";
      btn.setAttribute("data-url", root() + "api/documents/" + encodePath(d.doc_id));
      btn.setAttribute("data-title", d.title);
      action.appendChild(btn);
      tr.appendChild(action);
      tbody.appendChild(tr);
    });
    var count = document.getElementById("doc-count");
    if (count) count.textContent = String(docs.length);
    var passages = document.getElementById("passage-count");
    if (passages) {
      passages.textContent = String(docs.reduce(function (sum, d) { return sum + (d.passages || 0); }, 0));
    }
  }

  function refreshDocuments() {
    return fetch(root() + "api/documents", { headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) { renderRows(data.documents || []); })
      .catch(function () { setStatus("刷新文档列表失败，请刷新页面。", "error"); });
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
        return r.json().catch(function () { return {}; }).then(function (data) { return { ok: r.ok, data: data }; });
      })
      .then(function (res) {
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
      if (f.reason) li.appendChild(el("span", "upload-reason", f.reason));
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
    var statusText = document.getElementById("upload-status");
    var results = document.getElementById("upload-results");
    var label = form.querySelector(".file-drop-text");
    var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10) || 0;

    var tokenInput = document.getElementById("admin-token");
    if (tokenInput) {
      try { tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { /* ignore */ }
      tokenInput.addEventListener("change", adminToken);
    }

    input.addEventListener("change", function () {
      var names = Array.prototype.map.call(input.files, function (f) { return f.name; });
      label.textContent = names.length ? "已选择 " + names.length + " 个文件：" + names.join("、") : "选择文件（可多选）";
    });

    function done(message, kind) {
      button.disabled = false;
      progress.classList.remove("indexing");
      statusText.textContent = message;
      statusText.className = "progress-text " + (kind || "");
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var files = input.files;
      if (!files || !files.length) {
        progress.hidden = false;
        fill.style.width = "0%";
        done("请先选择要上传的文件。", "error");
        return;
      }
      var total = 0;
      var data = new FormData();
      Array.prototype.forEach.call(files, function (f) { total += f.size; data.append("files", f, f.name); });
      if (maxBytes && total > maxBytes) {
        progress.hidden = false;
        fill.style.width = "0%";
        done("文件总大小超过上限（" + Math.round(maxBytes / 1048576) + " MB），请分批上传。", "error");
        return;
      }
      renderResults(results, []);
      button.disabled = true;
      progress.hidden = false;
      fill.style.width = "0%";
      statusText.className = "progress-text";
      statusText.textContent = "正在上传 0%";

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
      xhr.upload.onload = function () {
        fill.style.width = "100%";
        progress.classList.add("indexing");
        statusText.textContent = "上传完成，正在建立索引（较大的文件需要几分钟）…";
      };
      xhr.onload = function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status >= 200 && xhr.status < 300 && body) {
          renderResults(results, body.files);
          var ok = (body.files || []).filter(function (f) { return f.status !== "error"; }).length;
          var failed = (body.files || []).length - ok;
          done("处理完成：成功 " + ok + " 个" + (failed ? "，失败 " + failed + " 个" : "") + "。", failed ? "warn" : "ok");
          form.reset();
          label.textContent = "选择文件（可多选）";
          refreshDocuments();
        } else {
          if (body && body.files) renderResults(results, body.files);
          done("上传失败：" + errorMessage(body, "服务器返回 " + xhr.status), "error");
        }
      };
      xhr.onerror = function () { done("上传失败：无法连接服务器，或文件过大。", "error"); };
      xhr.send(data);
    });
  }

  function initDocuments() {
    var table = document.getElementById("doc-table");
    if (table) table.addEventListener("click", onDelete);
    initUpload();
  }

  document.addEventListener("DOMContentLoaded", function () {
    initDocument();
    initDocuments();
  });
})();
