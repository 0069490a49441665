//! Times in the CLI's text output: RFC 3339 in UTC with milliseconds
//! (`2026-12-03T16:23:23.123Z`), which people read and every log tool parses. The API
//! carries Unix milliseconds; machine-readable outputs (`export`, `policy diff --json`) keep
//! them. Time arguments take either form.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last instant RFC 3339 can write (year 9999), in Unix milliseconds.
const LAST_RFC3339_MS: u64 = 253_402_300_799_999;

/// `ms` (Unix milliseconds) as RFC 3339 in UTC; a time past year 9999, which RFC 3339
/// cannot write, stays in milliseconds and says so.
pub fn rfc3339(ms: u64) -> String {
    if ms > LAST_RFC3339_MS {
        return format!("{ms} (unix ms, after year 9999)");
    }
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A time argument: Unix milliseconds, or an RFC 3339 time in UTC (`2026-12-03T16:23:23Z`;
/// fractions allowed, the `Z` optional).
pub fn parse_time(s: &str) -> Result<u64, String> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("`{s}`: not Unix milliseconds nor an RFC 3339 time ({e})"))?;
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| format!("`{s}`: before 1970"))?;
    u64::try_from(d.as_millis()).map_err(|_| format!("`{s}`: too far in the future"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_both_ways() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_315_992_957), "2026-12-03T16:39:52.957Z");
        assert_eq!(
            rfc3339(u64::MAX),
            format!("{} (unix ms, after year 9999)", u64::MAX)
        );
        assert_eq!(rfc3339(LAST_RFC3339_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(parse_time("1796315992957"), Ok(1_796_315_992_957));
        assert_eq!(parse_time("2026-12-03T16:39:52.957Z"), Ok(1_796_315_992_957));
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
