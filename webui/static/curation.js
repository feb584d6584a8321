/* PartyQA curation pages (issue 26): the 问答对 page (import, edit, delete FAQ entries), the 操作记录 page, and
   标准问题 (设为标准答案 on a result card, 关联问题 on a document's passage) for editors. The token is the one app.js
   keeps (entered under 登录令牌 in the nav, in localStorage), which also shows the controls the token's role may use.
   No external code; data is only ever set as text (never innerHTML). */
(function () {
  "use strict";

  function root() { return document.body.getAttribute("data-root") || "/"; }

  // The token app.js keeps (localStorage, entered under 登录令牌 in the nav).
  function keptToken() { return window.PartyQA ? window.PartyQA.adminToken() : ""; }

  // An element with a class and text (app.js's builder: data only ever as text, never innerHTML).
  function el(tag, className, text) { return window.PartyQA.el(tag, className, text); }

  function headers(extra) {
    var h = { Accept: "application/json" };
    var token = keptToken();
    if (token) h["X-Admin-Token"] = token;
    Object.keys(extra || {}).forEach(function (k) { h[k] = extra[k]; });
    return h;
  }

  function errorText(data, fallback) {
    return (data && data.error && (data.error.message_zh || data.error.message_en)) || fallback;
  }

  // fetch -> {ok, status, data}; a failed connection rejects
  function call(url, options) {
    return fetch(url, options).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (d) { return { ok: r.ok, status: r.status, data: d }; });
    });
  }

  function encodePath(id) { return id.split("/").map(encodeURIComponent).join("/"); }

  function say(node, text, kind) {
    if (!node) return;
    node.textContent = text;
    node.className = "doc-status" + (kind ? " " + kind : "");
    node.hidden = !text;
  }

  /* ---------------------------------------------------------------- 问答对 */
  function initFaq() {
    var rootNode = document.getElementById("faq-root");
    if (!rootNode) return;
    var status = document.getElementById("faq-status");

    var form = document.getElementById("faq-import-form");
    var fileInput = document.getElementById("faq-file");
    var importStatus = document.getElementById("faq-import-status");
    if (fileInput) {
      var label = fileInput.parentNode.querySelector(".file-drop-text");
      fileInput.addEventListener("change", function () {
        var f = fileInput.files && fileInput.files[0];
        label.textContent = f ? "已选择：" + f.name : label.getAttribute("data-empty");
      });
    }
    if (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var f = fileInput.files && fileInput.files[0];
        if (!f) { say(importStatus, "请先选择问答对文件（csv、xlsx 或 jsonl）。", "error"); return; }
        var data = new FormData();
        data.append("file", f, f.name);
        var btn = document.getElementById("faq-import-btn");
        btn.disabled = true;
        say(importStatus, "正在导入“" + f.name + "”……", "");
        call(form.getAttribute("action"), { method: "POST", headers: headers(), body: data })
          .then(function (res) {
            btn.disabled = false;
            if (!res.ok) { say(importStatus, "导入失败：" + errorText(res.data, "未知错误"), "error"); return; }
            say(importStatus, "已导入 " + res.data.entries.length + " 个问答对（" + res.data.file + "），可以检索了。", "ok");
            window.setTimeout(function () {
              window.location.href = root() + "faq?import=" + encodeURIComponent(res.data["import"] || "");
            }, 800);
          })
          .catch(function () { btn.disabled = false; say(importStatus, "导入失败：无法连接服务器。", "error"); });
      });
    }

    function entryUrl(row) { return root() + "api/faq/" + encodePath(row.getAttribute("data-doc-id")); }

    function cell(row, name) { return row.querySelector(".faq-" + name); }

    function startEdit(row) {
      if (row.classList.contains("editing")) return;
      row.classList.add("editing");
      var question = cell(row, "question").querySelector("a");
      var fields = { question: question.textContent, answer: cell(row, "answer").textContent,
                     source: cell(row, "source").textContent };
      row.setAttribute("data-before", JSON.stringify(fields));
      ["question", "answer", "source"].forEach(function (name) {
        var td = cell(row, name);
        var box = document.createElement(name === "source" ? "input" : "textarea");
        box.className = "faq-input faq-input-" + name;
        box.setAttribute("aria-label", { question: "问题", answer: "答案", source: "来源" }[name]);
        box.value = fields[name];
        if (name === "question") { question.hidden = true; td.insertBefore(box, question); }
        else { td.textContent = ""; td.appendChild(box); }
      });
      var actions = cell(row, "actions");
      Array.prototype.forEach.call(actions.querySelectorAll("button"), function (b) {
        if (!b.hidden) { b.classList.add("faq-held"); b.hidden = true; }
      });
      var save = el("button", "btn btn-small btn-primary faq-save-btn", "保存");
      save.type = "button";
      var cancel = el("button", "btn btn-small faq-cancel-btn", "取消");
      cancel.type = "button";
      actions.appendChild(save);
      actions.appendChild(cancel);
    }

    function endEdit(row, fields) {
      row.classList.remove("editing");
      var question = cell(row, "question").querySelector("a");
      var box = cell(row, "question").querySelector(".faq-input");
      if (box) box.parentNode.removeChild(box);
      question.hidden = false;
      question.textContent = fields.question;
      cell(row, "answer").textContent = fields.answer;
      cell(row, "source").textContent = fields.source;
      var actions = cell(row, "actions");
      Array.prototype.forEach.call(actions.querySelectorAll(".faq-save-btn, .faq-cancel-btn"), function (b) {
        b.parentNode.removeChild(b);
      });
      Array.prototype.forEach.call(actions.querySelectorAll(".faq-held"), function (b) {
        b.classList.remove("faq-held");
        b.hidden = false;
      });
    }

    function save(row, btn) {
      var body = {};
      ["question", "answer", "source"].forEach(function (name) {
        body[name] = row.querySelector(".faq-input-" + name).value;
      });
      btn.disabled = true;
      call(entryUrl(row), { method: "PATCH", headers: headers({ "Content-Type": "application/json" }),
                            body: JSON.stringify(body) })
        .then(function (res) {
          btn.disabled = false;
          if (!res.ok) { say(status, "保存失败：" + errorText(res.data, "未知错误"), "error"); return; }
          endEdit(row, res.data);
          var badge = row.querySelector(".state .badge");
          if (badge) { badge.textContent = "可检索"; badge.className = "badge badge-index-keyword"; }
          say(status, "已保存，新的内容可以检索了。", "ok");
        })
        .catch(function () { btn.disabled = false; say(status, "保存失败：无法连接服务器。", "error"); });
    }

    function remove(row, btn) {
      var question = cell(row, "question").querySelector("a").textContent;
      if (!window.confirm("确定删除问答对“" + question + "”吗？")) return;
      btn.disabled = true;
      call(entryUrl(row), { method: "DELETE", headers: headers() })
        .then(function (res) {
          if (!res.ok) { btn.disabled = false; say(status, "删除失败：" + errorText(res.data, "未知错误"), "error"); return; }
          row.parentNode.removeChild(row);
          var count = document.getElementById("faq-count");
          if (count) count.textContent = String(Math.max(0, parseInt(count.textContent, 10) - 1));
          say(status, "已删除问答对“" + question + "”。", "ok");
        })
        .catch(function () { btn.disabled = false; say(status, "删除失败：无法连接服务器。", "error"); });
    }

    var rows = document.getElementById("faq-rows");
    if (rows) {
      rows.addEventListener("click", function (event) {
        var btn = event.target.closest ? event.target.closest("button") : null;
        var row = btn ? btn.closest(".faq-row") : null;
        if (!row) return;
        if (btn.classList.contains("faq-edit-btn")) startEdit(row);
        else if (btn.classList.contains("faq-delete-btn")) remove(row, btn);
        else if (btn.classList.contains("faq-save-btn")) save(row, btn);
        else if (btn.classList.contains("faq-cancel-btn")) endEdit(row, JSON.parse(row.getAttribute("data-before")));
      });
    }

    var dropImport = document.getElementById("faq-delete-import");
    if (dropImport) {
      dropImport.addEventListener("click", function () {
        var name = dropImport.getAttribute("data-import");
        if (!window.confirm("确定删除“" + name + "”导入的全部问答对吗？")) return;
        dropImport.disabled = true;
        call(root() + "api/faq?import=" + encodeURIComponent(name), { method: "DELETE", headers: headers() })
          .then(function (res) {
            if (!res.ok) { dropImport.disabled = false; say(status, "删除失败：" + errorText(res.data, "未知错误"), "error"); return; }
            window.location.href = root() + "faq";
          })
          .catch(function () { dropImport.disabled = false; say(status, "删除失败：无法连接服务器。", "error"); });
      });
    }
  }

  /* ---------------------------------------------------------------- 标准问题 (standard questions) */
  // POST /api/standard_questions {question, pid}: link; DELETE {question}: unlink. -> {ok, data}
  function linkQuestion(question, pid) {
    return call(root() + "api/standard_questions", { method: "POST", headers: headers({ "Content-Type": "application/json" }),
                                                     body: JSON.stringify({ question: question, pid: pid }) });
  }

  function unlinkQuestion(question) {
    return call(root() + "api/standard_questions", { method: "DELETE", headers: headers({ "Content-Type": "application/json" }),
                                                     body: JSON.stringify({ question: question }) });
  }

  function standardBadge(question) {
    var badge = document.createElement("span");
    badge.className = "badge badge-standard";
    badge.textContent = "标准答案";
    badge.title = "标准问题：" + question;
    return badge;
  }

  // A result card's 设为标准答案 / 取消标准答案, for the page's question (#results data-q).
  function initResultLinks() {
    var list = document.getElementById("results");
    if (!list || !list.querySelector(".std-link-btn")) return;
    var status = document.getElementById("std-status");
    var question = list.getAttribute("data-q") || "";

    function setCard(card, linked) {
      var btn = card.querySelector(".std-link-btn");
      btn.setAttribute("data-linked", linked ? "1" : "0");
      btn.textContent = linked ? "取消标准答案" : "设为标准答案";
      var badge = card.querySelector(".badge-standard");
      if (linked && !badge) card.querySelector(".result-source").appendChild(standardBadge(question));
      if (!linked && badge) badge.parentNode.removeChild(badge);
    }

    list.addEventListener("click", function (event) {
      var btn = event.target.closest ? event.target.closest(".std-link-btn") : null;
      if (!btn) return;
      var card = btn.closest(".result");
      var linked = btn.getAttribute("data-linked") === "1";
      btn.disabled = true;
      (linked ? unlinkQuestion(question) : linkQuestion(question, btn.getAttribute("data-pid")))
        .then(function (res) {
          btn.disabled = false;
          if (!res.ok) { say(status, (linked ? "取消" : "设置") + "失败：" + errorText(res.data, "未知错误"), "error"); return; }
          // one passage answers a question: the link replaces the question's earlier one
          Array.prototype.forEach.call(list.querySelectorAll(".result"), function (c) {
            if (c.querySelector(".std-link-btn")) setCard(c, !linked && c === card);
          });
          var where = card.querySelector(".citation") ? card.querySelector(".citation").textContent : "";
          say(status, linked ? "已取消问题“" + question + "”的标准答案。"
                             : "已把“" + where + "”设为问题“" + question + "”的标准答案：再问这个问题或相近的问法时排在第一。", "ok");
        })
        .catch(function () { btn.disabled = false; say(status, "操作失败：无法连接服务器。", "error"); });
    });
  }

  // The document page's 关联问题 on each passage: enter a question, link it; 取消 removes a linked one.
  function initPassageLinks() {
    var body = document.getElementById("doc-body");
    if (!body || !body.querySelector(".std-add-btn")) return;

    function listOf(section) { return section.querySelector(".std-questions"); }

    function addItem(section, question) {
      var list = listOf(section);
      var li = document.createElement("li");
      li.className = "std-question";
      var badge = document.createElement("span");
      badge.className = "badge badge-standard";
      badge.textContent = "标准问题";
      var text = el("span", "std-q", question);
      var drop = el("button", "link-btn std-unlink-btn", "取消");
      drop.type = "button";
      drop.setAttribute("data-question", question);
      li.appendChild(badge);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(text);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(drop);
      list.appendChild(li);
      list.hidden = false;
    }

    function openForm(section, btn) {
      if (section.querySelector(".std-form")) { section.querySelector(".std-input").focus(); return; }
      var form = document.createElement("form");
      form.className = "std-form";
      var input = document.createElement("input");
      input.type = "text";
      input.className = "small-input std-input";
      input.maxLength = 200;
      input.placeholder = "输入一个问题，本段将作为它的标准答案";
      input.setAttribute("aria-label", "关联的问题");
      var save = el("button", "btn btn-small btn-primary std-save-btn", "保存");
      save.type = "submit";
      var cancel = el("button", "btn btn-small std-cancel-btn", "取消");
      cancel.type = "button";
      var note = document.createElement("p");
      note.className = "std-note";
      note.setAttribute("role", "status");
      form.appendChild(input);
      form.appendChild(save);
      form.appendChild(cancel);
      form.appendChild(note);
      listOf(section).parentNode.insertBefore(form, listOf(section).nextSibling);
      cancel.addEventListener("click", function () { form.parentNode.removeChild(form); btn.focus(); });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var question = input.value.trim();
        if (!question) { note.textContent = "请先输入问题。"; return; }
        save.disabled = true;
        linkQuestion(question, btn.getAttribute("data-pid")).then(function (res) {
          save.disabled = false;
          if (!res.ok) { note.textContent = "关联失败：" + errorText(res.data, "未知错误"); return; }
          // a question answers to one passage: drop it from another passage's list on this page
          Array.prototype.forEach.call(body.querySelectorAll(".std-unlink-btn"), function (b) {
            if (b.getAttribute("data-question") === res.data.question) dropItem(b);
          });
          addItem(section, res.data.question);
          form.parentNode.removeChild(form);
          btn.focus();
        }, function () { save.disabled = false; note.textContent = "关联失败：无法连接服务器。"; });
      });
      input.focus();
    }

    function dropItem(b) {
      var li = b.closest(".std-question");
      var list = li.parentNode;
      list.removeChild(li);
      if (!list.querySelector(".std-question")) list.hidden = true;
    }

    body.addEventListener("click", function (event) {
      var btn = event.target.closest ? event.target.closest(".std-add-btn, .std-unlink-btn") : null;
      if (!btn) return;
      var section = btn.closest(".doc-passage");
      if (btn.classList.contains("std-add-btn")) { openForm(section, btn); return; }
      var question = btn.getAttribute("data-question");
      btn.disabled = true;
      unlinkQuestion(question).then(function (res) {
        btn.disabled = false;
        if (!res.ok) { window.alert("取消失败：" + errorText(res.data, "未知错误")); return; }
        dropItem(btn);
      }, function () { btn.disabled = false; window.alert("取消失败：无法连接服务器。"); });
    });
  }

  /* ---------------------------------------------------------------- 操作记录 */
  // Opened without a token: load the same page again with the kept token and show its list.
  function initAudit() {
    var note = document.getElementById("audit-token-note");
    if (!note) return;
    function load() {
      if (!keptToken()) return;
      fetch(window.location.href, { headers: headers({ Accept: "text/html" }) })
        .then(function (r) {
          if (r.status === 403 || r.status === 401) { note.textContent = "该令牌不是管理员令牌，无权查看操作记录。"; return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (!html) return;
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("audit-root");
          var current = document.getElementById("audit-root");
          if (fresh && current && !fresh.querySelector("#audit-token-note")) {
            current.parentNode.replaceChild(document.importNode(fresh, true), current);
          }
        })
        .catch(function () { note.textContent = "无法读取操作记录：无法连接服务器。"; });
    }
    load();
  }

  document.addEventListener("DOMContentLoaded", function () {
    initFaq();
    initAudit();
    initResultLinks();
    initPassageLinks();
  });
})();
