//! `/api/schedules/...`: the schedules in force with their next and last runs, history,
//! triggering, reloading the file, and the sources no schedule covers.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::file::{Schedule, mask_url};
use super::repo;
use crate::app::AppState;
use crate::error::{AppError, Result};
use crate::web::extract::{Json, List, Path, Query};

/// Warnings about a schedule: its recent jobs take longer than the gap between its ticks.
fn warnings(s: &Schedule, typical_ms: Option<f64>) -> Vec<String> {
    let mut out = Vec::new();
    let gap = s.cron.shortest_interval(s.tz, chrono::Utc::now(), 50);
    if let (Some(ms), Some(gap)) = (typical_ms, gap)
        && ms > gap.num_milliseconds() as f64
    {
        out.push(format!(
            "its recent jobs took {:.0} s on average, longer than the {} min between its ticks: ticks will be skipped",
            ms / 1000.0,
            gap.num_minutes()
        ));
    }
    out
}

/// A schedule in the reference's shape (`type`, `next_run_time`, `last_run` as the last
/// run's object, `run_on`, `script_path`, `source_errors`) with Kura's keys beside it
/// (`next_run`, `last_run_at`, `last_status`, `active_job`, `warnings`, ...): one
/// description for `/api/schedules`, a schedule's route and the schedules page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScheduleView {
    #[serde(rename = "type")]
    kind: &'static str,
    next_run_time: Option<String>,
    run_on: &'static str,
    script_path: Option<String>,
    pub(crate) source_errors: Option<Vec<String>>,
    pub(crate) warnings: Vec<String>,
    pub(crate) name: String,
    cron: String,
    pub(crate) expression: String,
    pub(crate) description: String,
    pub(crate) timezone: String,
    pub(crate) sources: Vec<String>,
    pub(crate) enabled: bool,
    full_refresh: bool,
    timeout_minutes: u64,
    retries: u32,
    notify_on: Vec<super::file::NotifyOn>,
    pub(crate) next_run: Option<String>,
    last_run: Option<repo::Job>,
    pub(crate) last_run_at: Option<String>,
    pub(crate) last_status: Option<String>,
    pub(crate) active_job: Option<i64>,
}

fn describe(
    state: &AppState,
    s: &Schedule,
    known: &std::collections::BTreeMap<String, crate::sources::registry::Source>,
    last: Option<&repo::Job>,
    typical_ms: Option<f64>,
) -> ScheduleView {
    let next_run = state.schedules.next_run(&s.def.name).map(crate::time::text);
    let unknown: Vec<String> = s
        .def
        .sources
        .iter()
        .filter(|n| !known.contains_key(*n))
        .map(|n| format!("there is no source named {n}"))
        .collect();
    ScheduleView {
        kind: "sync",
        next_run_time: next_run.clone(),
        run_on: "both",
        script_path: None,
        source_errors: (!unknown.is_empty()).then_some(unknown),
        warnings: warnings(s, typical_ms),
        name: s.def.name.clone(),
        cron: s.def.cron.clone(),
        expression: s.cron.expression.clone(),
        description: s.cron.describe(),
        timezone: s.def.timezone.clone(),
        sources: s.def.sources.clone(),
        enabled: s.def.enabled,
        full_refresh: s.def.full_refresh,
        timeout_minutes: s.def.timeout_minutes,
        retries: s.def.retries,
        notify_on: s.def.notify_on.clone(),
        next_run,
        last_run: last.cloned(),
        last_run_at: last.map(|l| l.started_at.clone()),
        last_status: last.map(|l| l.status.clone()),
        active_job: state.schedules.active_job(&s.def.name),
    }
}

/// The mean duration of each schedule's last five finished jobs (skipped ticks aside).
async fn typical_durations(state: &AppState) -> Result<std::collections::HashMap<String, f64>> {
    Ok(state.meta.read(repo::typical_durations).await?)
}

async fn last_runs(state: &AppState) -> Result<std::collections::HashMap<String, repo::Job>> {
    Ok(state.meta.read(repo::last_runs).await?)
}

/// `GET /api/schedules`: the schedules in force, as a plain list.
pub(crate) async fn list_schedules(State(state): State<AppState>) -> Result<List<ScheduleView>> {
    Ok(List::all(described(&state).await?))
}

