//! Five-field cron expressions (minute hour day-of-month month day-of-week), the presets
//! of `schedules.yml`, and the next firing time in a time zone.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// How far ahead a next firing is looked for: long enough for 29 February to come round
/// twice; an expression with none in that span never fires (`0 0 31 2 *`).
const HORIZON_DAYS: i64 = 366 * 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// The day fields as written with `*`: cron's rule is that when both day fields are
    /// restricted a day matching either fires, otherwise the restricted one decides.
    any_day: bool,
    any_weekday: bool,
    /// The expression in five fields (a preset expanded).
    pub expression: String,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The presets `schedules.yml` accepts in place of an expression.
pub(crate) fn preset(name: &str) -> Option<&'static str> {
    Some(match name {
        "every_15m" => "*/15 * * * *",
        "every_hour" => "0 * * * *",
        "every_6h" => "0 */6 * * *",
        "daily" => "0 0 * * *",
        "weekly" => "0 0 * * 0",
        _ => return None,
    })
}

impl Cron {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let expression = preset(text.trim()).unwrap_or(text.trim());
        let fields: Vec<&str> = expression.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "{text:?} is not a cron expression: it needs 5 fields (minute hour day month weekday), \
                 or a preset: every_15m, every_hour, every_6h, daily, weekly"
            ));
        }
        let minutes = field(fields[0], "minute", 0, 59, &[])?;
        let hours = field(fields[1], "hour", 0, 23, &[])?;
        let days = field(fields[2], "day of month", 1, 31, &[])?;
        let months = field(fields[3], "month", 1, 12, &MONTHS)?;
        // 7 is Sunday too.
        let weekdays = field(fields[4], "day of week", 0, 7, &WEEKDAYS)?;
        let weekdays = (weekdays | (weekdays >> 7)) & 0x7f;
        Ok(Self {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            any_day: fields[2].starts_with('*'),
            any_weekday: fields[4].starts_with('*'),
            expression: fields.join(" "),
        })
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let day = self.days & (1 << date.day()) != 0;
        let weekday = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => weekday,
            (false, true) => day,
            (false, false) => day || weekday,
        }
    }

    /// The first firing strictly after `after`, in `tz`'s wall-clock time. A wall time that
    /// does not exist (the spring-forward gap) is skipped; one that happens twice (the
    /// autumn fold) fires at the first.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz).naive_local();
        let start_day = local.date();
        for offset in 0..HORIZON_DAYS {
            let date = start_day + Duration::days(offset);
            if self.months & (1 << date.month()) == 0 || !self.day_matches(date) {
                continue;
            }
            for hour in 0..24 {
                if self.hours & (1 << hour) == 0 || (offset == 0 && hour < local.hour()) {
                    continue;
                }
                for minute in 0..60 {
                    if self.minutes & (1 << minute) == 0 {
                        continue;
                    }
                    let Some(naive) = date.and_hms_opt(hour, minute, 0) else {
                        continue;
                    };
                    let at = match tz.from_local_datetime(&naive) {
                        LocalResult::Single(t) => t,
                        LocalResult::Ambiguous(first, _) => first,
                        LocalResult::None => continue,
                    };
                    let at = at.with_timezone(&Utc);
                    if at > after {
                        return Some(at);
                    }
                }
            }
        }
        None
    }
}

impl Cron {
    /// The expression in words, for the common shapes; others are shown as written.
    pub(crate) fn describe(&self) -> String {
        let f: Vec<&str> = self.expression.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = f[..] else {
            return self.expression.clone();
        };
        let num = |s: &str| s.parse::<u32>().ok();
        let at = |h: u32, m: u32| format!("{h:02}:{m:02}");
        let days = |w: &str| -> Option<String> {
            const NAMES: [&str; 7] = [
                "Sunday",
                "Monday",
                "Tuesday",
                "Wednesday",
                "Thursday",
                "Friday",
                "Saturday",
            ];
            match w {
                "1-5" | "mon-fri" | "MON-FRI" => Some("on weekdays".into()),
                _ => {
                    let list: Option<Vec<&str>> = w
                        .split(',')
                        .map(|d| {
                            num(d).map(|n| NAMES[(n % 7) as usize]).or_else(|| {
                                WEEKDAYS
                                    .iter()
                                    .position(|x| x.eq_ignore_ascii_case(d))
                                    .map(|i| NAMES[i])
                            })
                        })
                        .collect();
                    list.map(|l| format!("on {}", l.join(", ")))
                }
            }
        };
        match (minute, hour, day, month, weekday) {
            ("*", "*", "*", "*", "*") => "every minute".into(),
            (m, "*", "*", "*", "*") if m.starts_with("*/") => format!("every {} minutes", &m[2..]),
            (m, "*", "*", "*", "*") if num(m).is_some() => format!("every hour at minute {m}"),
            (m, h, "*", "*", "*") if h.starts_with("*/") && num(m).is_some() => {
                format!("every {} hours at minute {m}", &h[2..])
            }
            (m, h, "*", "*", w) if num(m).is_some() && num(h).is_some() => {
                let time = at(num(h).unwrap_or(0), num(m).unwrap_or(0));
                if w == "*" {
                    format!("every day at {time}")
                } else {
                    days(w).map_or_else(|| self.expression.clone(), |d| format!("{d} at {time}"))
                }
            }
            (m, h, d, "*", "*") if num(m).is_some() && num(h).is_some() && num(d).is_some() => {
                format!(
                    "on day {d} of every month at {}",
                    at(num(h).unwrap_or(0), num(m).unwrap_or(0))
                )
            }
            _ => self.expression.clone(),
        }
    }

