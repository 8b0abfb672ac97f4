//! `EventBus`: a tokio broadcast of [`Event`]s, each also appended to the activity log.
//!
//! Publishing never waits for listeners: a slow WebSocket client lags behind the broadcast
//! buffer and is told to resync; it cannot slow the bus. Each event is serialised once,
//! here, and every listener sends the same shared text: with a thousand clients the
//! fan-out is a thousand reference-count increments, not a thousand JSON encodings.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use chrono::Utc;
use tokio::sync::broadcast;

use super::{Event, EventKind};
use crate::db::meta::MetaDb;

const CAPACITY: usize = 1024;

/// A published event as JSON, held as WebSocket text (a shared buffer: cloning
/// it for each client copies nothing).
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub(crate) json: Utf8Bytes,
}

#[derive(Clone)]
pub(crate) struct EventBus {
    tx: broadcast::Sender<Published>,
    meta: MetaDb,
}

impl EventBus {
    pub(crate) fn new(meta: MetaDb) -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            meta,
        }
    }

    /// Appends the event to the activity log, then broadcasts it.
    pub(crate) async fn publish(&self, kind: EventKind) {
        let event = Arc::new(Event::new(kind, Utc::now()));
        let json = serde_json::to_string(&*event).unwrap_or_default();
        let (row, payload) = (event.clone(), json.clone());
        let logged = self
            .meta
            .write(move |tx| super::activity::append(tx, &row, &payload))
            .await;
        if let Err(e) = logged {
            tracing::warn!(error = %e, "cannot append an event to the activity log");
        }
        // No listeners is fine.
        let _ = self.tx.send(Published { json: json.into() });
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.tx.subscribe()
    }
}
