//! RFC 3339 UTC timestamps, the only time format in stg's JSON.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Now, in UTC.
#[must_use]
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Formats as RFC 3339 in UTC with whole seconds, e.g. `2026-11-28T01:54:26Z`.
#[must_use]
pub fn format(at: OffsetDateTime) -> String {
    let utc = at
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond");
    utc.format(&Rfc3339)
        .expect("RFC 3339 formats every UTC time")
}

/// Parses an RFC 3339 timestamp (any offset).
pub fn parse(text: &str) -> Result<OffsetDateTime, String> {
    let at = OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|e| {
        format!("invalid timestamp {text:?} (expected RFC 3339, e.g. 2026-11-28T01:54:26Z): {e}")
    })?;
    // Every user of a timestamp works in UTC; one whose UTC form is past year 9999 (e.g.
    // 9999-12-31T23:59:59-23:59) cannot be represented and made the conversion panic.
    at.checked_to_offset(time::UtcOffset::UTC).ok_or_else(|| {
        format!("invalid timestamp {text:?}: in UTC it falls outside the years 0000 to 9999")
    })
}

/// A compact UTC stamp for names (`20261128T015426Z`), sortable as text.
#[must_use]
pub fn compact(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_past_9999_in_utc_is_an_error_not_a_panic() {
        // See: issue "Hardening, round 2", item 9 (stg-age --now exited 101).
        let err = parse("9999-12-31T23:59:59-23:59").unwrap_err();
        assert!(err.contains("outside"), "{err}");
        assert!(parse("9999-12-31T23:59:59Z").is_ok());
    }

    #[test]
    fn round_trips_and_normalises_to_utc() {
        let t = parse("2026-11-28T02:54:26+01:00").unwrap();
        assert_eq!(format(t), "2026-11-28T01:54:26Z");
        assert_eq!(compact(t), "20261128T015426Z");
        assert!(parse("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
