// The SQL page: a highlighted editor (a transparent textarea over a highlighted copy),
// Ctrl/Cmd+Enter to run, a paged result grid, a chart, exports and recent queries.
import { highlightSql } from "./sql.js";

const { $ } = kura;
const sql = $("sql");
let last = null; // the last result
let errorAt = null; // character offset of the last error

function highlight() {
  $("highlight").innerHTML = highlightSql(sql.value, errorAt) + "\n";
}
sql.addEventListener("input", () => { errorAt = null; highlight(); });
sql.addEventListener("scroll", () => { const p = $("highlight").parentElement; p.scrollTop = sql.scrollTop; p.scrollLeft = sql.scrollLeft; });
sql.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); run(); }
  if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey) {
    e.preventDefault();
    sql.setRangeText("  ", sql.selectionStart, sql.selectionEnd, "end");
    highlight();
  }
});

function insert(text) {
  sql.focus();
  sql.setRangeText(text, sql.selectionStart, sql.selectionEnd, "end");
  errorAt = null;
  highlight();
}
document.addEventListener("click", (e) => {
  const b = e.target.closest("[data-insert]");
  if (b) { e.preventDefault(); insert(b.dataset.insert); }
});
$("table-filter").addEventListener("input", (e) => {
  const q = e.target.value.toLowerCase();
  for (const li of $("table-tree").children) if (li.dataset.name) li.hidden = !li.dataset.name.toLowerCase().includes(q);
});

// The server gives positions as byte offsets into the UTF-8 text.
function charIndex(text, byteOffset) {
  let bytes = 0;
  for (let i = 0; i < text.length;) {
    if (bytes >= byteOffset) return i;
    const cp = text.codePointAt(i);
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    i += cp > 0xffff ? 2 : 1;
  }
  return text.length;
}

// Shows an error and marks where it points.
function showError(e) {
  const box = $("query-error");
  box.hidden = false;
  errorAt = typeof e.position === "number" ? charIndex(sql.value, e.position) : null;
  let where = "";
  if (errorAt !== null) {
    const before = sql.value.slice(0, errorAt).split("\n");
    where = ` (line ${before.length}, column ${before[before.length - 1].length + 1})`;
  }
  box.replaceChildren(kura.el("strong", {}, `${e.error || "error"}${where}`), kura.el("pre", {}, e.message || String(e)));
  highlight();
}

async function run() {
  const text = sql.value;
  if (!text.trim()) { sql.focus(); return; }
  $("run").disabled = true;
  $("status").textContent = "Running…";
  $("query-error").hidden = true;
  errorAt = null;
  highlight();
  const t0 = performance.now();
  try {
    last = await kura.api("POST", "/api/query", { sql: text, remember: true });
    $("status").textContent = `${kura.number(last.row_count)} row${last.row_count === 1 ? "" : "s"} in ${Math.round(last.elapsed_ms)} ms (round trip ${Math.round(performance.now() - t0)} ms)`;
    showResult();
  } catch (e) {
    $("status").textContent = "";
    showError(e);
  } finally {
    $("run").disabled = false;
    loadRecent();
  }
}
$("run").addEventListener("click", run);

function showResult() {
  $("result-card").hidden = false;
  $("result-info").textContent = `${kura.number(last.row_count)} rows · ${last.columns.length} columns · ${last.elapsed_ms.toFixed(1)} ms on the server`;
  $("truncated").hidden = !last.truncated;
  $("truncated").textContent = last.truncated ? `${last.warning} Export for every row.` : "";
  kuraGrid.render($("result"), last);
  // Chart columns: X any, Y numeric; guess a sensible pair.
  const numeric = last.columns.map((_, i) => last.rows.some((r) => typeof r[i] === "number" || kuraChart.num(r[i]) !== null && typeof r[i] !== "boolean"));
  const opts = (sel, pick) => {
    sel.replaceChildren(...last.columns.map((c, i) => kura.el("option", { value: String(i) }, c)));
    sel.value = String(pick);
  };
  const y = Math.max(0, numeric.findIndex((n, i) => n && (i > 0 || last.columns.length === 1)));
  opts($("chart-x"), y === 0 && last.columns.length > 1 ? 1 : 0);
  opts($("chart-y"), y);
  if (!$("chart-panel").hidden) drawChart();
}

function drawChart() {
  if (!last) return;
  kuraChart.draw($("chart"), $("chart-kind").value, last.columns, last.rows, Number($("chart-x").value), Number($("chart-y").value));
}
for (const id of ["chart-kind", "chart-x", "chart-y"]) $(id).addEventListener("change", drawChart);
function tab(chart) {
  $("tab-table").setAttribute("aria-selected", String(!chart));
  $("tab-chart").setAttribute("aria-selected", String(chart));
  $("result").hidden = chart;
  $("chart-panel").hidden = !chart;
  if (chart) drawChart();
}
$("tab-table").addEventListener("click", () => tab(false));
$("tab-chart").addEventListener("click", () => tab(true));

// Exports stream from the server; the browser saves the file.
document.addEventListener("click", async (e) => {
  const b = e.target.closest(".export");
  if (!b) return;
  const text = sql.value.trim();
  if (!text) return;
  const format = b.dataset.format;
  $("status").textContent = `Exporting ${format.toUpperCase()}…`;
  try {
    const r = await fetch("/api/query/export", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": kura.csrf(), "X-Requested-With": "XMLHttpRequest" },
      body: JSON.stringify({ sql: text, format }),
    });
    if (!r.ok) { showError(await r.json().catch(() => ({ message: `export failed (${r.status})` }))); $("status").textContent = ""; return; }
    const blob = await r.blob();
    const disposition = r.headers.get("Content-Disposition") || "";
    const name = (disposition.match(/filename="?([^";]+)"?/) || [])[1] || `kura-export.${format}`;
    const a = kura.el("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    $("status").textContent = `Exported ${name} (${kura.bytes(blob.size)}).`;
  } catch (err) { kura.fail(err); }
});

async function loadRecent() {
  try {
    const { queries } = await kura.api("GET", "/api/query/history?limit=15");
    $("recent").replaceChildren(...(queries.length ? queries.map((q) => kura.el("li", {},
      kura.el("button", { type: "button", class: "recent-sql", title: "Put this query in the editor",
        onclick: () => { sql.value = q.sql; errorAt = null; highlight(); sql.focus(); } }, q.sql),
      kura.el("span", { class: `small ${q.ok ? "muted" : "bad"}` },
        `${kura.when(q.ran_at)} · ${q.ok ? `${kura.number(q.rows)} rows` : "failed"}`)))
      : [kura.el("li", { class: "muted" }, "Queries you run appear here.")]));
  } catch (_) { /* the list is a convenience */ }
}

highlight();
loadRecent();
if (sql.value) sql.setSelectionRange(sql.value.length, sql.value.length);
sql.focus();
