// A model's page: its SQL highlighted (compiled, source, incremental), Run and Run
// downstream, live updates of the server-rendered #live part on model events, and the
// lineage graph: the model's neighbourhood (one level up and down at first, more on
// request), drawn as SVG from /api/catalog/lineage; a click opens a node's page.
import { highlightSql } from "./sql.js";

const { $ } = kura;
const SVG = "http://www.w3.org/2000/svg";
let depth = { up: 1, down: 1 };
let lineage = null;

function decorate() {
  for (const pre of document.querySelectorAll("pre.sql")) {
    if (!pre.dataset.done) { pre.innerHTML = highlightSql(pre.textContent); pre.dataset.done = "1"; }
  }
  drawGraph();
}

const refresh = kura.live(kura.events.models, {
  after: () => { lineage = null; decorate(); },
  before: () => document.querySelector(".tabs [aria-selected=true]")?.dataset.show,
});

document.addEventListener("click", async (ev) => {
  const tab = ev.target.closest(".tabs [data-show]");
  if (tab) {
    for (const t of tab.parentElement.querySelectorAll("[data-show]")) {
      t.setAttribute("aria-selected", String(t === tab));
      $(t.dataset.show).hidden = t !== tab;
    }
    return;
  }
  const run = ev.target.closest("#run-model, #run-downstream");
  if (run) {
    const cascade = run.id === "run-downstream";
    try {
      const name = encodeURIComponent(run.dataset.name);
      const path = cascade ? `/api/dbt/models/${name}/run?cascade=true` : `/api/dbt/models/${name}/run?cascade=false`;
      const r = await kura.api("POST", path, {});
      kura.say(`Run ${r.run_id} started.`, "ok");
      await refresh.now();
    } catch (e) { kura.fail(e); }
    return;
  }
  if (ev.target.closest("#more-up")) { depth.up += 1; drawGraph(); }
  if (ev.target.closest("#more-down")) { depth.down += 1; drawGraph(); }
  if (ev.target.closest("#reset-graph")) { depth = { up: 1, down: 1 }; drawGraph(); }
});

// Nodes within `depth` hops of the focus, by level (negative: upstream).
function neighbourhood(focus, byId) {
  const level = new Map([[focus, 0]]);
  const walk = (key, sign, max) => {
    let frontier = [focus];
    for (let d = 1; d <= max && frontier.length; d++) {
      const next = [];
      for (const id of frontier) {
        for (const other of byId.get(id)[key]) {
          if (!level.has(other)) { level.set(other, sign * d); next.push(other); }
        }
      }
      frontier = next;
    }
    return frontier.some((id) => byId.get(id)[key].some((o) => !level.has(o)));
  };
  const moreUp = walk("depends_on", -1, depth.up);
  const moreDown = walk("depended_on_by", 1, depth.down);
  return { level, moreUp, moreDown };
}

const MAX_PER_LEVEL = 40;

async function drawGraph() {
  const box = $("graph");
  if (!box) return;
  try {
    if (!lineage) lineage = await kura.api("GET", "/api/catalog/lineage");
  } catch (e) { box.textContent = `The lineage cannot be shown: ${e.message || e}`; return; }
  const focus = $("live").dataset.id;
  const byId = new Map(lineage.nodes.map((n) => [n.id, n]));
  if (!byId.has(focus)) { box.textContent = "This node is not in the lineage."; return; }
  const { level, moreUp, moreDown } = neighbourhood(focus, byId);
  $("more-up").disabled = !moreUp;
  $("more-down").disabled = !moreDown;
  const columns = new Map();
  for (const [id, l] of level) { if (!columns.has(l)) columns.set(l, []); columns.get(l).push(byId.get(id)); }
  const levels = [...columns.keys()].sort((a, b) => a - b);
  const W = 190, H = 34, GX = 70, GY = 12;
  const pos = new Map();
  let rows = 0;
  const hidden = [];
  levels.forEach((l, x) => {
    const nodes = columns.get(l).sort((a, b) => a.name.localeCompare(b.name));
    const shown = nodes.slice(0, MAX_PER_LEVEL);
    if (nodes.length > shown.length) hidden.push({ x, count: nodes.length - shown.length, row: shown.length });
    shown.forEach((n, y) => pos.set(n.id, { x: x * (W + GX), y: y * (H + GY) }));
    rows = Math.max(rows, shown.length + (nodes.length > shown.length ? 1 : 0));
  });
  const width = levels.length * (W + GX) - GX, height = Math.max(1, rows) * (H + GY) - GY;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `-4 -4 ${width + 8} ${height + 8}`);
  svg.setAttribute("width", width + 8);
  svg.setAttribute("height", height + 8);
  const el = (name, attrs, parent = svg) => {
    const e = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    parent.appendChild(e);
    return e;
  };
  for (const edge of lineage.edges) {
    const a = pos.get(edge.source), b = pos.get(edge.target);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mid = (x1 + x2) / 2;
    el("path", { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, class: "edge" });
  }
  for (const [id, p] of pos) {
    const n = byId.get(id);
    const link = el("a", { href: `/models/${encodeURIComponent(n.name)}`, class: `node node-${n.type}${id === focus ? " node-focus" : ""}` });
    el("title", {}, link).textContent = `${n.name} (${n.type}, ${n.materialization})`;
    el("rect", { x: p.x, y: p.y, width: W, height: H, rx: 7 }, link);
    const label = n.name.length > 24 ? n.name.slice(0, 23) + "…" : n.name;
    const t = el("text", { x: p.x + 12, y: p.y + H / 2 + 4 }, link);
    t.textContent = label;
  }
  for (const h of hidden) {
    const t = el("text", { x: h.x * (W + GX) + 12, y: h.row * (H + GY) + H / 2 + 4, class: "more" });
    t.textContent = `+ ${h.count} more`;
  }
  box.replaceChildren(svg);
  box.dataset.nodes = String(pos.size);
  const n = pos.size;
  $("graph-count").textContent = `${n} node${n === 1 ? "" : "s"} shown.`;
}

decorate();
