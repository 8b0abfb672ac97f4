//! Webhook notifications for scheduled jobs: a JSON POST per target (generic, or a
//! Slack-compatible message), 10 s timeout, retried after 5 s and 15 s on 5xx, timeouts
//! and connection errors (never on 4xx). Delivery runs beside the job and never fails it.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::file::{Webhook, WebhookFormat};

const TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_AFTER: [Duration; 2] = [Duration::from_secs(5), Duration::from_secs(15)];

/// What happened, in the generic payload's fields.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Notice {
    /// schedule_completed, schedule_failed, sync_stale or test
    pub(crate) event: String,
    pub(crate) schedule: Option<String>,
    pub(crate) sources: Vec<String>,
    pub(crate) error: Option<String>,
    pub(crate) duration_seconds: f64,
    pub(crate) rows_loaded: u64,
    pub(crate) timestamp: String,
    pub(crate) dashboard_url: Option<String>,
}

fn payload(format: WebhookFormat, n: &Notice) -> Value {
    match format {
        WebhookFormat::Generic => json!(n),
        WebhookFormat::Slack => {
            let what = n.schedule.as_deref().unwrap_or("Kura");
            let headline = match n.event.as_str() {
                "schedule_completed" => format!(
                    ":white_check_mark: {what} completed: {} rows in {:.1} s",
                    n.rows_loaded, n.duration_seconds
                ),
                "schedule_failed" => format!(
                    ":x: {what} failed: {}",
                    n.error.as_deref().unwrap_or("unknown error")
                ),
                "sync_stale" => format!(
                    ":warning: {what}: {}",
                    n.error.as_deref().unwrap_or("data is stale")
                ),
                _ => format!(":bell: {what}: test notification from Kura"),
            };
            let mut text = headline;
            if !n.sources.is_empty() {
                text.push_str(&format!("\nSources: {}", n.sources.join(", ")));
            }
            if let Some(url) = &n.dashboard_url {
                text.push_str(&format!("\n<{url}|Open Kura>"));
            }
            json!({ "text": text })
        }
    }
}

/// Delivers `notice` to `hook`; the outcome as one line (status or error), for the log.
pub(crate) async fn deliver(
    client: &reqwest::Client,
    hook: &Webhook,
    notice: &Notice,
) -> Result<u16, String> {
    let body = payload(hook.format, notice);
    let mut last = String::new();
    for attempt in 0..=RETRY_AFTER.len() {
        if attempt > 0 {
            tokio::time::sleep(RETRY_AFTER[attempt - 1]).await;
        }
        match client
            .post(&hook.url)
            .timeout(TIMEOUT)
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Ok(r.status().as_u16()),
            Ok(r) if r.status().is_client_error() => {
                return Err(format!("refused with {} (not retried)", r.status()));
            }
            Ok(r) => last = format!("answered {}", r.status()),
            Err(e) if e.is_timeout() => last = "timed out after 10 s".into(),
            Err(e) => last = format!("could not connect: {e}"),
        }
    }
    Err(format!("{last} (after {} attempts)", RETRY_AFTER.len() + 1))
}

/// Delivers to every target in the background (a tracked task: shutdown waits for it),
/// logging each outcome.
pub(crate) fn send_all(tasks: &crate::tasks::Tasks, hooks: Vec<Webhook>, notice: Notice) {
    if hooks.is_empty() {
        return;
    }
    tasks.spawn("notify", async move {
        let client = reqwest::Client::new();
        for hook in hooks {
            match deliver(&client, &hook, &notice).await {
                Ok(status) => {
                    tracing::info!(webhook = %hook.name, event = %notice.event, status, "notification delivered")
                }
                Err(e) => {
                    tracing::warn!(webhook = %hook.name, event = %notice.event, error = %e, "notification not delivered")
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_messages_say_what_happened() {
        let n = Notice {
            event: "schedule_failed".into(),
            schedule: Some("nightly".into()),
            sources: vec!["sales".into()],
            error: Some("sales: bad.csv failed".into()),
            duration_seconds: 1.5,
            rows_loaded: 0,
            timestamp: "2026-01-01T00:00:00Z".into(),
            dashboard_url: Some("http://127.0.0.1:8800/".into()),
        };
        let text = payload(WebhookFormat::Slack, &n)["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            text.starts_with(":x: nightly failed: sales: bad.csv failed"),
            "{text}"
        );
        assert!(
            text.contains("Sources: sales") && text.contains("<http://127.0.0.1:8800/|Open Kura>")
        );
        let generic = payload(WebhookFormat::Generic, &n);
        for key in [
            "event",
            "schedule",
            "sources",
            "error",
            "duration_seconds",
            "rows_loaded",
            "timestamp",
            "dashboard_url",
        ] {
            assert!(generic.get(key).is_some(), "{key}");
        }
    }
}
