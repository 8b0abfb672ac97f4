"use strict";
// The account page: password, two-factor enrolment, API keys, sessions.
(() => {
  const $ = (id) => document.getElementById(id);

  $("password").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const answer = await kura.api("POST", "/api/auth/change-password", kura.form(ev.target));
      // The session continues under a new id and CSRF token.
      document.querySelector('meta[name="csrf-token"]').content = answer.csrf_token || "";
      ev.target.reset();
      kura.say("Password changed; your other sessions were signed out.", "ok");
      loadSessions();
    } catch (e) { kura.fail(e); }
  });

  async function loadTwoFactor() {
    const me = await kura.api("GET", "/api/auth/me");
    const on = me.two_factor_enabled;
    $("tfa-status").textContent = on
      ? "On: signing in asks for a code from your authenticator app."
      : me.two_factor_required
        ? "This server requires two-factor sign-in: set it up to continue."
        : "Off.";
    $("tfa-start").hidden = on;
    $("tfa-disable").hidden = !on;
    $("tfa-regenerate").hidden = !on;
  }

  $("tfa-start").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const s = await kura.api("POST", "/api/auth/2fa/setup", kura.form(ev.target));
      $("tfa-secret").textContent = s.secret;
      $("tfa-qr").src = s.qr_code;
      $("tfa-codes").replaceChildren(...s.recovery_codes.map((c) => kura.el("li", {}, kura.el("code", {}, c))));
      ev.target.hidden = true;
      $("tfa-enrol").hidden = false;
    } catch (e) { kura.fail(e); }
  });

  $("tfa-confirm").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await kura.api("POST", "/api/auth/2fa/verify-setup", kura.form(ev.target));
      $("tfa-enrol").hidden = true;
      kura.say("Two-factor sign-in is on. Keep your recovery codes somewhere safe.", "ok");
      loadTwoFactor();
    } catch (e) { kura.fail(e); }
  });

  $("tfa-disable").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await kura.api("POST", "/api/auth/2fa/disable", kura.form(ev.target));
      ev.target.reset();
      kura.say("Two-factor sign-in is off.", "ok");
      loadTwoFactor();
    } catch (e) { kura.fail(e); }
  });

  $("tfa-regenerate").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await kura.api("POST", "/api/auth/2fa/regenerate-recovery", kura.form(ev.target));
      ev.target.reset();
      kura.say("New recovery codes (the old ones no longer work): " + r.recovery_codes.join("  "), "ok");
    } catch (e) { kura.fail(e); }
  });

  async function loadKeys() {
    const api_keys = await kura.api("GET", "/api/auth/api-keys?include_revoked=true");
    $("keys").replaceChildren(...api_keys.map((k) => kura.el("tr", {},
      kura.el("td", {}, k.name), kura.el("td", {}, kura.el("code", {}, k.prefix + "…")),
      kura.el("td", {}, kura.when(k.created_at)), kura.el("td", {}, k.expires_at ? kura.when(k.expires_at) : "never"),
      kura.el("td", {}, kura.when(k.last_used_at)), kura.el("td", {}, k.status),
      kura.el("td", {}, k.status === "active" ? kura.el("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Revoke the key "${k.name}"? Scripts using it stop working at once.`)) return;
        try { await kura.api("DELETE", `/api/auth/api-keys/${k.id}`); loadKeys(); } catch (e) { kura.fail(e); }
      } }, "Revoke") : ""))));
  }

  $("key-create").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = kura.form(ev.target);
    const body = { name: v.name };
    if (v.expires_in_days) body.expires_in_days = Number(v.expires_in_days);
    try {
      const k = await kura.api("POST", "/api/auth/api-keys", body);
      $("key-value").textContent = k.key;
      $("key-new").hidden = false;
      ev.target.reset();
      loadKeys();
    } catch (e) { kura.fail(e); }
  });

  async function loadSessions() {
    const sessions = await kura.api("GET", "/api/auth/sessions");
    $("sessions").replaceChildren(...sessions.map((s) => kura.el("tr", {},
      kura.el("td", {}, kura.when(s.created_at)), kura.el("td", {}, kura.when(s.last_seen_at)),
      kura.el("td", {}, s.ip || "—"), kura.el("td", {}, s.user_agent || "—"),
      kura.el("td", {}, s.current ? "this session" : kura.el("button", { type: "button", onclick: async () => {
        try { await kura.api("DELETE", `/api/auth/sessions/${s.id}`); loadSessions(); } catch (e) { kura.fail(e); }
      } }, "Sign out")))));
  }

  Promise.all([loadTwoFactor(), loadKeys(), loadSessions()]).catch(kura.fail);
})();
