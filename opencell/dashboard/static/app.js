// OpenCell dashboard: local times, charts, live updates. Data is only ever written with
// textContent (never innerHTML); the session page swaps in server-rendered, autoescaped HTML
// parsed by DOMParser (scripts in it never run).
(function () {
  "use strict";

  var pad = function (n) { return String(n).padStart(2, "0"); };

  function localTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return null;
    var today = new Date();
    var time = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    if (d.toDateString() === today.toDateString()) return "today " + time;
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + time;
  }

  function localiseTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var text = localTime(el.getAttribute("datetime"));
      if (text) {
        el.textContent = text;
        el.title = el.getAttribute("datetime");
      }
    });
  }

  function money(value) {
    var n = Number(value) || 0;
    var digits = Math.abs(n) >= 1 || n === 0 ? 2 : 4;
    return "$" + n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  // Share bars carry their width as data-pct: the CSP forbids style="" attributes in the
  // page, while setting a style from a script (CSSOM) is allowed.
  function drawShares(root) {
    root.querySelectorAll(".share-bar[data-pct]").forEach(function (el) {
      var pct = Math.max(0, Math.min(100, Number(el.getAttribute("data-pct")) || 0));
      el.style.width = pct + "%";
    });
  }

  // ------------------------------------------------------------------ charts (uPlot)
  // The x axis of a chart's JSON: "days" (YYYY-MM-DD) or "hours" (YYYY-MM-DDTHH:00Z), each
  // point in the middle of its UTC day or hour; "half" is half a step, the padding that keeps
  // the first and last bars or points whole. trends.js uses it too.
  window.OpenCellTime = {
    axis: function (data) {
      if (data.hours && data.hours.length) {
        return { xs: data.hours.map(function (h) { return Date.parse(h) / 1000 + 1800; }), half: 1800,
                 label: "Hour (UTC)", format: function (v) { return v == null ? "—" : new Date((v - 1800) * 1000).toISOString().slice(0, 16).replace("T", " "); } };
      }
      return { xs: (data.days || []).map(function (d) { return Date.parse(d + "T12:00:00Z") / 1000; }), half: 43200,
               label: "Day (UTC)", format: function (v) { return v == null ? "—" : new Date(v * 1000).toISOString().slice(0, 10); } };
    },
    utc: function (ts) { return typeof uPlot !== "undefined" && uPlot.tzDate ? uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC") : new Date(ts * 1e3); },
  };

  var PALETTE = ["#6366f1", "#f79009", "#12b76a", "#ee46bc", "#2e90fa", "#875bf7", "#f04438", "#15b79e"];
  var colours = {};
  var GRID = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches
    ? "#272b38" : "#f0f2f5";
  // One colour per name across the page's charts, in the order names are first drawn.
  function colourOf(name) {
    if (!(name in colours)) colours[name] = PALETTE[Object.keys(colours).length % PALETTE.length];
    return colours[name];
  }

  function drawChart(el) {
    var source = document.getElementById(el.getAttribute("data-source"));
    if (!source || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    var list = data.series || [];
    var names = list.map(function (s) { return s.name; });
    var values = {};
    list.forEach(function (s) { values[s.name] = s.values; });
    var x = window.OpenCellTime.axis(data);
    var days = x.xs;
    var unit = el.getAttribute("data-unit") || "";
    var hasValues = list.some(function (s) { return s.values.some(function (v) { return v > 0; }); });
    el.textContent = "";
    if (!days.length || !hasValues) {
      var empty = document.createElement("div");
      empty.className = "chart-empty";
      empty.textContent = "Nothing recorded in this range";
      el.appendChild(empty);
      return;
    }
    var xs = x.xs;
    // Stacked bars: each series is drawn as the running sum of the ones before it.
    var top = names.slice(0, 6);
    var others = names.slice(6);
    var rows = top.map(function (k) { return values[k].slice(); });
    if (others.length) {
      rows.push(days.map(function (_, i) { return others.reduce(function (s, k) { return s + values[k][i]; }, 0); }));
      top.push("others");
    }
    var stacked = [];
    var acc = days.map(function () { return 0; });
    rows.forEach(function (row) {
      acc = acc.map(function (v, i) { return v + row[i]; });
      stacked.push(acc.slice());
    });
    var fmt = function (v) { return v == null ? "—" : unit === "$" ? money(v) : Number(v).toLocaleString("en-US"); };
    var series = [{ label: x.label, value: function (u, v) { return x.format(v); } }];
    var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 28], gap: 1 }) : undefined;
    // uPlot paints series in order: the tallest (cumulative) stack first, smaller ones over it.
    var order = top.map(function (_, i) { return i; }).reverse();
    top.forEach(colourOf);
    order.forEach(function (i) {
      var color = colourOf(top[i]);
      series.push({
        label: top[i], stroke: color, fill: color, width: 0, paths: bars, points: { show: false },
        value: function (u, v, si, di) { return di == null ? "—" : fmt(rows[i][di]); },
      });
    });
    var width = Math.max(280, el.clientWidth);
    var opts = {
      width: width, height: 240, series: series, cursor: { points: { show: false } }, tzDate: window.OpenCellTime.utc,
      legend: { live: true },
      // Half a step either side: the first and last bars are drawn whole, not cut in half.
      scales: { x: { time: true, range: function (u, min, max) { return [min - x.half, max + x.half]; } }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      axes: [
        { stroke: "#667085", grid: { show: false }, ticks: { stroke: GRID } },
        { stroke: "#667085", grid: { stroke: GRID }, ticks: { show: false }, size: 64,
          values: function (u, vals) { return vals.map(function (v) { return unit === "$" ? money(v) : String(v); }); } },
      ],
    };
    var plotData = [xs].concat(order.map(function (i) { return stacked[i]; }));
    var chart = new uPlot(opts, plotData, el);
    el._chart = chart;
  }

  function drawCharts() {
    document.querySelectorAll("[data-chart]").forEach(drawChart);
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      document.querySelectorAll("[data-chart]").forEach(function (el) {
        if (el._chart) el._chart.setSize({ width: Math.max(280, el.clientWidth), height: 240 });
      });
    }, 150);
  });

  // ------------------------------------------------------------------ live updates (SSE)
  var indicator = document.getElementById("live-indicator");
  function setLive(state, text) {
    if (!indicator) return;
    indicator.classList.remove("on", "off");
    if (state) indicator.classList.add(state);
    indicator.querySelector(".label").textContent = text;
  }

  function applyTick(tick) {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var key = el.getAttribute("data-live");
      if (!(key in tick)) return;
      el.textContent = el.getAttribute("data-format") === "money" ? money(tick[key]) : Number(tick[key]).toLocaleString("en-US");
    });
  }

  function connect(url, handlers) {
    if (typeof EventSource === "undefined") return null;
    var source = new EventSource(url);
    source.onopen = function () { setLive("on", "live"); };
    source.onerror = function () { setLive("off", "reconnecting…"); };
    source.addEventListener("tick", function (e) { applyTick(JSON.parse(e.data)); });
    source.addEventListener("bye", function () { source.close(); setLive("off", "server stopped"); });
    Object.keys(handlers).forEach(function (kind) {
      source.addEventListener(kind, function (e) { handlers[kind](JSON.parse(e.data)); });
    });
    return source;
  }

  function sessionsPage() {
    var fresh = 0;
    var banner = document.getElementById("new-sessions");
    connect("/api/stream", {
      sessions: function (change) {
        (change.ended || []).forEach(function (end) {
          var row = document.querySelector('tr[data-session-id="' + CSS.escape(end.id) + '"]');
          if (!row) return;
          var badge = row.querySelector("[data-status]");
          var crashed = end.reason === "interrupted";
          badge.textContent = crashed ? "interrupted" : end.status;
          badge.className = "badge " + (crashed ? "badge-interrupted" : end.status === "failed" ? "badge-failed" : "badge-success");
          row.classList.remove("is-open");
        });
        fresh += (change.started || []).length;
        if (fresh && banner) {
          banner.querySelector(".text").textContent = fresh + " new session" + (fresh === 1 ? "" : "s") + " since this page loaded.";
          banner.querySelector(".reload").setAttribute("href", window.location.pathname + window.location.search);
          banner.hidden = false;
        }
      },
      resync: function () { if (banner) { banner.querySelector(".text").textContent = "Many sessions changed."; banner.hidden = false; } },
    });
    document.querySelectorAll("tr[data-href]").forEach(function (row) {
      row.addEventListener("click", function (e) {
        if (e.target.closest("a") || window.getSelection().toString()) return;
        window.location.href = row.getAttribute("data-href");
      });
    });
  }

  function sessionPage() {
    var body = document.body;
    var id = body.getAttribute("data-session-id");
    var region = document.getElementById("live-region");
    if (!region) return;
    if (body.getAttribute("data-session-open") !== "true") {
      connect("/api/stream", {});
      return;
    }
    var pending = null;
    var source = null;
    function refresh() {
      pending = null;
      fetch("/sessions/" + encodeURIComponent(id) + "/live", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var next = doc.querySelector(".detail-grid");
          if (!next) return;
          // Keep open whatever the reader had expanded.
          var opened = [];
          region.querySelectorAll("[data-event-id]").forEach(function (li) {
            li.querySelectorAll("details").forEach(function (d, i) {
              if (d.open) opened.push([li.getAttribute("data-event-id"), i]);
            });
          });
          var current = region.querySelector(".detail-grid");
          var adopted = document.importNode(next, true);
          localiseTimes(adopted);
          opened.forEach(function (pair) {
            var li = adopted.querySelector('[data-event-id="' + CSS.escape(pair[0]) + '"]');
            var d = li && li.querySelectorAll("details")[pair[1]];
            if (d) d.open = true;
          });
          current.replaceWith(adopted);
          if (adopted.getAttribute("data-status") !== "open" && source) {
            source.close();
            setLive("on", "session ended");
          }
        })
        .catch(function () { setLive("off", "update failed"); });
    }
    var after = region.getAttribute("data-last-event-id") || "0";
    source = connect("/api/stream?session=" + encodeURIComponent(id) + "&after=" + encodeURIComponent(after), {
      timeline: function () { if (!pending) pending = setTimeout(refresh, 250); },
      resync: function () { if (!pending) pending = setTimeout(refresh, 250); },
    });
  }

  function autosubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () { if (el.form) el.form.submit(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localiseTimes(document);
    drawShares(document);
    drawCharts();
    autosubmit();
    var page = document.body.getAttribute("data-page");
    if (page === "sessions") sessionsPage();
    else if (page === "session") sessionPage();
    else connect("/api/stream", {});
  });
})();
