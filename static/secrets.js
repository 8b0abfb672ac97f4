"use strict";
// Project secrets (.env): add, replace, delete; values are never shown back.
(() => {
  const $ = (id) => document.getElementById(id);

  async function load() {
    const { secrets } = await kura.api("GET", "/api/secrets");
    $("secrets").replaceChildren(...secrets.map((s) => kura.el("tr", {},
      kura.el("td", {}, kura.el("code", {}, s.key)), kura.el("td", {}, s.masked_value),
      kura.el("td", {}, kura.el("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Delete the secret ${s.key}?`)) return;
        try { await kura.api("DELETE", `/api/secrets/${encodeURIComponent(s.key)}`); load(); } catch (e) { kura.fail(e); }
      } }, "Delete")))));
  }

  $("secret").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await kura.api("POST", "/api/secrets", kura.form(ev.target));
      kura.say(`${r.key} ${r.created ? "added" : "replaced"}.`, "ok");
      ev.target.reset();
      load();
    } catch (e) { kura.fail(e); }
  });

  load().catch(kura.fail);
})();
