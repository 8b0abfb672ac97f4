//! Named long-lived background tasks and their ordered shutdown.
//!
//! One root [`CancellationToken`] and one [`TaskTracker`]: every task is spawned by name,
//! its loop selects on the token, and shutdown waits for all of them with a deadline,
//! naming any task that overruns (kanidm's `CoreHandle` does the same).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::locks::lock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub(crate) struct Tasks {
    token: CancellationToken,
    tracker: TaskTracker,
    running: Arc<Mutex<Vec<String>>>,
}

impl Tasks {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The token every task watches; cancelled when shutdown starts.
    pub(crate) fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Spawns a named task that runs until it returns or the token is cancelled.
    pub(crate) fn spawn<F>(&self, name: &'static str, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_dynamic(name.to_owned(), fut);
    }

    /// Like [`Tasks::spawn`], for names made at run time (`sync:sales`).
    pub(crate) fn spawn_dynamic<F>(&self, name: String, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        lock(&self.running).push(name.clone());
        let running = self.running.clone();
        self.tracker.spawn(async move {
            fut.await;
            let mut names = lock(&running);
            if let Some(i) = names.iter().position(|n| *n == name) {
                names.remove(i);
            }
            tracing::debug!(task = %name, "background task finished");
        });
    }

    /// Cancels every task and waits up to `deadline` for them to finish.
    pub(crate) async fn shutdown(&self, deadline: Duration) {
        self.token.cancel();
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            let names = lock(&self.running).join(", ");
            tracing::warn!(tasks = %names, "background tasks did not stop in time");
        }
    }
}
