// The health page: refreshed when a sync changes sizes or failures, and every minute.
kura.live(kura.events.data, { wait: 500, every: 60000 });
