//! `schedules.yml`: parsed strictly, then validated against the project's sources, with
//! every problem reported at once, each with its line and the schedule's name.

use std::collections::{BTreeSet, HashSet};

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::cron::Cron;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleFile {
    #[serde(default)]
    pub(crate) schedules: Vec<ScheduleDef>,
    #[serde(default)]
    pub(crate) notifications: Notifications,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDef {
    pub name: String,
    /// Five fields, or a preset: every_15m, every_hour, every_6h, daily, weekly.
    pub(crate) cron: String,
    #[serde(default = "utc")]
    pub timezone: String,
    pub sources: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub(crate) full_refresh: bool,
    #[serde(default = "sixty")]
    pub(crate) timeout_minutes: u64,
    /// Retries after a failure (30 s, then 120 s, then 120 s ...); timeouts and
    /// cancellations are not retried.
    #[serde(default)]
    pub(crate) retries: u32,
    #[serde(default = "on_failure")]
    pub(crate) notify_on: Vec<NotifyOn>,
    /// A tick missed while Kura was down runs at start if it is at most this old.
    #[serde(default = "sixty")]
    pub(crate) misfire_grace_minutes: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum NotifyOn {
    Failure,
    Success,
    Stale,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    #[serde(default = "day")]
    pub(crate) stale_threshold_hours: u64,
}

impl Default for Notifications {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            stale_threshold_hours: day(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub(crate) name: String,
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) format: WebhookFormat,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WebhookFormat {
    #[default]
    Generic,
    Slack,
}

impl WebhookFormat {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Slack => "slack",
        }
    }
}

fn utc() -> String {
    "UTC".into()
}
fn yes() -> bool {
    true
}
fn sixty() -> u64 {
    60
}
fn day() -> u64 {
    24
}
fn on_failure() -> Vec<NotifyOn> {
    vec![NotifyOn::Failure]
}

/// A schedule ready to run: its definition with the cron and time zone parsed.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub def: ScheduleDef,
    pub cron: Cron,
    pub tz: Tz,
}

/// A valid file.
#[derive(Debug, Clone, Default)]
pub struct Schedules {
    pub schedules: Vec<Schedule>,
    pub notifications: Notifications,
}

/// Parses and validates `text` (the contents of `schedules.yml`) against the names of
/// the project's sources. Every problem is reported, each as one line.
pub fn parse(text: &str, sources: &BTreeSet<String>) -> Result<Schedules, Vec<String>> {
    let file: ScheduleFile = if text.trim().is_empty() {
        ScheduleFile {
            schedules: Vec::new(),
            notifications: Notifications::default(),
        }
    } else {
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let at = inner
                .location()
                .map(|l| format!("line {} column {}: ", l.line(), l.column()))
                .unwrap_or_default();
            // serde_yaml's message repeats the location; keep ours, at the front.
            let message = inner.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message);
            // It may also start with its own copy of the path (`schedules[0]: ...`).
            let message = match message.split_once(": ") {
                Some((head, rest)) if !head.contains(' ') => rest,
                _ => message,
            };
            vec![format!("{at}{path}: {message}")]
        })?
    };
    let mut errors = Vec::new();
    let mut names = HashSet::new();
    let mut schedules = Vec::new();
    for (i, def) in file.schedules.iter().enumerate() {
        let at = |message: String| {
            let line = line_of(text, &def.name).map_or(String::new(), |l| format!("line {l}: "));
            format!("{line}schedule {:?} (schedules[{i}]): {message}", def.name)
        };
        let valid_name = def.name.starts_with(|c: char| c.is_ascii_lowercase())
            && def
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            errors.push(at(
                "a name starts with a letter and uses only a-z, 0-9 and _".into(),
            ));
        }
        if !names.insert(def.name.as_str()) {
            errors.push(at("this name is used by an earlier schedule".into()));
        }
        let tz = match def.timezone.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                errors.push(at(format!(
                    "{:?} is not an IANA time zone (like UTC, Europe/Berlin, America/New_York)",
                    def.timezone
                )));
                None
            }
        };
        let cron = match Cron::parse(&def.cron) {
            Ok(cron) => Some(cron),
            Err(e) => {
                errors.push(at(e));
                None
            }
        };
        if let Some(cron) = &cron
            && cron
                .next_after(tz.unwrap_or(Tz::UTC), chrono::Utc::now())
                .is_none()
        {
            errors.push(at(format!(
                "the cron {:?} never fires (no such date)",
                def.cron
            )));
        }
        if def.sources.is_empty() {
            errors.push(at("it names no sources to sync".into()));
        }
        for s in &def.sources {
            if !sources.contains(s) {
                let known: Vec<&str> = sources.iter().map(String::as_str).collect();
                errors.push(at(format!(
                    "there is no source {s:?} (the project has: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        if def.timeout_minutes == 0 || def.timeout_minutes > 24 * 60 {
            errors.push(at("timeout_minutes must be between 1 and 1440".into()));
        }
        if def.retries > 5 {
            errors.push(at("retries must be at most 5".into()));
        }
        if let (Some(cron), Some(tz)) = (cron, tz) {
            schedules.push(Schedule {
                def: def.clone(),
                cron,
                tz,
            });
        }
    }
    let mut hooks = HashSet::new();
    for (i, hook) in file.notifications.webhooks.iter().enumerate() {
        let at = |m: String| format!("notifications.webhooks[{i}] ({:?}): {m}", hook.name);
        if !hooks.insert(hook.name.as_str()) {
            errors.push(at("this name is used by an earlier webhook".into()));
        }
        if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
            errors.push(at("the url must start with http:// or https://".into()));
        }
    }
    if file.notifications.stale_threshold_hours == 0 {
        errors.push("notifications.stale_threshold_hours: must be at least 1".into());
    }
    if errors.is_empty() {
        Ok(Schedules {
            schedules,
            notifications: file.notifications,
        })
    } else {
        Err(errors)
    }
}

/// The line (1-based) that names the schedule `name`, to point at in messages.
fn line_of(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim();
            l.strip_prefix("name:")
                .map(|v| v.trim().trim_matches(['"', '\'']))
                .is_some_and(|v| v == name)
        })
        .map(|i| i + 1)
}

