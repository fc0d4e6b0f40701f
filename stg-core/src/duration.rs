//! Human durations for flags: `90d`, `12h`, `30m`, `30s`, `2w`, and sums like `1d12h`.
//!
//! JSON never carries these strings: it carries integer seconds or days with the unit in the
//! key (`age_days`, `elapsed_ms`).

use std::time::Duration;

/// Parses a duration such as `90d`, `12h`, `1d12h`, `500ms`. A bare number is refused, so a
/// forgotten unit never silently means seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let input = text.trim();
    if input.is_empty() {
        return Err("empty duration; use a number and a unit, e.g. 90d, 12h, 30s".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = input;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(format!(
                "invalid duration {input:?}: expected a number at {rest:?} (e.g. 90d, 12h, 30s)"
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {input:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "" => {
                return Err(format!(
                "invalid duration {input:?}: missing unit after {number} (use ms, s, m, h, d or w)"
            ))
            }
            other => {
                return Err(format!(
                    "invalid duration {input:?}: unknown unit {other:?} (use ms, s, m, h, d or w)"
                ))
            }
        };
        let millis = number
            .checked_mul(millis_per)
            .ok_or_else(|| format!("invalid duration {input:?}: too large"))?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| format!("invalid duration {input:?}: too large"))?;
    }
    Ok(total)
}

/// Clap value parser for duration flags.
pub fn clap_parser(text: &str) -> Result<Duration, String> {
    parse(text)
}

/// Whole days in a duration, rounded down.
#[must_use]
pub fn whole_days(duration: Duration) -> u64 {
    duration.as_secs() / 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("90d").unwrap(), Duration::from_secs(90 * 86_400));
        assert_eq!(parse("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1d12h").unwrap(), Duration::from_secs(36 * 3600));
        assert_eq!(parse("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(whole_days(parse("90d").unwrap()), 90);
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("90").unwrap_err().contains("missing unit"));
        assert!(parse("90x").unwrap_err().contains("unknown unit \"x\""));
        assert!(parse("d90").unwrap_err().contains("expected a number"));
        assert!(parse("-5d").is_err());
        assert!(parse("99999999999999999999d").is_err());
        assert!(parse("999999999999999w").unwrap_err().contains("too large"));
    }
}
