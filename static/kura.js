// Shared page helpers: API calls with the session's CSRF token, messages, small DOM
// helpers, live events, and the one way pages stay current (`kura.live`). A module that
// publishes `window.kura`; the page scripts are modules that run after it.

const kura = {
  $(id) { return document.getElementById(id); },

  csrf() {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  },

  // Calls the API; resolves to the parsed JSON, rejects with {status, error, message, ...}.
  async api(method, path, body) {
    // X-Requested-With: a header no cross-site form can send (Kura with auth off needs it).
    const headers = { "Accept": "application/json", "X-Requested-With": "XMLHttpRequest" };
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

  // Where to go after signing in: a local path from ?next=, else the overview.
  next() {
    const n = new URLSearchParams(location.search).get("next");
    return n && n.startsWith("/") && !n.startsWith("//") ? n : "/";
  },

  // A message for the next page (after a redirect or reload).
  flash(text, kind) { sessionStorage.setItem("kura.flash", JSON.stringify([text, kind || "ok"])); },

  number(n) { return n == null ? "—" : Number(n).toLocaleString(); },

  bytes(n) {
    if (n == null) return "—";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0; let v = Number(n);
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v.toFixed(i && v < 10 ? 1 : 0)} ${units[i]}`;
  },

  // "3 min ago" for an ISO time.
  ago(ts) {
    if (!ts) return "never";
    const s = Math.max(0, (Date.now() - new Date(ts).getTime()) / 1000);
    if (s < 45) return "just now";
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  },

  // Live events from /ws. kura.on(type, fn) listens to one event type ("*" for all);
  // "resync" is raised after a reconnect or when the server says events were missed,
  // and a page should then reload what it shows.
  listeners: {},
  on(type, fn) { (kura.listeners[type] = kura.listeners[type] || []).push(fn); },
  emit(type, event) {
    for (const fn of [...(kura.listeners[type] || []), ...(kura.listeners["*"] || [])]) {
      try { fn(event); } catch (e) { console.error(e); }
    }
  },
  syncing: new Set(),
  showSyncing() {
    const el = document.getElementById("syncing");
    if (!el) return;
    const n = kura.syncing.size;
    el.hidden = n === 0;
    el.dataset.sources = [...kura.syncing].join(",");
    document.getElementById("syncing-text").textContent = `Syncing ${n} source${n === 1 ? "" : "s"}`;
    el.title = [...kura.syncing].join(", ");
  },
  setLive(state, text) {
    const el = document.getElementById("live-status");
    if (!el) return;
    el.dataset.state = state;
    document.getElementById("live-text").textContent = text;
  },
  connect() {
    let delay = 1000;
    let opened = false;
    const open = () => {
      const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
      ws.onmessage = (m) => {
        let e; try { e = JSON.parse(m.data); } catch (_) { return; }
        if (e.type === "connected") {
          delay = 1000;
          kura.syncing = new Set(e.syncing || []);
          kura.showSyncing();
          kura.setLive("on", "Live");
          // Anything may have happened while we were away.
          if (opened) kura.emit("resync", e);
          opened = true;
          return;
        }
        if (e.type === "sync_started") kura.syncing.add(e.source);
        if (e.type === "sync_completed" || e.type === "sync_failed") kura.syncing.delete(e.source);
        kura.showSyncing();
        kura.emit(e.type, e);
      };
      ws.onclose = () => {
        kura.setLive("off", `Reconnecting in ${Math.round(delay / 1000)} s…`);
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 30000) * (0.8 + Math.random() * 0.4);
      };
    };
    open();
  },

  // Calls fn at most once per `ms`, at the end of a burst.
  debounce(fn, ms) {
    let t = null;
    return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
  },

  // Server-rendered times (UTC) in the reader's zone, byte counts in KB/MB; run on every
  // page and after every refresh.
  localize(root) {
    const scope = root || document;
    for (const t of scope.querySelectorAll("time[datetime]")) t.textContent = kura.when(t.getAttribute("datetime"));
    for (const b of scope.querySelectorAll("[data-bytes]")) b.textContent = kura.bytes(b.dataset.bytes);
    // Bar heights: set through the CSSOM, which the content security policy allows (it
    // refuses inline style attributes).
    for (const b of scope.querySelectorAll("[data-percent]")) b.style.height = `${Number(b.dataset.percent)}%`;
  },

  // Which live events change what a kind of page shows (the data pages: sources, files,
  // tables, health; the schedules page).
  events: {
    data: ["sync_started", "sync_completed", "sync_failed", "csv_uploaded", "csv_deleted",
      "freshness_update", "schema_drift", "sync_stale"],
    schedules: ["schedule_started", "schedule_completed", "schedule_failed", "sync_completed", "sync_failed"],
    models: ["dbt_run_started", "dbt_run_completed", "dbt_run_failed", "dbt_run_finished", "models_invalid"],
  },

  // Keeps the page's server-rendered #live part (or `part`) current, the one way every
  // page updates:
  // it is fetched again (at most once per `wait` ms) on any event of `types` ("*": every
  // event) that `filter` accepts, after a reconnect ("resync"), and every `every` ms when
  // given. `before()` runs before a swap and its value goes to `after(value)`. Returns the
  // refresher; `refresher.now()` refreshes at once and resolves when the part is in place.
  live(types, { part = "live", url = () => location.pathname + location.search, wait = 200, every, filter, before, after } = {}) {
    const now = async () => {
      const kept = before ? before() : undefined;
      await kura.refresh(part, url());
      if (after) after(kept);
    };
    const soon = kura.debounce(() => now().catch(() => {}), wait);
    // Only the server's events: the page's own ("refreshed") would refresh it forever.
    for (const t of types) kura.on(t, (e) => { if (e.type !== "refreshed" && (!filter || filter(e))) soon(); });
    kura.on("resync", () => { if (!filter || filter({ type: "resync" })) soon(); });
    if (every) setInterval(soon, every);
    soon.now = now;
    return soon;
  },

  // Replaces the element `id` with the same element from the page at `url` (the server
  // renders the whole page), keeping one template for the first view and updates.
  async refresh(id, url) {
    const r = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } });
    if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
    if (!r.ok) throw new Error(`cannot refresh (${r.status})`);
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = doc.getElementById(id);
    const old = document.getElementById(id);
    if (fresh && old) { kura.localize(fresh); old.replaceWith(fresh); kura.emit("refreshed", { type: "refreshed", id }); }
  },

  // Uploads `file` with a progress callback (fetch cannot report upload progress).
  upload(path, file, onProgress) {
    return new Promise((resolve, reject) => {
      const x = new XMLHttpRequest();
      x.open("POST", path);
      x.setRequestHeader("X-CSRF-Token", kura.csrf());
      x.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      x.setRequestHeader("Accept", "application/json");
      x.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
      x.onload = () => {
        let data = null; try { data = JSON.parse(x.responseText); } catch (_) { data = null; }
        if (x.status >= 200 && x.status < 300) resolve(data);
        else reject(Object.assign({ status: x.status, message: `upload failed (${x.status})` }, data || {}));
      };
      x.onerror = () => reject({ message: "the upload was interrupted (network error)" });
      const form = new FormData();
      form.append("file", file, file.name);
      x.send(form);
    });
  },
};

window.kura = kura;

document.addEventListener("DOMContentLoaded", () => {
  const flash = sessionStorage.getItem("kura.flash");
  if (flash) {
    sessionStorage.removeItem("kura.flash");
    try { const [text, kind] = JSON.parse(flash); kura.say(text, kind); } catch (_) { /* ignore */ }
  }
  // Forms handled by the page scripts never submit themselves (no inline handlers: the
  // content security policy allows scripts from /static only).
  for (const f of document.querySelectorAll("form[data-no-submit]")) f.addEventListener("submit", (e) => e.preventDefault());
  if (document.body.classList.contains("app")) { kura.localize(); kura.connect(); }
  const out = document.getElementById("sign-out");
  if (out) out.addEventListener("click", async () => {
    try { await kura.api("POST", "/api/auth/logout", {}); } finally { location.href = "/login"; }
  });
});
