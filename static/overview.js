// The overview: the #live part is fetched again whenever an event could change it.
kura.live([...kura.events.data, ...kura.events.models]);

const all = document.getElementById("sync-all");
if (all) all.addEventListener("click", async () => {
  try {
    const r = await kura.api("POST", "/api/sync/trigger", {});
    kura.say(`Started ${r.started.length} sync${r.started.length === 1 ? "" : "s"}` +
      (r.skipped.length ? `; skipped ${r.skipped.map((s) => `${s.source} (${s.reason})`).join(", ")}` : "") + ".", "ok");
  } catch (e) { kura.fail(e); }
});
