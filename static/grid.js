// A paged result grid: renders one page of rows at a time, so 10,000 rows never become
// 10,000 table rows in the document. Used by the query page and the table previews.
const kuraGrid = {
  PAGE: 100,

  cell(v) {
    if (v === null || v === undefined) return kura.el("td", { class: "null" }, "NULL");
    if (typeof v === "object") return kura.el("td", {}, JSON.stringify(v));
    if (typeof v === "number") return kura.el("td", { class: "num", title: String(v) }, kuraGrid.number(v));
    return kura.el("td", {}, String(v));
  },

  // A number as DuckDB's shell shows it: at most 15 significant digits, so a double's
  // float noise (19032.549999999996) reads 19032.55; the exact value is the cell's title
  // and stays in the JSON and the exports.
  number(v) {
    return Number.isInteger(v) || !Number.isFinite(v) ? String(v) : String(Number(v.toPrecision(15)));
  },

  // Renders `result` ({columns, column_types, rows}) into `slot`, with pager buttons.
  render(slot, result) {
    let page = 0;
    const pages = Math.max(1, Math.ceil(result.rows.length / kuraGrid.PAGE));
    const head = kura.el("thead", {}, kura.el("tr", {}, ...result.columns.map((c, i) =>
      kura.el("th", { title: (result.column_types || [])[i] || "" }, c))));
    const body = kura.el("tbody");
    const table = kura.el("table", { class: "grid data-grid" }, head, body);
    const info = kura.el("span", { class: "muted small", "aria-live": "polite" });
    const prev = kura.el("button", { type: "button", class: "secondary small", "aria-label": "Previous page" }, "‹ Previous");
    const next = kura.el("button", { type: "button", class: "secondary small", "aria-label": "Next page" }, "Next ›");
    const draw = () => {
      const from = page * kuraGrid.PAGE;
      const rows = result.rows.slice(from, from + kuraGrid.PAGE);
      body.replaceChildren(...rows.map((r) => kura.el("tr", {}, ...r.map(kuraGrid.cell))));
      info.textContent = result.rows.length
        ? `Rows ${kura.number(from + 1)}–${kura.number(from + rows.length)} of ${kura.number(result.rows.length)} · page ${page + 1} of ${pages}`
        : "No rows.";
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
    };
    prev.addEventListener("click", () => { page--; draw(); });
    next.addEventListener("click", () => { page++; draw(); });
    const pager = kura.el("div", { class: "pager" }, prev, info, next);
    slot.replaceChildren(kura.el("div", { class: "scroll" }, table), pager);
    draw();
  },
};
window.kuraGrid = kuraGrid;
