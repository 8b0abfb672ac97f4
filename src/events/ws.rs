//! `GET /ws`: the live event stream. Authenticated like every route (cookie, or
//! `?token=<API key>` since browsers cannot set headers on a WebSocket), and guarded by
//! `health.view` in the route table.

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::app::AppState;
use crate::auth::Principal;

pub async fn upgrade(
    State(state): State<AppState>,
    principal: Principal,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| stream(state, principal, socket))
}

async fn stream(state: AppState, principal: Principal, mut socket: WebSocket) {
    let mut events = state.events.subscribe();
    let token = state.tasks.token();
    let hello = json!({"type": "hello", "role": principal.role, "email": principal.email});
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            incoming = socket.recv() => match incoming {
                // Clients only listen; pings are answered by axum, anything else is ignored.
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            event = events.recv() => {
                let text = match event {
                    Ok(event) => serde_json::to_string(&event).unwrap_or_default(),
                    // The client fell behind the bus: tell it to reload state, go on.
                    Err(RecvError::Lagged(missed)) => json!({"type": "resync", "missed": missed}).to_string(),
                    Err(RecvError::Closed) => break,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
