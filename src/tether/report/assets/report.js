// tether run report: sorting and paging the task table, highlighting a group, and, on the
// live page, fetching the new view while the run goes on. Everything else is plain markup.
(function () {
  "use strict";
  var PAGE = 100;
  var table = { key: null, dir: 1, filter: "", page: 0 };
  var data = null, order = null;

  function seconds(v) {
    if (v === 0) return "0 s";
    var a = Math.abs(v);
    if (a < 1e-3) return (v * 1e6).toFixed(0) + " µs";
    if (a < 1) return (v * 1e3).toFixed(1) + " ms";
    if (a < 120) return v.toFixed(2) + " s";
    return Math.floor(v / 60) + " min " + (v % 60).toFixed(0) + " s";
  }
  function bytes(v) {
    var units = ["B", "kB", "MB", "GB", "TB"], i = 0;
    while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    return i === 0 ? v.toFixed(0) + " B" : v.toFixed(1) + " " + units[i];
  }
  function show(v, type) {
    if (v === null || v === undefined) return "–";
    if (type === "s") return seconds(v);
    if (type === "B") return bytes(v);
    return String(v);
  }

  function arrange() {
    var rows = data.rows, f = table.filter.trim().toLowerCase(), idx = [];
    for (var i = 0; i < rows.length; i++) {
      if (!f) { idx.push(i); continue; }
      var r = rows[i];
      for (var c = 0; c < r.length; c++) {
        if (r[c] !== null && String(r[c]).toLowerCase().indexOf(f) >= 0) { idx.push(i); break; }
      }
    }
    if (table.key !== null) {
      var k = table.key, dir = table.dir, numeric = data.columns[k].type !== "text";
      idx.sort(function (a, b) {
        var x = rows[a][k], y = rows[b][k];
        if (x === null || y === null) return (x === null) - (y === null) || a - b;   // empty cells last
        var d = numeric ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
        return d * dir || a - b;
      });
    }
    order = idx;
  }

  function draw() {
    var el = document.getElementById("task-table");
    if (!el || !data) return;
    var pages = Math.max(1, Math.ceil(order.length / PAGE));
    table.page = Math.min(table.page, pages - 1);
    var body = el.tBodies[0], frag = document.createDocumentFragment();
    var from = table.page * PAGE, to = Math.min(order.length, from + PAGE);
    for (var i = from; i < to; i++) {
      var r = data.rows[order[i]], tr = document.createElement("tr");
      tr.setAttribute("data-task", r[0]);
      for (var c = 0; c < r.length; c++) {
        var td = document.createElement("td"), col = data.columns[c];
        td.textContent = show(r[c], col.type);
        td.className = (col.type === "text" ? "" : "num") + (col.key === "what" ? " what" : "") +
          (col.key === "state" && r[c] === "failed" ? " failed" : "");
        if (col.key === "what" && r[c]) td.title = r[c];
        tr.appendChild(td);
      }
      frag.appendChild(tr);
    }
    body.replaceChildren(frag);
    var heads = el.tHead.rows[0].cells;
    for (var h = 0; h < heads.length; h++) {
      heads[h].className = h === table.key ? (table.dir > 0 ? "asc" : "desc") : "";
    }
    var pager = document.getElementById("task-pager");
    pager.replaceChildren();
    pager.appendChild(document.createTextNode(
      (order.length ? (from + 1) + "–" + to : "0") + " of " + order.length +
      (order.length !== data.rows.length ? " (of " + data.rows.length + " tasks)" : " tasks") + " "));
    [["«", 0], ["‹", table.page - 1], ["›", table.page + 1], ["»", pages - 1]].forEach(function (b) {
      var button = document.createElement("button");
      button.textContent = b[0];
      button.disabled = b[1] < 0 || b[1] >= pages || b[1] === table.page;
      button.addEventListener("click", function () { table.page = b[1]; draw(); });
      pager.appendChild(button);
    });
  }

  function sortBy(k) {
    if (table.key === k) table.dir = -table.dir; else { table.key = k; table.dir = 1; }
    table.page = 0;
    arrange(); draw();
  }

  function wireTable() {
    var source = document.getElementById("task-data"), el = document.getElementById("task-table");
    if (!source || !el) return;
    data = JSON.parse(source.textContent);
    var head = el.tHead.rows[0];
    head.replaceChildren();
    data.columns.forEach(function (col, k) {
      var th = document.createElement("th");
      th.textContent = col.label;
      th.setAttribute("data-key", col.key);
      th.title = "sort by " + col.label;
      th.addEventListener("click", function () { sortBy(k); });
      head.appendChild(th);
    });
    var filter = document.getElementById("task-filter");
    filter.value = table.filter;
    filter.addEventListener("input", function () { table.filter = filter.value; table.page = 0; arrange(); draw(); });
    arrange(); draw();
  }

  function wireTimeline() {
    var svg = document.getElementById("timeline-svg");
    if (!svg) return;
    var lit = [];
    svg.addEventListener("mouseover", function (e) {
      var bar = e.target.closest && e.target.closest(".bar[data-group]");
      if (!bar) return;
      var sel = '.bar[data-group="' + CSS.escape(bar.getAttribute("data-group")) + '"]';
      lit = Array.prototype.slice.call(svg.querySelectorAll(sel));
      lit.forEach(function (b) { b.classList.add("on"); });
      svg.classList.add("focus");
    });
    svg.addEventListener("mouseout", function () {
      lit.forEach(function (b) { b.classList.remove("on"); });
      lit = [];
      svg.classList.remove("focus");
    });
    svg.addEventListener("click", function (e) {
      var bar = e.target.closest && e.target.closest("[data-task]");
      if (!bar || !data) return;
      table.filter = bar.getAttribute("data-task"); table.page = 0;
      document.getElementById("task-filter").value = table.filter;
      arrange(); draw();
      document.getElementById("tasks").scrollIntoView({ behavior: "smooth" });
    });
    var toggle = document.getElementById("show-transfers");
    toggle.checked = !table.hideTransfers;
    svg.classList.toggle("hide-transfers", !!table.hideTransfers);
    toggle.addEventListener("change", function () {
      table.hideTransfers = !toggle.checked;
      svg.classList.toggle("hide-transfers", table.hideTransfers);
    });
  }

  function wire() { wireTable(); wireTimeline(); }

  function live() {
    var body = document.body, status = document.getElementById("live-status");
    var every = Number(body.getAttribute("data-refresh")) || 1000;
    function tick() {
      fetch("state.json", { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (s) {
        var current = document.getElementById("report").getAttribute("data-version");
        var note = s.error ? "live · " + s.error : "live · " + s.tasks + " tasks, " + s.done + " done, " + s.failed + " failed · " +
          new Date().toLocaleTimeString();
        if (String(s.version) === current) { status.textContent = note; return null; }
        return fetch("view", { cache: "no-store" }).then(function (r) { return r.text(); }).then(function (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var fresh = holder.firstElementChild;
          if (fresh && fresh.id === "report") {
            var typing = document.activeElement && document.activeElement.id === "task-filter";
            document.getElementById("report").replaceWith(fresh);
            wire();
            if (typing) { var f = document.getElementById("task-filter"); f.focus(); f.setSelectionRange(f.value.length, f.value.length); }
          }
          status.textContent = note;
        });
      }).catch(function (e) {
        status.textContent = "live · cannot reach the run (" + e.message + ")";
      }).then(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }

  wire();
  if (document.body.hasAttribute("data-live")) live();
})();
