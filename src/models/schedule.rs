//! When the model catalog is refreshed: hourly below `largeCatalogThreshold` models, otherwise daily at
//! `refreshAt` in `timeZone`, computed from the last refresh and a clock (no timers). Correct across
//! daylight-saving changes: a time that does not exist that day (spring forward) moves to the first
//! valid minute after the gap; a time that exists twice (fall back) is taken the first time.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::api::RefreshSchedule;

/// The schedule for a catalog of `count` models.
pub fn schedule(count: u32, threshold: u32) -> RefreshSchedule {
    if count < threshold {
        RefreshSchedule::Hourly
    } else {
        RefreshSchedule::Daily
    }
}

/// The next refresh after `last` (never refreshed: now).
pub fn next_refresh(
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    schedule: RefreshSchedule,
    at: (u8, u8),
    tz: Tz,
) -> DateTime<Utc> {
    let Some(last) = last else { return now };
    match schedule {
        RefreshSchedule::Hourly => last + Duration::hours(1),
        RefreshSchedule::Daily => next_local_time_after(last, at, tz),
    }
}

/// The first instant after `after` whose local time in `tz` is `at`.
fn next_local_time_after(after: DateTime<Utc>, at: (u8, u8), tz: Tz) -> DateTime<Utc> {
    let time =
        NaiveTime::from_hms_opt(u32::from(at.0), u32::from(at.1), 0).unwrap_or(NaiveTime::MIN);
    let mut day = after.with_timezone(&tz).date_naive();
    for _ in 0..3 {
        let wanted = day.and_time(time);
        let resolved = tz.from_local_datetime(&wanted).earliest().or_else(|| {
            // Inside a spring-forward gap: the first minute that exists after it.
            (1..=180).find_map(|m| {
                tz.from_local_datetime(&(wanted + Duration::minutes(m)))
                    .earliest()
            })
        });
        if let Some(t) = resolved.map(|t| t.with_timezone(&Utc)) {
            if t > after {
                return t;
            }
        }
        day = day.succ_opt().unwrap_or(day);
    }
    after + Duration::days(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_threshold_switches_the_schedule() {
        assert_eq!(schedule(9_999, 10_000), RefreshSchedule::Hourly);
        assert_eq!(schedule(10_000, 10_000), RefreshSchedule::Daily);
        assert_eq!(schedule(3, 2), RefreshSchedule::Daily);
    }

    #[test]
    fn hourly_and_first_refresh() {
        let now = utc("2026-03-01T10:20:00Z");
        assert_eq!(
            next_refresh(None, now, RefreshSchedule::Daily, (2, 0), chrono_tz::UTC),
            now,
            "never refreshed: now"
        );
        assert_eq!(
            next_refresh(
                Some(now),
                now,
                RefreshSchedule::Hourly,
                (2, 0),
                chrono_tz::UTC
            ),
            utc("2026-03-01T11:20:00Z")
        );
    }

    #[test]
    fn daily_at_a_local_time() {
        let berlin = chrono_tz::Europe::Berlin;
        // 01:30 UTC on a winter day is 02:30 in Berlin: 02:00 has passed, so tomorrow 02:00 (01:00 UTC).
        assert_eq!(
            next_refresh(
                Some(utc("2026-01-15T01:30:00Z")),
                utc("2026-01-15T01:30:00Z"),
                RefreshSchedule::Daily,
                (2, 0),
                berlin
            ),
            utc("2026-01-16T01:00:00Z")
        );
        // Before it: today.
        assert_eq!(
            next_refresh(
                Some(utc("2026-01-15T00:30:00Z")),
                utc("2026-01-15T00:30:00Z"),
                RefreshSchedule::Daily,
                (2, 0),
                berlin
            ),
            utc("2026-01-15T01:00:00Z")
        );
    }

    #[test]
    fn daylight_saving_changes() {
        let berlin = chrono_tz::Europe::Berlin;
        // 2026-03-29: clocks jump from 02:00 to 03:00; 02:30 does not exist, the refresh runs at 03:00 CEST.
        assert_eq!(
            next_local_time_after(utc("2026-03-28T12:00:00Z"), (2, 30), berlin),
            utc("2026-03-29T01:00:00Z")
        );
        // 2026-10-25: 02:30 happens twice; the first one (CEST, 00:30 UTC) is taken.
        assert_eq!(
            next_local_time_after(utc("2026-10-24T12:00:00Z"), (2, 30), berlin),
            utc("2026-10-25T00:30:00Z")
        );
        // The day after a change, the usual offset again.
        assert_eq!(
            next_local_time_after(utc("2026-03-29T12:00:00Z"), (2, 30), berlin),
            utc("2026-03-30T00:30:00Z")
        );
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            next_local_time_after(utc("2026-11-01T12:00:00Z"), (23, 59), ny),
            utc("2026-11-02T04:59:00Z")
        );
    }
}
