// swarmer's web UI: the start form, the header's figures and buttons, the tabs (statistics,
// charts, failures, exceptions, ratios, downloads), live from the server's event stream
// (/events, once a second; /stats/board is polled when the stream is unavailable). The HTML
// report runs the same renderers on the data embedded in it (`SWARMER_REPORT`).
"use strict";

const escapeHtml = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const fixed = (value, digits) => (value === null || value === undefined ? "" : Number(value).toFixed(digits));

/** The statistics table (Locust's columns), exact percentiles; the report shows whole-run rates. */
function renderStats(rows) {
  const whole = !!window.SWARMER_REPORT;
  const body = rows
    .map((r) => {
      const total = r.name === "Aggregated" && r.method === "";
      const fails = r.num_failures > 0 ? "fail" : "";
      return `<tr class="${total ? "total" : ""}"><td class="text">${escapeHtml(r.method)}</td>` +
        `<td class="text">${escapeHtml(r.name)}</td><td>${r.num_requests}</td><td class="${fails}">${r.num_failures}</td>` +
        `<td>${fixed(r.median_response_time, 2)}</td><td>${fixed(r["response_time_percentile_0.95"], 2)}</td>` +
        `<td>${fixed(r["response_time_percentile_0.99"], 2)}</td><td>${fixed(r.avg_response_time, 2)}</td>` +
        `<td>${fixed(r.min_response_time, 2)}</td><td>${fixed(r.max_response_time, 2)}</td>` +
        `<td>${fixed(r.avg_content_length, 0)}</td><td>${fixed(whole ? r.total_rps : r.current_rps, 1)}</td>` +
        `<td>${fixed(whole ? r.total_fail_per_sec : r.current_fail_per_sec, 1)}</td></tr>`;
    })
    .join("");
  document.getElementById("stats-body").innerHTML = body;
}

/** The percentile table: every percentile of the CSV, exact. */
function renderPercentiles(rows) {
  if (!rows.length) return;
  const titles = rows[0].response_time_percentiles.map((p) => p[0]);
  document.getElementById("percentiles-head").innerHTML =
    `<tr><th class="text">Type</th><th class="text">Name</th>${titles.map((t) => `<th>${t}</th>`).join("")}<th># reqs</th></tr>`;
  document.getElementById("percentiles-body").innerHTML = rows
    .map((r) => `<tr class="${r.name === "Aggregated" && r.method === "" ? "total" : ""}">` +
      `<td class="text">${escapeHtml(r.method)}</td><td class="text">${escapeHtml(r.name)}</td>` +
      r.response_time_percentiles.map((p) => `<td>${fixed(p[1], 2)}</td>`).join("") +
      `<td>${r.num_requests}</td></tr>`)
    .join("");
}

function renderFailures(errors) {
  document.getElementById("failures-body").innerHTML = errors.length
    ? errors.map((e) => `<tr><td>${e.occurrences}</td><td class="text">${escapeHtml(e.method)}</td>` +
        `<td class="text">${escapeHtml(e.name)}</td><td class="text">${escapeHtml(e.error)}</td></tr>`).join("")
    : `<tr><td class="text" colspan="4">No failures</td></tr>`;
}

function renderExceptions(exceptions, skipped) {
  const rows = exceptions.concat(skipped);
  document.getElementById("exceptions-body").innerHTML = rows.length
    ? rows.map((e) => `<tr><td>${e.count}</td><td class="text">${escapeHtml(e.msg)}</td>` +
        `<td class="text">${escapeHtml(e.traceback)}</td><td class="text">${escapeHtml(e.nodes)}</td></tr>`).join("")
    : `<tr><td class="text" colspan="4">No aborted or skipped tasks</td></tr>`;
}

function renderThresholds(verdicts) {
  const box = document.getElementById("thresholds");
  if (!box) return;
  box.innerHTML = verdicts.length
    ? `<table><tr><th class="text">Threshold</th><th>Measured</th><th>Result</th></tr>` +
      verdicts.map((v) => `<tr><td class="text">${escapeHtml(v.threshold)}</td><td>${escapeHtml(v.measured)}</td>` +
        `<td class="${v.pass ? "pass" : "lost"}">${v.pass ? "PASS" : "FAIL"}</td></tr>`).join("") + `</table>`
    : "<p>No thresholds.</p>";
}

/** A distributed run's workers (the tab shows only when there are some). */
function renderWorkers(workers) {
  const tab = document.getElementById("workers-tab");
  if (!tab || !workers) return;
  tab.hidden = workers.length === 0;
  document.getElementById("workers-body").innerHTML = workers
    .map((w) => `<tr><td class="text">${escapeHtml(w.id)}</td><td class="text">${escapeHtml(w.host)}</td>` +
      `<td class="text">${escapeHtml(w.address)}</td><td class="text">${escapeHtml(w.state)}</td><td>${w.cores}</td>` +
      `<td>${w.partitions}</td><td>${w.user_count}</td><td>${w.cpu_usage.toFixed(1)}</td><td>${w.requests}</td>` +
      `<td>${w.failures}</td></tr>`)
    .join("");
}

