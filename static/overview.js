"use strict";
// The overview: the #live part is fetched again whenever an event could change it.
(() => {
  const refresh = kura.debounce(() => kura.refresh("live", "/").catch(() => {}), 200);
  for (const t of ["sync_started", "sync_completed", "sync_failed", "csv_uploaded", "csv_deleted",
    "freshness_update", "schema_drift", "sync_stale", "resync"]) kura.on(t, refresh);

  const all = document.getElementById("sync-all");
  if (all) all.addEventListener("click", async () => {
    try {
      const r = await kura.api("POST", "/api/sync/trigger", {});
      kura.say(`Started ${r.started.length} sync${r.started.length === 1 ? "" : "s"}` +
        (r.skipped.length ? `; skipped ${r.skipped.map((s) => `${s.source} (${s.reason})`).join(", ")}` : "") + ".", "ok");
    } catch (e) { kura.fail(e); }
  });
})();
