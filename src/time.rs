//! The one way Kura writes a time: RFC 3339 in UTC with milliseconds and `Z`
//! (`2026-12-01T13:26:45.123Z`), in the API, the metadata store and the logs.

use chrono::{DateTime, SecondsFormat, Utc};

/// `at` as Kura writes times.
pub(crate) fn text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now, as Kura writes times.
pub(crate) fn now_text() -> String {
    text(Utc::now())
}

/// Unix seconds as Kura writes times; `None` outside chrono's range.
pub(crate) fn unix_text(seconds: i64) -> Option<String> {
    DateTime::from_timestamp(seconds, 0).map(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_utc_with_milliseconds() {
        assert_eq!(
            super::unix_text(0).as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
    }
}
