// The account page: password, two-factor enrolment, API keys, sessions. The two-factor
// state, the keys and the sessions are rendered by the server and fetched again after
// each change; only what an answer carries once (a new key, the enrolment secret and its
// recovery codes) is shown from the answer itself.
const { $ } = kura;
const twoFactor = kura.live([], { part: "tfa-live" });
const keys = kura.live([], { part: "keys-live" });
const sessions = kura.live([], { part: "sessions-live" });

// What each form does with its answer.
const forms = {
  "password": async (form, v) => {
    const answer = await kura.api("POST", "/api/auth/change-password", v);
    // The session continues under a new id and CSRF token.
    document.querySelector('meta[name="csrf-token"]').content = answer.csrf_token || "";
    form.reset();
    kura.say("Password changed; your other sessions were signed out.", "ok");
    await sessions.now();
  },
  "tfa-start": async (form, v) => {
    const s = await kura.api("POST", "/api/auth/2fa/setup", v);
    $("tfa-secret").textContent = s.secret;
    $("tfa-qr").src = s.qr_code;
    $("tfa-codes").replaceChildren(...s.recovery_codes.map((c) => kura.el("li", {}, kura.el("code", {}, c))));
    form.hidden = true;
    $("tfa-enrol").hidden = false;
  },
  "tfa-confirm": async (form, v) => {
    await kura.api("POST", "/api/auth/2fa/verify-setup", v);
    form.reset();
    $("tfa-enrol").hidden = true;
    kura.say("Two-factor sign-in is on. Keep your recovery codes somewhere safe.", "ok");
    await twoFactor.now();
  },
  "tfa-disable": async (_form, v) => {
    await kura.api("POST", "/api/auth/2fa/disable", v);
    kura.say("Two-factor sign-in is off.", "ok");
    await twoFactor.now();
  },
  "tfa-regenerate": async (form, v) => {
    const r = await kura.api("POST", "/api/auth/2fa/regenerate-recovery", v);
    form.reset();
    kura.say("New recovery codes (the old ones no longer work): " + r.recovery_codes.join("  "), "ok");
  },
  "key-create": async (form, v) => {
    const body = { name: v.name };
    if (v.expires_in_days) body.expires_in_days = Number(v.expires_in_days);
    const k = await kura.api("POST", "/api/auth/api-keys", body);
    $("key-value").textContent = k.key;
    $("key-new").hidden = false;
    form.reset();
    await keys.now();
  },
};

document.addEventListener("submit", async (ev) => {
  const handle = forms[ev.target.id];
  if (!handle) return;
  ev.preventDefault();
  try { await handle(ev.target, kura.form(ev.target)); } catch (e) { kura.fail(e); }
});

document.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-action]");
  if (!b) return;
  const row = b.closest("tr[data-id]").dataset;
  try {
    if (b.dataset.action === "revoke") {
      if (!confirm(`Revoke the key "${row.name}"? Scripts using it stop working at once.`)) return;
      await kura.api("DELETE", `/api/auth/api-keys/${row.id}`);
      kura.say(`The key "${row.name}" is revoked.`, "ok");
      await keys.now();
    } else if (b.dataset.action === "end-session") {
      await kura.api("DELETE", `/api/auth/sessions/${encodeURIComponent(row.id)}`);
      kura.say("That session is signed out.", "ok");
      await sessions.now();
    }
  } catch (e) { kura.fail(e); }
});
