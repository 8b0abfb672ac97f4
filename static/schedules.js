// The schedules page: each schedule with its next and last run, Run now / Cancel, and its
// history. All of it is rendered by the server (#live); `history` names the schedule whose
// jobs are shown under it.
const { $ } = kura;
$("tz").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone;

let history = new URLSearchParams(location.search).get("history");
const refresh = kura.live(kura.events.schedules, {
  url: () => "/schedules" + (history ? `?history=${encodeURIComponent(history)}` : ""),
  // Next and last runs move with the clock as well.
  every: 15000,
});

async function act(method, path, done) {
  try {
    const r = await kura.api(method, path, {});
    if (done) done(r);
    await refresh.now();
  } catch (e) { kura.fail(e); }
}

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("#schedules button[data-action]");
  if (!b) return;
  const row = b.closest("tr[data-name]").dataset;
  const name = row.name;
  if (b.dataset.action === "history") {
    history = history === name ? null : name;
    refresh.now().catch(kura.fail);
  } else if (b.dataset.action === "run") {
    act("POST", `/api/schedules/${encodeURIComponent(name)}/trigger`, (r) => kura.say(`${name}: job ${r.job_id} started.`, "ok"));
  } else if (b.dataset.action === "cancel") {
    act("POST", `/api/schedules/jobs/${row.job}/cancel`, () => kura.say(`${name}: cancelling job ${row.job}.`, "ok"));
  }
});

document.addEventListener("click", async (ev) => {
  if (!ev.target.closest("#test-webhooks")) return;
  try {
    const { results } = await kura.api("POST", "/api/notifications/test", {});
    kura.say(results.map((r) => `${r.name}: ${r.delivered ? "delivered" : r.error}`).join("; "), results.every((r) => r.delivered) ? "ok" : "error");
  } catch (e) { kura.fail(e); }
});
