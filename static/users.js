// User administration: invitations, roles, resets, deactivation, unlocks. The list is
// rendered by the server (#live) and fetched again after every change.
const { $ } = kura;
const refresh = kura.live([]);

function showLink(answer) {
  $("invite-url").textContent = answer.invite_url || location.origin + answer.invite_path;
  $("invite-link").hidden = false;
}

async function act(method, path, body, done) {
  try {
    const r = await kura.api(method, path, body);
    if (done) done(r);
    await refresh.now();
  } catch (e) { kura.fail(e); }
}

// What each action button does, given the user's row.
const actions = {
  "reinvite": (u) => act("POST", `/api/admin/users/${u.id}/reinvite`, {}, showLink),
  "reset-password": (u) => act("POST", `/api/admin/users/${u.id}/reset-password`, {},
    (r) => kura.say(`Temporary password for ${u.email} (shown once): ${r.temporary_password}`, "ok")),
  "unlock": (u) => act("POST", `/api/admin/users/${u.id}/unlock`, {}, () => kura.say(`${u.email} can sign in again.`, "ok")),
  "revoke-sessions": (u) => act("POST", `/api/admin/users/${u.id}/revoke-sessions`, {},
    (r) => kura.say(`${u.email}: ${r.revoked_count} session(s) ended.`, "ok")),
  "reactivate": (u) => act("POST", `/api/admin/users/${u.id}/reactivate`, {}, () => kura.say(`${u.email} is active again.`, "ok")),
  "deactivate": (u) => act("POST", `/api/admin/users/${u.id}/deactivate`, {}, () => kura.say(`${u.email} is deactivated.`, "ok")),
  "delete": (u) => {
    if (confirm(`Delete ${u.email}, with their keys and sessions?`)) {
      act("DELETE", `/api/admin/users/${u.id}`, undefined, () => kura.say(`${u.email} is deleted.`, "ok"));
    }
  },
};

const user = (el) => el.closest("tr[data-id]").dataset;

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("#users button[data-action]");
  if (b) actions[b.dataset.action](user(b));
});
document.addEventListener("change", (ev) => {
  const s = ev.target.closest('#users select[data-action="role"]');
  if (!s) return;
  const u = user(s);
  act("PUT", `/api/admin/users/${u.id}/role`, { role: s.value }, () => kura.say(`${u.email} is now ${s.value}.`, "ok"));
});

$("invite").addEventListener("submit", (ev) => {
  ev.preventDefault();
  act("POST", "/api/admin/users", kura.form(ev.target), (r) => { showLink(r); ev.target.reset(); });
});
