"use strict";
// The health page: refreshed when a sync ends (sizes, failures) and every minute.
(() => {
  const refresh = kura.debounce(() => kura.refresh("live", "/health").catch(() => {}), 500);
  for (const t of ["sync_completed", "sync_failed", "csv_deleted", "resync"]) kura.on(t, refresh);
  setInterval(refresh, 60000);
})();
