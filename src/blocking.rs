//! Runs blocking or CPU-heavy closures off the tokio workers.
//!
//! `spawn_blocking` with two additions: the caller's tracing span is kept, so logs from
//! the closure carry the request id, and a panic inside the closure is re-raised in the
//! caller instead of being turned into an error nobody expected (vaultwarden does the same).

use tracing::Span;

/// Runs `f` on tokio's blocking pool and returns its result.
pub(crate) async fn run<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(f)).await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only happens when the runtime shuts down under us; nothing sensible to return.
        Err(e) => panic!("blocking task was cancelled: {e}"),
    }
}