/// Every schedule in force, as `/api/schedules` and the page describe it.
pub(crate) async fn described(state: &AppState) -> Result<Vec<ScheduleView>> {
    let current = state.schedules.current();
    let last = last_runs(state).await?;
    let typical = typical_durations(state).await?;
    let known = state.sources();
    let schedules: Vec<ScheduleView> = current
        .schedules
        .schedules
        .iter()
        .map(|s| {
            describe(
                state,
                s,
                &known,
                last.get(&s.def.name),
                typical.get(&s.def.name).copied(),
            )
        })
        .collect();
    Ok(schedules)
}

/// `GET /api/schedules/file`: `schedules.yml` itself: where, whether it is valid as it is
/// on disk now (its problems when not: the previous schedules stay in force), and when
/// the schedules in force were read.
pub(crate) async fn show_schedules_file(State(state): State<AppState>) -> Json<Value> {
    let current = state.schedules.current();
    Json(json!({
        "path": super::file_path(&state.config),
        "valid": current.errors.is_empty(),
        "errors": current.errors,
        "loaded_at": crate::time::text(current.loaded_at),
    }))
}

fn find(state: &AppState, name: &str) -> Result<Schedule> {
    state
        .schedules
        .current()
        .schedules
        .schedules
        .iter()
        .find(|s| s.def.name == name)
        .cloned()
        .ok_or_else(|| unknown_schedule(name))
}

pub(crate) fn unknown_schedule(name: &str) -> AppError {
    AppError::Missing {
        code: "schedule_not_found",
        message: format!("there is no schedule {name:?}"),
    }
}

/// The latest jobs of one schedule (`None`: of every schedule), newest first.
async fn runs(
    state: &AppState,
    schedule: Option<String>,
    status: Option<String>,
    limit: u32,
    offset: u32,
) -> Result<(Vec<repo::Job>, i64)> {
    Ok(state
        .meta
        .read(move |c| repo::runs(c, schedule.as_deref(), status.as_deref(), limit, offset))
        .await?)
}

/// `GET /api/schedules/{name}`.
pub(crate) async fn show_schedule(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let schedule = find(&state, &name)?;
    let last = last_runs(&state).await?;
    let typical = typical_durations(&state).await?;
    let (recent, _) = runs(&state, Some(name.clone()), None, 10, 0).await?;
    let mut body = json!(describe(
        &state,
        &schedule,
        &state.sources(),
        last.get(&name),
        typical.get(&name).copied(),
    ));
    body["recent_history"] = json!(recent);
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    limit: Option<u32>,
    offset: Option<u32>,
    status: Option<String>,
}

/// `GET /api/schedules/{name}/history?limit=&offset=&status=`.
pub(crate) async fn schedule_history(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let offset = q.offset.unwrap_or(0);
    let (items, total) = runs(&state, Some(name.clone()), q.status, limit, offset).await?;
    Ok(Json(json!({
        "schedule_name": name,
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "schedule": name,
        "runs": items,
    })))
}

/// `GET /api/schedules/history/recent`: the latest 50 jobs of every schedule.
pub(crate) async fn recent_history(State(state): State<AppState>) -> Result<List<repo::Job>> {
    let (items, total) = runs(&state, None, None, 50, 0).await?;
    Ok(List {
        items,
        total: usize::try_from(total).unwrap_or(0),
    })
}

/// `POST /api/schedules/{name}/trigger`: runs the schedule now.
pub(crate) async fn trigger_schedule(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Value>)> {
    let job_id = state.schedules.trigger(&state, &name, "api").await?;
    // The reference's job ids are strings; Kura's job id reads as one.
    Ok((
        StatusCode::OK,
        Json(json!({
            "status": "triggered",
            "name": name,
            "job_id": job_id.to_string(),
            "schedule": name,
            "running": true,
        })),
    ))
}

/// `POST /api/schedules/reload`: reads `schedules.yml` again. An invalid file is
/// answered with its problems and leaves the previous schedules in force.
pub(crate) async fn reload_schedules(State(state): State<AppState>) -> Result<Json<Value>> {
    let before = state.schedules.current().schedules;
    Ok(Json(match state.schedules.reload(&state).await {
        Ok(n) => {
            let after = state.schedules.current().schedules;
            let names = |list: &super::file::Schedules| {
                list.schedules
                    .iter()
                    .map(|s| (s.def.name.clone(), s.def.clone()))
                    .collect::<std::collections::BTreeMap<_, _>>()
            };
            let (old, new) = (names(&before), names(&after));
            let pick = |f: &dyn Fn(&String) -> bool,
                        from: &std::collections::BTreeMap<String, _>| {
                from.keys().filter(|k| f(k)).cloned().collect::<Vec<_>>()
            };
            json!({
                "added": pick(&|k| !old.contains_key(k), &new),
                "updated": pick(&|k| old.get(k).is_some_and(|d| Some(d) != new.get(k)), &new),
                "removed": pick(&|k| !new.contains_key(k), &old),
                "unchanged": pick(&|k| old.get(k) == new.get(k), &new),
                "valid": true,
                "schedules": n,
            })
        }
        Err(errors) => json!({
            "valid": false,
            "errors": errors,
            "message": "schedules.yml is invalid; the previous schedules stay in force",
        }),
    }))
}

