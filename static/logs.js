"use strict";
// The activity log: time filters in the reader's zone (sent as UTC), and a live tail of
// new events that match the filters.
(() => {
  const form = document.getElementById("log-filters");
  const pad = (n) => String(n).padStart(2, "0");
  // datetime-local shows local time; the server filters on UTC.
  for (const input of form.querySelectorAll("input[type=datetime-local]")) {
    const utc = input.dataset.utc;
    if (utc) {
      const d = new Date(utc);
      if (!isNaN(d)) input.value = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
    }
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form).entries()) {
      if (!v) continue;
      params.set(k, form.elements[k].type === "datetime-local" ? new Date(v).toISOString() : v);
    }
    location.search = params.toString();
  });

  const f = Object.fromEntries(new URLSearchParams(location.search));
  const rank = { info: 0, warning: 1, error: 2 };
  function matches(e) {
    if (f.source && e.source !== f.source) return false;
    if (f.level && rank[e.level] < rank[f.level]) return false;
    if (f.q && !e.message.toLowerCase().includes(f.q.toLowerCase())) return false;
    if (f.until) return false; // a window that ends in the past gets no new rows
    return true;
  }
  kura.on("*", (e) => {
    if (!document.getElementById("tail").checked || !e.message || !e.level) return;
    if (!matches(e)) return;
    const { level, message } = e;
    const row = kura.el("tr", { class: `level-${level} fresh` },
      kura.el("td", { class: "nowrap" }, kura.when(e.timestamp)),
      kura.el("td", {}, kura.el("span", { class: `pill pill-${level}` }, level[0].toUpperCase() + level.slice(1))),
      kura.el("td", {}, e.source ? kura.el("a", { href: `/sources/${encodeURIComponent(e.source)}` }, e.source) : "—"),
      kura.el("td", {}, kura.el("code", {}, e.type)),
      kura.el("td", {}, message));
    document.getElementById("log-rows").prepend(row);
    const none = document.getElementById("no-logs");
    if (none) none.remove();
  });
  kura.on("resync", () => { if (document.getElementById("tail").checked) location.reload(); });
})();
