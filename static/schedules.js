"use strict";
// The schedules page: each schedule with its next and last run, Run now / Cancel, history.
(() => {
  const $ = (id) => document.getElementById(id);
  const manage = $("schedules").dataset.manage === "true";
  $("tz").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone;

  function historyRow(r) {
    return kura.el("tr", {}, kura.el("td", {}, kura.when(r.started_at)), kura.el("td", {}, r.trigger),
      kura.el("td", {}, r.status), kura.el("td", {}, r.rows ?? "—"),
      kura.el("td", {}, r.duration_ms == null ? "—" : `${(r.duration_ms / 1000).toFixed(1)} s`),
      kura.el("td", {}, r.error || ""));
  }

  async function toggleHistory(name, cell) {
    if (cell.firstChild) { cell.replaceChildren(); return; }
    const { runs } = await kura.api("GET", `/api/schedules/${encodeURIComponent(name)}/history?limit=20`);
    cell.replaceChildren(runs.length ? kura.el("table", { class: "grid" },
      kura.el("thead", {}, kura.el("tr", {}, ...["Started", "Trigger", "Status", "Rows", "Took", "Error"].map((h) => kura.el("th", {}, h)))),
      kura.el("tbody", {}, ...runs.map(historyRow))) : kura.el("p", { class: "muted" }, "No runs yet."));
  }

  async function act(method, path, done) {
    try { const r = await kura.api(method, path, {}); if (done) done(r); load(); } catch (e) { kura.fail(e); }
  }

  function rows(s) {
    const detail = kura.el("td", { colspan: "6" });
    const buttons = [kura.el("button", { type: "button", class: "link-dark", onclick: () => toggleHistory(s.name, detail).catch(kura.fail) }, "History")];
    if (manage && s.active_job == null) {
      buttons.push(kura.el("button", { type: "button", onclick: () => act("POST", `/api/schedules/${s.name}/trigger`,
        (r) => kura.say(`${s.name}: job ${r.job_id} started.`, "ok")) }, "Run now"));
    }
    if (manage && s.active_job != null) {
      buttons.push(kura.el("button", { type: "button", class: "danger", onclick: () => act("POST", `/api/schedules/jobs/${s.active_job}/cancel`,
        () => kura.say(`${s.name}: cancelling job ${s.active_job}.`, "ok")) }, "Cancel"));
    }
    const when = [s.description, s.timezone !== "UTC" ? `(${s.timezone})` : ""].join(" ");
    const status = s.active_job != null ? `running (job ${s.active_job})` : s.last_status ? `${s.last_status}, ${kura.when(s.last_run_at)}` : "never ran";
    const main = kura.el("tr", {},
      kura.el("td", {}, kura.el("strong", {}, s.name), s.enabled ? "" : " (disabled)",
        ...s.warnings.map((w) => kura.el("div", { class: "warning" }, w))),
      kura.el("td", {}, when, kura.el("div", { class: "muted" }, kura.el("code", {}, s.expression))),
      kura.el("td", {}, s.sources.join(", ")),
      kura.el("td", {}, s.next_run ? kura.when(s.next_run) : "—"),
      kura.el("td", {}, status),
      kura.el("td", { class: "actions" }, ...buttons));
    return [main, kura.el("tr", {}, detail)];
  }

  async function load() {
    const [list, file, unscheduled, notifications] = await Promise.all([
      kura.api("GET", "/api/schedules"), kura.api("GET", "/api/schedules/file"),
      kura.api("GET", "/api/sources/unscheduled"), kura.api("GET", "/api/notifications/config"),
    ]);
    $("file-error").hidden = file.valid;
    $("file-errors").replaceChildren(...file.errors.map((e) => kura.el("li", {}, kura.el("code", {}, e))));
    $("schedules").replaceChildren(...(list.length ? list.flatMap(rows)
      : [kura.el("tr", {}, kura.el("td", { colspan: "6", class: "muted" }, "No schedules: add some to schedules.yml."))]));
    $("unscheduled").textContent = unscheduled.sources.length ? unscheduled.sources.join(", ") : "Every source is scheduled.";
    $("webhooks").replaceChildren(...(notifications.webhooks.length
      ? notifications.webhooks.map((h) => kura.el("li", {}, `${h.name}: `, kura.el("code", {}, h.url), ` (${h.format})`))
      : [kura.el("li", { class: "muted" }, "No webhooks in schedules.yml.")]));
  }

  const test = $("test-webhooks");
  if (test) test.addEventListener("click", async () => {
    try {
      const { results } = await kura.api("POST", "/api/notifications/test", {});
      kura.say(results.map((r) => `${r.name}: ${r.delivered ? "delivered" : r.error}`).join("; "), results.every((r) => r.delivered) ? "ok" : "error");
    } catch (e) { kura.fail(e); }
  });

  load().catch(kura.fail);
  setInterval(() => load().catch(() => {}), 15000);
})();