/** The header's figures. */
function renderHeader(board) {
  const total = board.stats.length ? board.stats[board.stats.length - 1] : null;
  const state = document.getElementById("state");
  state.textContent = board.state;
  state.className = "state " + board.state;
  document.getElementById("users").textContent = board.user_count;
  document.getElementById("rps").textContent = total ? total.current_rps.toFixed(1) : "0";
  const ratio = total && total.num_requests ? (100 * total.num_failures) / total.num_requests : 0;
  document.getElementById("failures").textContent = ratio.toFixed(2) + "%";
  document.getElementById("host").textContent = board.meta.origin;
}

/** Everything that shows the board. */
function render(board) {
  renderStats(board.stats);
  renderPercentiles(board.stats);
  renderFailures(board.errors);
  renderExceptions(board.exceptions, board.skipped);
  renderThresholds(board.thresholds);
  document.getElementById("ratios").textContent = board.ratios;
  renderWorkers(board.workers);
  const charts = document.getElementById("tab-charts");
  if (!charts || charts.classList.contains("active") || window.SWARMER_REPORT) drawCharts(board.history);
}

// ---- The live UI ---------------------------------------------------------------------------

let latest = null;

function showTab(name) {
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.tab === name));
  document.querySelectorAll("section.tab").forEach((s) => s.classList.toggle("active", s.id === "tab-" + name));
  if (name === "charts" && latest) drawCharts(latest.history);
}

function update(board) {
  latest = board;
  renderHeader(board);
  render(board);
  const idle = board.state === "ready" || board.state === "stopped";
  document.getElementById("start").classList.toggle("hidden", !idle && !window.editing);
  document.getElementById("stop").disabled = idle;
}

/** Sends a state-changing request with the page's token; shows the server's message. */
async function send(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "X-Swarmer-Token": document.body.dataset.token },
    body,
    credentials: "same-origin",
  });
  const text = await response.text();
  let reply;
  try { reply = JSON.parse(text); } catch (_) { reply = { success: response.ok, message: text }; }
  const message = document.getElementById("message");
  message.textContent = reply.message || "";
  message.className = "message" + (reply.success ? " ok" : "");
  return reply;
}

function startForm(event) {
  event.preventDefault();
  const form = new FormData(document.getElementById("start-form"));
  const body = new URLSearchParams();
  for (const [key, value] of form.entries()) if (String(value).trim() !== "") body.append(key, value);
  send("/swarm", body).then((reply) => {
    if (reply.success) {
      window.editing = false;
      showTab("stats");
    }
  });
}

let history = [];

/** An event of the stream: the board, and the chart points not sent before (all when `full`). */
function onEvent(data) {
  history = data.full ? data.points : history.concat(data.points);
  if (history.length > 3600) history = history.slice(history.length - 3600);
  data.history = history;
  update(data);
}

function connect() {
  if (window.EventSource) {
    const events = new EventSource("/events");
    events.onmessage = (event) => onEvent(JSON.parse(event.data));
    events.onerror = () => { events.close(); setTimeout(poll, 1000); };
  } else {
    poll();
  }
}

function poll() {
  fetch("/stats/board", { credentials: "same-origin" })
    .then((r) => r.json())
    .then(update)
    .finally(() => setTimeout(poll, 1000));
}

function startLive() {
  document.querySelectorAll("nav a").forEach((a) => a.addEventListener("click", () => showTab(a.dataset.tab)));
  document.getElementById("start-form").addEventListener("submit", startForm);
  document.getElementById("stop").addEventListener("click", () => send("/stop", ""));
  document.getElementById("reset").addEventListener("click", () => send("/stats/reset", ""));
  document.getElementById("edit").addEventListener("click", () => {
    window.editing = true;
    document.getElementById("start").classList.remove("hidden");
    document.getElementById("start-title").textContent = "Edit the running test";
  });
  window.addEventListener("resize", () => latest && drawCharts(latest.history));
  connect();
}

// ---- The HTML report -----------------------------------------------------------------------

function startReport(board) {
  const meta = board.meta;
  const when = (unix) => (unix ? new Date(unix * 1000).toISOString().replace(".000", "") : "");
  const items = [
    ["Tested", meta.origin], ["Command line", meta.command_line], ["swarmer", meta.version],
    ["Started", when(meta.start_unix)], ["Ended", when(meta.end_unix)],
    ["Users", meta.users], ["Spawn rate", meta.spawn_rate], ["Rate (open model)", meta.rate === null ? "" : meta.rate + "/s"],
    ["Threads", meta.threads], ["IO driver", meta.driver], ["Host", meta.hostname], ["Kernel", meta.kernel],
    ["CPU", meta.cpu_model], ["Seed", meta.seed],
  ];
  document.getElementById("host").textContent = meta.origin;
  document.getElementById("meta").innerHTML = items
    .filter((i) => i[1] !== "" && i[1] !== null && i[1] !== undefined)
    .map((i) => `<dt>${i[0]}</dt><dd>${escapeHtml(i[1])}</dd>`).join("");
  render(board);
  document.body.dataset.rendered = "yes";
}

window.addEventListener("DOMContentLoaded", () => {
  if (window.SWARMER_REPORT) startReport(window.SWARMER_REPORT);
  else startLive();
});
