// The sources list: sort by a column, filter by name and status, follow live events.
const sort = { key: "name", type: "text", dir: 1 };

function apply() {
  const table = document.getElementById("sources-table");
  if (!table) return;
  const text = document.getElementById("filter-text").value.trim().toLowerCase();
  const status = document.getElementById("filter-status").value;
  const body = table.tBodies[0];
  const rows = [...body.rows];
  rows.sort((a, b) => {
    const x = a.dataset[sort.key] || ""; const y = b.dataset[sort.key] || "";
    const c = sort.type === "number" ? Number(x) - Number(y) : x.localeCompare(y);
    return c * sort.dir;
  });
  let shown = 0;
  for (const r of rows) {
    const ok = (!text || r.dataset.name.toLowerCase().includes(text)) && (!status || r.dataset.status === status);
    r.hidden = !ok;
    if (ok) shown++;
    body.append(r);
  }
  for (const th of table.tHead.rows[0].cells) {
    const b = th.querySelector("button");
    if (b.dataset.key === sort.key) th.setAttribute("aria-sort", sort.dir > 0 ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
  document.getElementById("shown").textContent = `${shown} of ${rows.length} shown`;
}

document.addEventListener("click", (e) => {
  const b = e.target.closest("#sources-table th button");
  if (!b) return;
  if (sort.key === b.dataset.key) sort.dir = -sort.dir;
  else Object.assign(sort, { key: b.dataset.key, type: b.dataset.type || "text", dir: 1 });
  apply();
});
document.getElementById("filter-text").addEventListener("input", apply);
document.getElementById("filter-status").addEventListener("change", apply);

kura.live(kura.events.data, { after: apply });
apply();
