"use strict";
// User administration: invitations, roles, resets, deactivation, unlocks.
(() => {
  const $ = (id) => document.getElementById(id);

  function showLink(answer) {
    $("invite-url").textContent = answer.invite_url || location.origin + answer.invite_path;
    $("invite-link").hidden = false;
  }

  async function act(method, path, body, done) {
    try {
      const r = await kura.api(method, path, body);
      if (done) done(r);
      load();
    } catch (e) { kura.fail(e); }
  }

  function actions(u) {
    const b = (label, onclick, cls) => kura.el("button", { type: "button", class: cls || "", onclick }, label);
    const out = [];
    const role = kura.el("select", { "aria-label": `Role of ${u.email}`, onchange: (ev) =>
      act("PUT", `/api/admin/users/${u.id}/role`, { role: ev.target.value }, () => kura.say(`${u.email} is now ${ev.target.value}.`, "ok")) },
      ...["viewer", "editor", "admin"].map((r) => { const o = kura.el("option", {}, r); if (r === u.role) o.selected = true; return o; }));
    out.push(role);
    if (u.status === "invited") out.push(b("New invitation link", () => act("POST", `/api/admin/users/${u.id}/reinvite`, {}, showLink)));
    if (u.status !== "invited") out.push(b("Reset password", () => act("POST", `/api/admin/users/${u.id}/reset-password`, {},
      (r) => kura.say(`Temporary password for ${u.email} (shown once): ${r.temporary_password}`, "ok"))));
    out.push(b("Unlock", () => act("POST", `/api/admin/users/${u.id}/unlock`, {}, () => kura.say(`${u.email} can sign in again.`, "ok"))));
    out.push(b("Sign out everywhere", () => act("POST", `/api/admin/users/${u.id}/revoke-sessions`, {})));
    if (u.status === "deactivated") out.push(b("Reactivate", () => act("POST", `/api/admin/users/${u.id}/reactivate`, {})));
    else out.push(b("Deactivate", () => act("POST", `/api/admin/users/${u.id}/deactivate`, {}), "danger"));
    out.push(b("Delete", () => {
      if (confirm(`Delete ${u.email}, with their keys and sessions?`)) act("DELETE", `/api/admin/users/${u.id}`);
    }, "danger"));
    return out;
  }

  async function load() {
    const users = await kura.api("GET", "/api/admin/users");
    $("users").replaceChildren(...users.map((u) => kura.el("tr", {},
      kura.el("td", {}, u.email), kura.el("td", {}, u.display_name || "—"), kura.el("td", {}, u.role),
      kura.el("td", {}, u.status + (u.must_change_password ? " (temporary password)" : "")),
      kura.el("td", {}, u.totp_enabled ? "on" : "off"), kura.el("td", {}, kura.when(u.last_login_at)),
      kura.el("td", { class: "actions" }, ...actions(u)))));
  }

  $("invite").addEventListener("submit", (ev) => {
    ev.preventDefault();
    act("POST", "/api/admin/users", kura.form(ev.target), (r) => { showLink(r); ev.target.reset(); });
  });

  load().catch(kura.fail);
})();