/// `GET /api/sources/unscheduled`: sources no enabled schedule syncs.
pub(crate) async fn unscheduled_sources(State(state): State<AppState>) -> Result<Json<Value>> {
    Ok(Json(json!({ "sources": unscheduled(&state) })))
}

/// Sources that no enabled schedule syncs.
pub(crate) fn unscheduled(state: &AppState) -> Vec<String> {
    let current = state.schedules.current();
    let covered: std::collections::HashSet<&str> = current
        .schedules
        .schedules
        .iter()
        .filter(|s| s.def.enabled)
        .flat_map(|s| s.def.sources.iter().map(String::as_str))
        .collect();
    state
        .sources()
        .keys()
        .filter(|n| !covered.contains(n.as_str()))
        .cloned()
        .collect()
}

/// A webhook target as it is shown: its URL masked.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Webhook {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) format: String,
}

pub(crate) fn webhooks(state: &AppState) -> Vec<Webhook> {
    state
        .schedules
        .current()
        .schedules
        .notifications
        .webhooks
        .iter()
        .map(|h| Webhook {
            name: h.name.clone(),
            url: mask_url(&h.url),
            format: h.format.as_str().to_owned(),
        })
        .collect()
}

/// `GET /api/notifications/config`: the webhook targets, URLs masked.
pub(crate) async fn notifications_config(State(state): State<AppState>) -> Result<Json<Value>> {
    let current = state.schedules.current();
    let n = &current.schedules.notifications;
    let hooks = webhooks(&state);
    // Kura has no global switches: each schedule's notify_on decides what is sent, so
    // the reference's on_* flags are all on.
    Ok(Json(json!({
        "webhooks": hooks,
        "on_failure": true,
        "on_success": true,
        "on_stale": true,
        "stale_threshold_hours": n.stale_threshold_hours,
    })))
}

/// `POST /api/notifications/test`: sends a test notice to every webhook and answers with
/// each delivery's outcome.
pub(crate) async fn test_notifications(State(state): State<AppState>) -> Result<Json<Value>> {
    let hooks = state.schedules.webhooks();
    if hooks.is_empty() {
        return Err(AppError::bad_request(
            "no_webhooks",
            "schedules.yml names no webhooks under notifications.webhooks",
        ));
    }
    let notice = super::notify::Notice {
        event: "test".into(),
        schedule: None,
        sources: Vec::new(),
        error: None,
        duration_seconds: 0.0,
        rows_loaded: 0,
        timestamp: crate::time::now_text(),
        dashboard_url: super::runner::dashboard_url(&state),
    };
    let client = reqwest::Client::new();
    let mut results = Vec::new();
    for hook in &hooks {
        let outcome = super::notify::deliver(&client, hook, &notice).await;
        results.push(match outcome {
            Ok(status) => json!({"name": hook.name, "url": mask_url(&hook.url), "delivered": true, "status": status}),
            Err(e) => json!({"name": hook.name, "url": mask_url(&hook.url), "delivered": false, "error": e}),
        });
    }
    let all = results.iter().all(|r| r["delivered"] == true);
    Ok(Json(json!({
        "status": if all { "sent" } else { "failed" },
        "results": results,
    })))
}

/// `POST /api/schedules/jobs/{job_id}/cancel`.
pub(crate) async fn cancel_job(
    State(state): State<AppState>,
    Path(job_id): Path<i64>,
) -> Result<Json<Value>> {
    if state.schedules.cancel(&state, job_id) {
        Ok(Json(json!({
            "success": true,
            "job_id": job_id.to_string(),
            "cancelling": true,
        })))
    } else {
        Err(AppError::Missing {
            code: "job_not_found",
            message: format!("there is no running job {job_id}"),
        })
    }
}
