//! `GET /ws`: the live event stream, and `GET /api/clients`, who is listening.
//!
//! Authenticated like every route (cookie, or `?token=<API key>` since browsers cannot set
//! headers on a WebSocket), and guarded by `health.view` in the route table. A client
//! gets a `connected` greeting, then every bus event as JSON, and a ping every
//! [`PING_EVERY`]. A client that falls behind the bus gets `{"type": "resync"}` and should
//! reload what it shows; one that stops reading (a send blocks for [`SEND_TIMEOUT`]) or
//! stops answering pings is dropped. Neither can slow the bus or other clients.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::app::AppState;
use crate::auth::Principal;
use crate::web::conn::PeerAddr;
use crate::web::extract::Json;

const PING_EVERY: Duration = Duration::from_secs(25);
/// A client that has sent nothing (not even a pong) for this long is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(70);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Unsent bytes a client may hold before its sends fail and it is dropped.
const MAX_WRITE_BUFFER: usize = 1024 * 1024;

/// One live connection, as `GET /api/clients` lists it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClientInfo {
    pub(crate) id: u64,
    pub(crate) user: String,
    pub(crate) role: &'static str,
    pub(crate) since: String,
    pub(crate) address: String,
}

/// The live connections.
#[derive(Default)]
pub(crate) struct Clients {
    next: AtomicU64,
    live: Mutex<BTreeMap<u64, ClientInfo>>,
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, ClientInfo>> {
        crate::locks::lock(&self.live)
    }

    fn add(self: &Arc<Self>, principal: &Principal, address: SocketAddr) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock().insert(
            id,
            ClientInfo {
                id,
                user: principal.email.clone(),
                role: principal.role.as_str(),
                since: crate::time::now_text(),
                address: address.to_string(),
            },
        );
        Registration {
            clients: self.clone(),
            id,
        }
    }

    pub(crate) fn list(&self) -> Vec<ClientInfo> {
        self.lock().values().cloned().collect()
    }
}

/// Removes the connection from the list however its task ends.
struct Registration {
    clients: Arc<Clients>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.clients.lock().remove(&self.id);
    }
}

pub(crate) async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(PeerAddr(address)): ConnectInfo<PeerAddr>,
    principal: Principal,
    ws: WebSocketUpgrade,
) -> Response {
    // Clients only listen, and events are small: tungstenite's default 128 KiB read and
    // write buffers per connection would make a thousand dashboards cost 250 MB.
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| stream(state, principal, address, socket))
}

/// `GET /api/clients` (admin): the live WebSocket connections.
pub(crate) async fn list_clients(State(state): State<AppState>) -> Json<serde_json::Value> {
    let clients = state.clients.list();
    Json(json!({"clients": clients, "count": clients.len()}))
}

async fn send(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

async fn stream(state: AppState, principal: Principal, address: SocketAddr, mut socket: WebSocket) {
    let _registration = state.clients.add(&principal, address);
    let mut events = state.events.subscribe();
    let token = state.tasks.token();
    let hello = json!({
        "type": "connected",
        "event": "connected",
        "timestamp": crate::time::now_text(),
        "user": principal.email,
        "role": principal.role,
        "syncing": state.syncs.running(),
    });
    if !send(&mut socket, Message::Text(hello.to_string().into())).await {
        return;
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        let message = tokio::select! {
            () = token.cancelled() => break,
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                // Clients only listen; anything they send (pongs included) shows they are there.
                Some(Ok(_)) => { last_heard = tokio::time::Instant::now(); continue; }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    break;
                }
                Message::Ping(Vec::new().into())
            }
            event = events.recv() => match event {
                Ok(published) => Message::Text(published.json),
                // The client fell behind the bus: tell it to reload what it shows, go on.
                Err(RecvError::Lagged(missed)) => Message::Text(json!({
                    "type": "resync",
                    "event": "resync",
                    "timestamp": crate::time::now_text(),
                    "missed": missed,
                }).to_string().into()),
                Err(RecvError::Closed) => break,
            },
        };
        if !send(&mut socket, message).await {
            return;
        }
    }
    let _ = send(&mut socket, Message::Close(None)).await;
}
