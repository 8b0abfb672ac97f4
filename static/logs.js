// The activity log: time filters in the reader's zone (sent as UTC), and a live tail.
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

// Live tail: while it is on, every event brings the filtered rows again from the server
// (the filters are in the page's address, so the server applies them).
const tail = document.getElementById("tail");
kura.live(["*"], { wait: 300, filter: () => tail.checked });
