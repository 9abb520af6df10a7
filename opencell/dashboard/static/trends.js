/* Trend lines of the analytics page (uPlot): one line per series, a gap for a day or hour
   without data, values on hover (the legend), drag across to zoom, double-click to reset.
   Each point sits in the middle of its UTC day or hour, and the x scale reaches half a step
   past the first and last, so neither is clipped. Axis labels are UTC, like the data.
   Data comes from <script type="application/json"> blocks; text is set with textContent. */
(function () {
  "use strict";
  if (typeof uPlot === "undefined") return;
  var PALETTE = ["#6366f1", "#f79009", "#12b76a", "#ee46bc", "#2e90fa", "#875bf7", "#f04438", "#15b79e"];
  var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  var AXIS = dark ? "#9aa3b5" : "#667085";
  var GRID = dark ? "#272b38" : "#f0f2f5";

  function format(unit, v) {
    if (v == null || isNaN(v)) return "—";
    if (unit === "$") return "$" + Number(v).toLocaleString("en-US", { minimumFractionDigits: v >= 1 || v === 0 ? 2 : 4, maximumFractionDigits: v >= 1 || v === 0 ? 2 : 4 });
    if (unit === "ms") return v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms";
    if (unit === "%") return Number(v).toFixed(1) + "%";
    if (unit === "tokens") return v >= 1e6 ? (v / 1e6).toFixed(1) + "M" : v >= 1e3 ? (v / 1e3).toFixed(1) + "k" : String(Math.round(v));
    return String(v);
  }

  function draw(el) {
    var source = document.getElementById(el.getAttribute("data-source"));
    if (!source) return;
    var data = JSON.parse(source.textContent);
    var unit = data.unit || "";
    var list = (data.series || []).filter(function (s) { return s.values.some(function (v) { return v != null; }); });
    el.textContent = "";
    if (!(data.hours || data.days || []).length || !list.length) {
      var empty = document.createElement("div");
      empty.className = "chart-empty";
      empty.textContent = "Nothing recorded in this range";
      el.appendChild(empty);
      return;
    }
    var x = window.OpenCellTime.axis(data);
    var xs = x.xs;
    var series = [{ label: x.label, value: function (u, v) { return x.format(v); } }];
    list.forEach(function (s, i) {
      series.push({ label: s.name, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: false,
                    points: { show: true, size: xs.length <= 31 ? 5 : 3 },
                    value: function (u, v) { return format(unit, v); } });
    });
    var opts = {
      width: Math.max(280, el.clientWidth), height: 220, series: series,
      cursor: { drag: { x: true, y: false, setScale: true } },
      legend: { live: true },
      tzDate: window.OpenCellTime.utc,
      scales: { x: { time: true, range: function (u, min, max) { return [min - x.half, max + x.half]; } },
                y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.15 : 1]; } } },
      axes: [
        { stroke: AXIS, grid: { show: false }, ticks: { stroke: GRID } },
        { stroke: AXIS, grid: { stroke: GRID }, ticks: { show: false }, size: 64,
          values: function (u, vals) { return vals.map(function (v) { return format(unit, v); }); } },
      ],
    };
    var plot = new uPlot(opts, [xs].concat(list.map(function (s) { return s.values; })), el);
    el._trend = plot;
  }

  var charts = document.querySelectorAll("[data-trend]");
  charts.forEach(draw);
  var timer = null;
  window.addEventListener("resize", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      charts.forEach(function (el) { if (el._trend) el._trend.setSize({ width: Math.max(280, el.clientWidth), height: 220 }); });
    }, 150);
  });
})();
