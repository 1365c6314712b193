// Charts on a canvas, no library: time series (requests per second, percentiles, users) and the
// latency heat map. Used by the live UI and the HTML report alike. Each chart, once drawn, says
// what it drew in data attributes (points, max) so a test can see it did.
"use strict";

const COLORS = ["#4fb3d9", "#e0635f", "#5ec27f", "#e0b85f", "#b48ee0", "#e08fcb"];

/** Sizes the canvas to its box at the screen's pixel density; returns its 2D context. */
function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 240;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return { ctx, width, height };
}

/** A round upper bound for an axis. */
function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

function formatNumber(value) {
  if (value >= 1e6) return (value / 1e6).toFixed(1) + "M";
  if (value >= 1e4) return (value / 1e3).toFixed(0) + "k";
  if (value >= 100) return value.toFixed(0);
  if (value >= 1) return value.toFixed(1);
  return value.toFixed(2);
}

function clock(unix) {
  const d = new Date(unix * 1000);
  return d.toTimeString().slice(0, 8);
}

/**
 * Draws series over time. `times`: unix seconds; `series`: [{ name, values }] of the same
 * length. The legend goes into `legend` (an element), if given.
 */
function lineChart(canvas, times, series, unit, legend) {
  const { ctx, width, height } = prepare(canvas);
  const left = 52, right = 10, top = 8, bottom = 22;
  const plotW = width - left - right, plotH = height - top - bottom;
  let max = 0;
  for (const s of series) for (const v of s.values) if (v > max) max = v;
  max = niceMax(max * 1.05);
  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeStyle = "#263241";
  ctx.fillStyle = "#8a99a8";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + plotH - (plotH * i) / 4;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + plotW, y);
    ctx.stroke();
    ctx.fillText(formatNumber((max * i) / 4) + (unit || ""), 2, y + 4);
  }
  const n = times.length;
  if (n > 1) {
    for (const at of [0, Math.floor((n - 1) / 2), n - 1]) {
      const x = left + (plotW * at) / (n - 1);
      ctx.fillText(clock(times[at]), Math.min(x - 22, width - 50), height - 6);
    }
  }
  series.forEach((s, index) => {
    ctx.strokeStyle = COLORS[index % COLORS.length];
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    s.values.forEach((v, i) => {
      const x = left + (n > 1 ? (plotW * i) / (n - 1) : plotW / 2);
      const y = top + plotH - (plotH * v) / max;
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
  if (legend) {
    legend.innerHTML = series
      .map((s, i) => `<i style="background:${COLORS[i % COLORS.length]}"></i>${s.name}`)
      .join("");
  }
  canvas.dataset.points = String(n);
  canvas.dataset.max = String(Math.max(0, ...series.flatMap((s) => s.values)));
}

/**
 * The latency heat map: one column per second, one row per latency bucket (log scale, edges
 * from `edgeUs`), each cell's colour the share of that second's requests in the bucket.
 */
function heatMap(canvas, times, columns, edgeUs) {
  const { ctx, width, height } = prepare(canvas);
  const left = 52, right = 10, top = 8, bottom = 22;
  const plotW = width - left - right, plotH = height - top - bottom;
  const rows = columns.length ? columns[0].length : 0;
  // Only the rows that ever hold a request, and one either side.
  let low = rows, high = -1;
  columns.forEach((c) => c.forEach((v, i) => { if (v > 0) { low = Math.min(low, i); high = Math.max(high, i); } }));
  if (high < 0) { low = 0; high = Math.min(rows - 1, 10); }
  low = Math.max(0, low - 1);
  high = Math.min(rows - 1, high + 1);
  const shown = high - low + 1;
  const cellW = plotW / Math.max(columns.length, 1), cellH = plotH / Math.max(shown, 1);
  let cells = 0;
  columns.forEach((column, x) => {
    const total = column.reduce((a, b) => a + b, 0);
    if (!total) return;
    for (let r = low; r <= high; r++) {
      const v = column[r];
      if (!v) continue;
      const share = Math.sqrt(v / total);
      ctx.fillStyle = `rgba(79, 179, 217, ${0.12 + 0.88 * share})`;
      ctx.fillRect(left + x * cellW, top + plotH - (r - low + 1) * cellH, Math.ceil(cellW), Math.ceil(cellH));
      cells++;
    }
  });
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#8a99a8";
  for (let r = low; r <= high + 1; r++) {
    const us = edgeUs(r);
    const decade = Math.abs(Math.log10(us) - Math.round(Math.log10(us))) < 1e-6;
    if (!decade) continue;
    const label = us >= 1e6 ? us / 1e6 + "s" : us >= 1e3 ? us / 1e3 + "ms" : us + "µs";
    ctx.fillText(label, 2, top + plotH - (r - low) * cellH + 4);
  }
  if (times.length > 1) {
    ctx.fillText(clock(times[0]), left, height - 6);
    ctx.fillText(clock(times[times.length - 1]), width - 60, height - 6);
  }
  canvas.dataset.points = String(columns.length);
  canvas.dataset.cells = String(cells);
}

/** The lower edge of heat bucket `i` in µs (as `report::board::heat_edge_us`). */
function heatEdgeUs(i) {
  return Math.round(10 * Math.pow(10, i / 5) * 1000) / 1000;
}

/** Draws every chart of `history` (the board's points) into the elements with these ids. */
function drawCharts(history) {
  const times = history.map((p) => p.time);
  const pick = (key) => history.map((p) => p[key]);
  lineChart(document.getElementById("chart-rps"), times,
    [{ name: "requests/s", values: pick("rps") }, { name: "failures/s", values: pick("fps") }], "",
    document.getElementById("legend-rps"));
  lineChart(document.getElementById("chart-times"), times,
    [{ name: "p50", values: pick("p50") }, { name: "p95", values: pick("p95") }, { name: "p99", values: pick("p99") }],
    "ms", document.getElementById("legend-times"));
  lineChart(document.getElementById("chart-users"), times, [{ name: "users", values: pick("users") }], "",
    document.getElementById("legend-users"));
  heatMap(document.getElementById("chart-heat"), times, pick("heat"), heatEdgeUs);
  const open = history.some((p) => p.open);
  document.querySelectorAll(".open-model").forEach((el) => el.classList.toggle("hidden", !open));
  if (open) {
    const openPick = (key) => history.map((p) => (p.open ? p.open[key] : 0));
    lineChart(document.getElementById("chart-starts"), times,
      [{ name: "target starts/s", values: openPick("target_rate") }, { name: "begun/s", values: openPick("started") }],
      "", document.getElementById("legend-starts"));
    lineChart(document.getElementById("chart-service"), times,
      [{ name: "latency p99 (from intended start)", values: pick("p99") },
       { name: "service p99", values: openPick("service_p99") },
       { name: "service p50", values: openPick("service_p50") }],
      "ms", document.getElementById("legend-service"));
  }
}
