// Shared page helpers: API calls with the session's CSRF token, messages, small DOM helpers.
"use strict";

const kura = {
  csrf() {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  },

  // Calls the API; resolves to the parsed JSON, rejects with {status, error, message, ...}.
  async api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = kura.csrf();
    if (token) headers["X-CSRF-Token"] = token;
    const r = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    if (!r.ok) {
      const e = Object.assign({ status: r.status, message: `request failed (${r.status})` }, data || {});
      if (r.status === 401 && !path.startsWith("/api/auth/")) {
        location.href = "/login?next=" + encodeURIComponent(location.pathname);
      }
      throw e;
    }
    return data;
  },

  say(text, kind) {
    const el = document.getElementById("message");
    if (!el) return;
    el.textContent = text || "";
    el.className = "message " + (kind || "");
  },

  fail(e) { kura.say(e.message || String(e), "error"); },

  form(el) {
    const out = {};
    for (const [k, v] of new FormData(el).entries()) out[k] = typeof v === "string" ? v : "";
    return out;
  },

  el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
    return e;
  },

  when(ts) { return ts ? new Date(ts).toLocaleString() : "—"; },

  // Where to go after signing in: a local path from ?next=, else the account page.
  next() {
    const n = new URLSearchParams(location.search).get("next");
    return n && n.startsWith("/") && !n.startsWith("//") ? n : "/settings/account";
  },
};

document.addEventListener("DOMContentLoaded", () => {
  const out = document.getElementById("sign-out");
  if (out) out.addEventListener("click", async () => {
    try { await kura.api("POST", "/api/auth/logout", {}); } finally { location.href = "/login"; }
  });
});
