// Project secrets (.env): add, replace, delete; values are never shown back. The list is
// rendered by the server (#live) and fetched again after every change.
const { $ } = kura;
const refresh = kura.live([]);

document.addEventListener("click", async (ev) => {
  const b = ev.target.closest('#secrets button[data-action="delete"]');
  if (!b) return;
  const key = b.closest("tr").dataset.key;
  if (!confirm(`Delete the secret ${key}?`)) return;
  try {
    await kura.api("DELETE", `/api/secrets/${encodeURIComponent(key)}`);
    kura.say(`${key} deleted.`, "ok");
    await refresh.now();
  } catch (e) { kura.fail(e); }
});

$("secret").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const r = await kura.api("POST", "/api/secrets", kura.form(ev.target));
    kura.say(`${r.key} ${r.created ? "added" : "replaced"}.`, "ok");
    ev.target.reset();
    await refresh.now();
  } catch (e) { kura.fail(e); }
});