    /// The shortest gap between the next `count` firings after `from` (`None` if it fires
    /// fewer than twice): how long a job may take before ticks start being skipped.
    pub(crate) fn shortest_interval(
        &self,
        tz: Tz,
        from: DateTime<Utc>,
        count: usize,
    ) -> Option<Duration> {
        let mut previous = self.next_after(tz, from)?;
        let mut shortest: Option<Duration> = None;
        for _ in 1..count {
            let Some(next) = self.next_after(tz, previous) else {
                break;
            };
            let gap = next - previous;
            shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
            previous = next;
        }
        shortest
    }
}

/// One field as a bit set of the values it allows.
fn field(text: &str, what: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let bad = |why: String| format!("{what} field {text:?}: {why}");
    let value = |s: &str| -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(i as u32 + min);
        }
        let v: u32 = s
            .parse()
            .map_err(|_| bad(format!("{s:?} is not a number")))?;
        if v < min || v > max {
            return Err(bad(format!("{v} is outside {min}-{max}")));
        }
        Ok(v)
    };
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| bad(format!("step {s:?} is not a number")))?;
                if step == 0 {
                    return Err(bad("a step of 0".into()));
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (from, to) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(bad(format!("the range {a}-{b} runs backwards")));
            }
            (a, b)
        } else {
            let a = value(range)?;
            // `5/15` means from 5 to the end, every 15.
            (a, if step > 1 { max } else { a })
        };
        let mut v = from;
        while v <= to {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, tz: &str, after: &str) -> Option<String> {
        let tz: Tz = tz.parse().unwrap();
        Cron::parse(expr)
            .unwrap()
            .next_after(tz, at(after))
            .map(|t| t.to_rfc3339())
    }

    #[test]
    fn next_firings() {
        assert_eq!(
            next("0 2 * * *", "UTC", "2026-03-01T01:59:00Z").unwrap(),
            "2026-03-01T02:00:00+00:00"
        );
        assert_eq!(
            next("0 2 * * *", "UTC", "2026-03-01T02:00:00Z").unwrap(),
            "2026-03-02T02:00:00+00:00"
        );
        assert_eq!(
            next("every_15m", "UTC", "2026-03-01T10:07:30Z").unwrap(),
            "2026-03-01T10:15:00+00:00"
        );
        assert_eq!(
            next("weekly", "UTC", "2026-11-23T00:00:00Z").unwrap(),
            "2026-11-29T00:00:00+00:00"
        );
        // Berlin is UTC+1 in winter.
        assert_eq!(
            next("0 2 * * *", "Europe/Berlin", "2026-01-10T12:00:00Z").unwrap(),
            "2026-01-11T01:00:00+00:00"
        );
        // 02:30 does not exist on the spring-forward day in Berlin: that day is skipped.
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z").unwrap(),
            "2026-03-30T00:30:00+00:00"
        );
        // Leap days come round.
        assert_eq!(
            next("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z").unwrap(),
            "2028-02-29T00:00:00+00:00"
        );
        // Both day fields restricted: either matches (the 1st, or a Monday).
        assert_eq!(
            next("0 9 1 * mon", "UTC", "2026-11-23T10:00:00Z").unwrap(),
            "2026-11-30T09:00:00+00:00"
        );
        assert_eq!(
            next("0 9 1-7 * *", "UTC", "2026-11-23T10:00:00Z").unwrap(),
            "2026-12-01T09:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * JAN,jul SUN", "UTC", "2026-11-23T10:00:00Z").unwrap(),
            "2027-01-03T00:00:00+00:00"
        );
    }

    #[test]
    fn crons_in_words() {
        let words = |e: &str| Cron::parse(e).unwrap().describe();
        assert_eq!(words("every_15m"), "every 15 minutes");
        assert_eq!(words("every_hour"), "every hour at minute 0");
        assert_eq!(words("every_6h"), "every 6 hours at minute 0");
        assert_eq!(words("0 2 * * *"), "every day at 02:00");
        assert_eq!(words("weekly"), "on Sunday at 00:00");
        assert_eq!(words("30 6 * * 1-5"), "on weekdays at 06:30");
        assert_eq!(words("0 9 * * mon,thu"), "on Monday, Thursday at 09:00");
        assert_eq!(words("0 0 1 * *"), "on day 1 of every month at 00:00");
        assert_eq!(words("5 4 * 6 *"), "5 4 * 6 *");
    }

    #[test]
    fn shortest_intervals() {
        let tz: Tz = "UTC".parse().unwrap();
        let from = at("2026-03-01T00:00:00Z");
        let every = |e: &str| {
            Cron::parse(e)
                .unwrap()
                .shortest_interval(tz, from, 20)
                .unwrap()
                .num_minutes()
        };
        assert_eq!(every("every_15m"), 15);
        assert_eq!(every("0,5 * * * *"), 5);
        assert_eq!(every("daily"), 24 * 60);
    }

    #[test]
    fn impossible_and_malformed_expressions() {
        assert_eq!(next("0 0 31 2 *", "UTC", "2026-01-01T00:00:00Z"), None);
        assert_eq!(next("0 0 30 2 *", "UTC", "2026-01-01T00:00:00Z"), None);
        for bad in [
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "x * * * *",
            "hourly",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
        assert!(Cron::parse("5/15 * * * 7").is_ok());
    }
}