/// A URL for display: scheme and host only, so tokens in paths and queries stay private.
pub(crate) fn mask_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if rest.len() > authority.len() {
        format!("{scheme}://{host}/****")
    } else {
        format!("{scheme}://{host}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> BTreeSet<String> {
        ["sales", "uploads"].into_iter().map(String::from).collect()
    }

    const GOOD: &str = "\
schedules:
  - name: nightly_sales
    cron: \"0 2 * * *\"
    timezone: Europe/Berlin
    sources: [sales, uploads]
    retries: 2
    notify_on: [failure, stale]
  - name: often
    cron: every_15m
    sources: [uploads]
notifications:
  webhooks:
    - {name: team, url: \"https://hooks.example.com/x/secret\", format: slack}
  stale_threshold_hours: 24
";

    #[test]
    fn a_good_file_with_defaults() {
        let s = parse(GOOD, &sources()).unwrap();
        assert_eq!(s.schedules.len(), 2);
        let often = &s.schedules[1].def;
        assert_eq!(
            (
                often.timezone.as_str(),
                often.enabled,
                often.timeout_minutes
            ),
            ("UTC", true, 60)
        );
        assert_eq!(often.notify_on, vec![NotifyOn::Failure]);
        assert_eq!(s.schedules[1].cron.expression, "*/15 * * * *");
        assert_eq!(s.notifications.webhooks[0].format, WebhookFormat::Slack);
        assert!(parse("", &sources()).unwrap().schedules.is_empty());
        assert!(
            parse("schedules: []\n", &sources())
                .unwrap()
                .schedules
                .is_empty()
        );
    }

    #[test]
    fn every_problem_is_named_with_its_line() {
        let text = "\
schedules:
  - name: a
    cron: \"0 0 31 2 *\"
    sources: [sales]
  - name: a
    cron: daily
    timezone: Mars/Olympus
    sources: [nope]
  - name: Bad-Name
    cron: \"61 * * * *\"
    sources: []
";
        let errors = parse(text, &sources()).unwrap_err();
        let all = errors.join("\n");
        assert!(
            all.contains(
                "line 2: schedule \"a\" (schedules[0]): the cron \"0 0 31 2 *\" never fires"
            ),
            "{all}"
        );
        assert!(
            all.contains("(schedules[1]): this name is used by an earlier schedule"),
            "{all}"
        );
        assert!(
            all.contains("\"Mars/Olympus\" is not an IANA time zone"),
            "{all}"
        );
        assert!(
            all.contains("there is no source \"nope\" (the project has: sales, uploads)"),
            "{all}"
        );
        assert!(all.contains("line 9: schedule \"Bad-Name\""), "{all}");
        assert!(all.contains("minute field"), "{all}");
        assert!(all.contains("it names no sources"), "{all}");
        assert_eq!(errors.len(), 7, "{all}");
    }

    #[test]
    fn unknown_keys_are_errors_with_a_location() {
        let errors = parse(
            "schedules:\n  - name: a\n    crn: daily\n    sources: [sales]\n",
            &sources(),
        )
        .unwrap_err();
        assert!(errors[0].starts_with("line 3 column 5: "), "{errors:?}");
        assert!(
            errors[0].contains("schedules[0].crn: unknown field `crn`"),
            "{errors:?}"
        );
    }

    #[test]
    fn urls_are_masked() {
        assert_eq!(
            mask_url("https://hooks.example.com/x/secret?t=1"),
            "https://hooks.example.com/****"
        );
        assert_eq!(mask_url("http://user:pw@host:9000"), "http://host:9000");
    }
}
