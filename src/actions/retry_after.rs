//! `Retry-After` (RFC 9110 section 10.2.3): delay-seconds or an HTTP date.
//!
//! The rebound carries the wait the API asked for, so the platform need not guess. A date in
//! the past means "now"; anything unreadable is no advice at all.

use std::time::SystemTime;

/// The wait asked for, in milliseconds, as of `now`.
pub fn retry_after_ms(value: &str, now: SystemTime) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn seconds_become_milliseconds() {
        assert_eq!(retry_after_ms("7", SystemTime::now()), Some(7000));
        assert_eq!(retry_after_ms(" 0 ", SystemTime::now()), Some(0));
    }

    #[test]
    fn dates_count_from_now_and_past_dates_mean_now() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            retry_after_ms("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(30_000)
        );
        assert_eq!(
            retry_after_ms(
                "Sun, 06 Nov 1994 08:49:00 GMT",
                now + Duration::from_secs(1)
            ),
            Some(0)
        );
    }

    #[test]
    fn garbage_is_no_advice() {
        for value in ["soon", "-5", "1.5", ""] {
            assert_eq!(retry_after_ms(value, SystemTime::now()), None, "{value}");
        }
    }
}
