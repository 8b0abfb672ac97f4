// The models page: every model with its status, last run and tests, rendered by the
// server (#live) and fetched again on model events; filter and search in the page; Run
// and Run downstream start a run of the model (and what is below it).
const { $ } = kura;


function applyFilter() {
  const text = $("model-filter").value.trim().toLowerCase();
  const status = $("status-filter").value;
  let shown = 0;
  for (const row of document.querySelectorAll("#models tr[data-name]")) {
    const d = row.dataset;
    const matches = (!text || d.search.toLowerCase().includes(text))
      && (!status || (status === "tests" ? Number(d.failingTests) > 0 : d.status === status));
    row.hidden = !matches;
    if (matches) shown += 1;
  }
  const empty = $("filter-empty");
  if (empty) empty.hidden = shown > 0 || !document.querySelector("#models tr[data-name]");
}

const refresh = kura.live(kura.events.models, { after: applyFilter });
document.addEventListener("input", (e) => { if (e.target.id === "model-filter") applyFilter(); });
document.addEventListener("change", (e) => { if (e.target.id === "status-filter") applyFilter(); });

async function start(path, what) {
  try {
    const r = await kura.api("POST", path, {});
    kura.say(`${what}: run ${r.run_id} started.`, "ok");
    await refresh.now();
  } catch (e) { kura.fail(e); }
}

document.addEventListener("click", (ev) => {
  if (ev.target.closest("#build-all")) {
    start("/api/dbt/runs", "Build of every model");
    return;
  }
  const b = ev.target.closest("#models button[data-action]");
  if (!b) return;
  const name = b.closest("tr[data-name]").dataset.name;
  const cascade = b.dataset.action === "downstream";
  const path = cascade
    ? `/api/dbt/models/${encodeURIComponent(name)}/run?cascade=true`
    : `/api/dbt/models/${encodeURIComponent(name)}/run?cascade=false`;
  start(path, cascade ? `${name} and downstream` : name);
});
