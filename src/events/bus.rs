//! `EventBus`: a tokio broadcast of [`Event`]s, each also appended to the activity log.
//!
//! Publishing never waits for listeners: a slow WebSocket client lags behind the broadcast
//! buffer and is told to resync; it cannot slow the bus.

use chrono::Utc;
use tokio::sync::broadcast;

use super::{Event, EventKind};
use crate::db::meta::MetaDb;

const CAPACITY: usize = 1024;

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    meta: MetaDb,
}

impl EventBus {
    pub fn new(meta: MetaDb) -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            meta,
        }
    }

    /// Appends the event to the activity log, then broadcasts it.
    pub async fn publish(&self, kind: EventKind) {
        let event = Event::new(kind, Utc::now());
        let row = event.clone();
        let logged = self
            .meta
            .write(move |tx| {
                let payload = serde_json::to_string(&row).unwrap_or_default();
                let kind_name = serde_json::to_value(&row)
                    .ok()
                    .and_then(|v| v["type"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                tx.execute(
                    "INSERT INTO activity_log (ts, type, level, source, message, payload) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![
                        row.timestamp,
                        kind_name,
                        row.kind.level(),
                        row.kind.source(),
                        row.kind.message(),
                        payload
                    ],
                )
            })
            .await;
        if let Err(e) = logged {
            tracing::warn!(error = %e, "cannot append an event to the activity log");
        }
        // No listeners is fine.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
