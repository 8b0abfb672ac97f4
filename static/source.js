// A source's page: sync, upload (drag and drop or the file input, with progress), file
// delete, table previews; the #live part follows events for this source.
const { $ } = kura;
const name = $("live").dataset.source;
const enc = encodeURIComponent(name);

// A live update re-renders the page's data; the table previews that were open stay open.
const refresh = kura.live(["*"], {
  url: () => location.pathname,
  wait: 150,
  filter: (e) => e.type === "resync" || e.source === name,
  before: () => [...document.querySelectorAll('.preview[aria-expanded="true"]')].map((b) => b.dataset.table),
  after: (open) => {
    for (const table of open) {
      const button = document.querySelector(`.preview[data-table="${CSS.escape(table)}"]`);
      if (button) showPreview(button);
    }
  },
});

// Opens a table's preview under its button: the first 100 rows in the result grid.
async function showPreview(pre) {
  const slot = pre.closest(".table-block").querySelector(".preview-slot");
  pre.setAttribute("aria-expanded", "true");
  slot.hidden = false;
  slot.replaceChildren(kura.el("p", { class: "muted" }, "Loading…"));
  try {
    const r = await kura.api("GET", `/api/sources/${enc}/tables/${encodeURIComponent(pre.dataset.table)}/preview?limit=100`);
    kuraGrid.render(slot, r);
  } catch (err) { slot.replaceChildren(kura.el("p", { class: "message error" }, err.message)); }
}

async function sync(full) {
  try {
    const r = await kura.api("POST", `/api/sources/${enc}/sync`, { full_refresh: full });
    kura.say(`${full ? "Full refresh" : "Sync"} of ${name} started (record ${r.record_id}).`, "ok");
  } catch (e) { kura.fail(e); }
}
if ($("sync")) $("sync").addEventListener("click", () => sync(false));
if ($("full-refresh")) $("full-refresh").addEventListener("click", () => {
  if (confirm(`Reload every file of ${name} from scratch? Its tables are rebuilt.`)) sync(true);
});

document.addEventListener("click", async (e) => {
  const del = e.target.closest(".delete-file");
  if (del) {
    const path = del.dataset.path;
    if (!confirm(`Delete ${path} from disk? Its rows leave the warehouse too.`)) return;
    try {
      await kura.api("DELETE", `/api/sources/${enc}/csv-files?file_path=${encodeURIComponent(path)}`);
      kura.say(`${path} deleted.`, "ok");
      refresh();
    } catch (err) { kura.fail(err); }
    return;
  }
  const pre = e.target.closest(".preview");
  if (pre) {
    if (pre.getAttribute("aria-expanded") === "true") {
      pre.setAttribute("aria-expanded", "false");
      pre.closest(".table-block").querySelector(".preview-slot").hidden = true;
    } else {
      showPreview(pre);
    }
  }
});

// Upload: one file at a time, with a progress bar; the load itself shows up live.
async function upload(file, overwrite) {
  $("upload-progress").hidden = false;
  $("upload-name").textContent = file.name;
  const show = (f) => { $("upload-bar").value = Math.round(f * 100); $("upload-percent").textContent = `${Math.round(f * 100)}%`; };
  show(0);
  try {
    const r = await kura.upload(`/api/sources/${enc}/upload-csv${overwrite ? "?overwrite=true" : ""}`, file, show);
    show(1);
    kura.say(`${r.file || file.name} uploaded (${kura.bytes(r.bytes ?? file.size)}); loading…`, "ok");
    refresh();
  } catch (e) {
    if (e.error === "file_exists" && !overwrite && confirm(`${file.name} already exists. Replace it?`)) return upload(file, true);
    kura.fail(e);
  } finally {
    setTimeout(() => { $("upload-progress").hidden = true; }, 1500);
  }
}
const input = $("upload-input");
if (input) {
  input.addEventListener("change", () => { if (input.files[0]) upload(input.files[0]); input.value = ""; });
  const zone = $("dropzone");
  for (const t of ["dragenter", "dragover"]) zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("over"); });
  for (const t of ["dragleave", "drop"]) zone.addEventListener(t, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    const files = [...e.dataTransfer.files];
    if (files.length > 1) kura.say("One file at a time, please: uploading the first.", "error");
    if (files[0]) upload(files[0]);
  });
}
