//! When to test, as a pure function of the object, its status and a clock: no per-object timers.

use crate::api::{ConditionStatus, ConditionType, KafkaConnectionStatus, ObservedSecret, Reason};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Why a test runs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Never tested, or the spec changed (generation).
    SpecChanged,
    /// A referenced Secret changed (resourceVersion) or appeared.
    SecretChanged,
    /// The `kconn.dev/test-requested-at` annotation has a new value.
    Requested,
    /// The interval (or the retry backoff after a failure) has passed.
    Due,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Test now, and why; `None`: not yet.
    pub test: Option<Trigger>,
    /// When to look again (after the test, when one runs now).
    pub requeue_after: Duration,
}

/// Shortest retry after a failed test.
pub const MIN_RETRY: Duration = Duration::from_secs(10);

/// What the decision needs to know about the object.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The status as last written.
    pub status: Option<&'a KafkaConnectionStatus>,
    /// The value of `kconn.dev/test-requested-at`.
    pub requested: Option<&'a str>,
    /// The referenced Secrets as they are now.
    pub secrets: &'a [ObservedSecret],
    /// `spec.check.interval`.
    pub interval: Duration,
    /// A stable key for jitter and the connection's place in the interval (e.g. the object's uid).
    pub key: &'a str,
    /// When this process last tested it (kept in memory: a test that changed nothing is not
    /// written, so `status.lastTestTime` may be older). `None`: not since this process started.
    pub tested: Option<&'a Time>,
    /// When this process started testing (`None`: no spreading after a start).
    pub started: Option<&'a Time>,
}

fn hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// Spreads `d` by up to ±10 %, deterministically per key (so replicas and restarts agree).
pub fn jitter(d: Duration, key: &str) -> Duration {
    let factor = 0.9 + (hash(key) % 2001) as f64 / 10_000.0; // 0.9 ..= 1.1
    d.mul_f64(factor)
}

/// The connection's place in every interval: its periodic tests fall at `phase + k·interval` (from
/// the Unix epoch), so the tests of connections created together are spread evenly over the
/// interval instead of bunched, and replicas and restarts agree on it.
pub fn phase(interval: Duration, key: &str) -> Duration {
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(hash(key) % ms)
}

/// The first of the connection's places (see [`phase`]) at or after `from`.
pub fn next_slot(from: &Time, interval: Duration, key: &str) -> Time {
    let ms = interval.as_millis().clamp(1, i64::MAX as u128) as i64;
    let phase = phase(interval, key).as_millis() as i64;
    let t = from.0.as_millisecond();
    let k = (t - phase).div_euclid(ms);
    let mut slot = k * ms + phase;
    if slot < t {
        slot += ms;
    }
    Time(k8s_openapi::jiff::Timestamp::from_millisecond(slot).unwrap_or(from.0))
}

/// When the next test is due after one that ended at `last`: a healthy connection (or a rejected
/// login) at its first place at least half an interval later, so consecutive tests are one interval
/// apart once in place; a failing one after its backoff. A healthy connection already overdue when
/// this process started (a test that changed nothing was not written) is tested at its first place
/// after the start rather than at once: a restart does not test the whole fleet in the same second.
fn due_after(o: &Observed<'_>, status: &KafkaConnectionStatus, last: &Time) -> Time {
    // The backoff doubles: the next retry waits as long as the failure had lasted at the last test.
    let delay = retry_delay(status, last, o.interval);
    if delay < o.interval {
        return Time(last.0 + jitter(delay, o.key));
    }
    let due = next_slot(&Time(last.0 + o.interval / 2), o.interval, o.key);
    // Anchored on the start, not on `now`: each look must find the same place.
    match o.started {
        Some(started) if o.tested.is_none() && due.0 < started.0 => {
            next_slot(started, o.interval, o.key)
        }
        _ => due,
    }
}

/// From `now` until `due` (zero when it is past).
fn until(due: &Time, now: &Time) -> Duration {
    if due.0 > now.0 {
        due.0.duration_since(now.0).unsigned_abs()
    } else {
        Duration::ZERO
    }
}

/// The next delay after a failed test: doubling with the time the failure has lasted, from
/// [`MIN_RETRY`] up to the interval. A rejected login (or token request) waits the full interval:
/// accounts get locked, and identity providers throttle clients that keep failing.
pub fn retry_delay(status: &KafkaConnectionStatus, now: &Time, interval: Duration) -> Duration {
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Ready);
    let rejected = |reason: &str| {
        matches!(
            Reason::parse(reason),
            Some(
                Reason::AuthenticationFailed | Reason::TokenRequestRejected | Reason::TokenRefused
            )
        )
    };
    match ready {
        Some(c) if c.status == ConditionStatus::False && rejected(&c.reason) => interval,
        Some(c) if c.status == ConditionStatus::False => {
            let failing_for = now
                .0
                .duration_since(c.last_transition_time.0)
                .unsigned_abs();
            failing_for.max(MIN_RETRY).min(interval)
        }
        _ => interval,
    }
}

/// Decides whether to test now.
pub fn decide(o: &Observed<'_>, now: &Time) -> Decision {
    // A test that runs now is followed by the next one as if it ended now.
    let after_test = |status: &KafkaConnectionStatus| {
        let tested = Observed {
            tested: Some(now),
            ..o.clone()
        };
        until(&due_after(&tested, status, now), now)
    };
    let Some(status) = o.status else {
        return Decision {
            test: Some(Trigger::SpecChanged),
            requeue_after: until(
                &next_slot(&Time(now.0 + o.interval / 2), o.interval, o.key),
                now,
            ),
        };
    };
    // A test announced (Reconciling=True) and never answered was abandoned (its operator was killed,
    // or lost the API server before the outcome): it is run again at once. (The controller knows an
    // announcement it answered itself, read from a cache that has not caught up, and never asks.)
    let announced = status
        .conditions
        .iter()
        .any(|c| c.type_ == ConditionType::Reconciling && c.status == ConditionStatus::True);
    let test = if status.observed_generation != o.generation || announced {
        Some(Trigger::SpecChanged)
    } else if o.requested.is_some() && o.requested != status.last_handled_test_request.as_deref() {
        Some(Trigger::Requested)
    } else if !same_secrets(&status.observed_secrets, o.secrets) {
        Some(Trigger::SecretChanged)
    } else {
        None
    };
    if test.is_some() {
        return Decision {
            test,
            requeue_after: after_test(status),
        };
    }
    // The later of the last test this process ran and the last one written.
    let last = match (o.tested, status.last_test_time.as_ref()) {
        (Some(a), Some(b)) => Some(if a.0 >= b.0 { a } else { b }),
        (a, b) => a.or(b),
    };
    let Some(last) = last else {
        return Decision {
            test: Some(Trigger::Due),
            requeue_after: after_test(status),
        };
    };
    let due = due_after(o, status, last);
    if due.0 <= now.0 {
        Decision {
            test: Some(Trigger::Due),
            requeue_after: after_test(status),
        }
    } else {
        Decision {
            test: None,
            requeue_after: until(&due, now),
        }
    }
}

/// How late a due test starts: the time since it was due (zero for a test triggered by a change).
pub fn lateness(o: &Observed<'_>, now: &Time) -> Duration {
    let Some(status) = o.status else {
        return Duration::ZERO;
    };
    let last = o.tested.or(status.last_test_time.as_ref());
    match last {
        Some(last) => until(now, &due_after(o, status, last)),
        None => Duration::ZERO,
    }
}

fn same_secrets(a: &[ObservedSecret], b: &[ObservedSecret]) -> bool {
    let mut a: Vec<_> = a.iter().collect();
    let mut b: Vec<_> = b.iter().collect();
    a.sort_by(|x, y| x.name.cmp(&y.name));
    b.sort_by(|x, y| x.name.cmp(&y.name));
    a == b
}

/// A Kubernetes time (`Time`, `MicroTime`: both hold a jiff timestamp) as chrono, for the
/// calendar arithmetic of the refresh schedule and Lease renewals.
pub fn chrono_of(ts: k8s_openapi::jiff::Timestamp) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(ts.as_second(), ts.subsec_nanosecond().max(0) as u32)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn t(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap())
    }

    fn status(
        tested: i64,
        ready: &str,
        reason: impl AsRef<str>,
        since: i64,
    ) -> KafkaConnectionStatus {
        KafkaConnectionStatus {
            observed_generation: Some(1),
            last_test_time: Some(t(tested)),
            observed_secrets: vec![ObservedSecret {
                name: "u".into(),
                resource_version: "5".into(),
            }],
            last_handled_test_request: Some("a".into()),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ready.into(),
                reason: reason.as_ref().into(),
                message: String::new(),
                last_transition_time: t(since),
                observed_generation: Some(1),
            }],
            ..Default::default()
        }
    }

    fn observed<'a>(
        s: Option<&'a KafkaConnectionStatus>,
        secrets: &'a [ObservedSecret],
        requested: Option<&'a str>,
    ) -> Observed<'a> {
        Observed {
            generation: Some(1),
            status: s,
            requested,
            secrets,
            interval: Duration::from_secs(300),
            key: "uid-1",
            tested: None,
            started: None,
        }
    }

    #[test]
    fn triggers() {
        let secrets = vec![ObservedSecret {
            name: "u".into(),
            resource_version: "5".into(),
        }];
        let s = status(0, "True", "AllChecksPassed", 0);
        assert_eq!(
            decide(&observed(None, &secrets, None), &t(10)).test,
            Some(Trigger::SpecChanged)
        );
        let mut newer = observed(Some(&s), &secrets, None);
        newer.generation = Some(2);
        assert_eq!(decide(&newer, &t(10)).test, Some(Trigger::SpecChanged));
        assert_eq!(
            decide(&observed(Some(&s), &secrets, Some("b")), &t(10)).test,
            Some(Trigger::Requested)
        );
        assert_eq!(
            decide(&observed(Some(&s), &secrets, Some("a")), &t(10)).test,
            None,
            "a handled request is not repeated"
        );
        let rotated = vec![ObservedSecret {
            name: "u".into(),
            resource_version: "6".into(),
        }];
        assert_eq!(
            decide(&observed(Some(&s), &rotated, None), &t(10)).test,
            Some(Trigger::SecretChanged)
        );
        // Announced and never answered (its operator was killed): tested again at once.
        let mut announced = s.clone();
        announced.conditions.push(Condition {
            type_: "Reconciling".into(),
            status: "True".into(),
            reason: "Testing".into(),
            message: String::new(),
            last_transition_time: t(5),
            observed_generation: Some(1),
        });
        assert_eq!(
            decide(&observed(Some(&announced), &secrets, None), &t(10)).test,
            Some(Trigger::SpecChanged)
        );
        // Healthy: tested again at its place in the interval, at least half an interval later.
        let slot = next_slot(&t(150), Duration::from_secs(300), "uid-1");
        let after = |at: i64| slot.0.duration_since(t(at).0).unsigned_abs();
        let mut ran = observed(Some(&s), &secrets, None);
        let last = t(0);
        ran.tested = Some(&last);
        let quiet = decide(&ran, &t(10));
        assert_eq!(quiet.test, None);
        assert_eq!(quiet.requeue_after, after(10));
        assert_eq!(decide(&ran, &slot).test, Some(Trigger::Due));
        assert_eq!(lateness(&ran, &slot), Duration::ZERO);
        assert_eq!(
            lateness(&ran, &Time(slot.0 + Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        // A test that changed nothing was not written: the time kept in memory is the later one.
        let mut unwritten = ran.clone();
        let recent = t(1000);
        unwritten.tested = Some(&recent);
        let next = next_slot(&t(1150), Duration::from_secs(300), "uid-1");
        assert_eq!(decide(&unwritten, &t(1010)).test, None);
        assert_eq!(decide(&unwritten, &next).test, Some(Trigger::Due));
    }

    #[test]
    fn tests_fall_at_each_connections_place_in_the_interval() {
        let interval = Duration::from_secs(60);
        // The places of one connection are one interval apart, whatever the start.
        let a = next_slot(&t(7), interval, "k");
        let b = next_slot(&Time(a.0 + Duration::from_millis(1)), interval, "k");
        assert_eq!(b.0.duration_since(a.0).unsigned_abs(), interval);
        assert_eq!(
            next_slot(&a, interval, "k"),
            a,
            "a place is its own next place"
        );
        // 1,000 connections created in the same second: their places cover the interval evenly.
        let mut per_tenth = [0usize; 10];
        for i in 0..1000 {
            let slot = next_slot(&t(0), interval, &format!("uid-{i}"));
            let offset = slot.0.duration_since(t(0).0).unsigned_abs();
            assert!(offset < interval);
            per_tenth[(offset.as_secs_f64() / 6.0) as usize] += 1;
        }
        assert!(
            per_tenth.iter().all(|n| (60..=140).contains(n)),
            "{per_tenth:?}"
        );
    }

    #[test]
    fn after_a_restart_an_overdue_connection_waits_for_its_place_not_the_same_second() {
        let s = status(0, "True", "AllChecksPassed", 0);
        let secrets = s.observed_secrets.clone();
        // Written long ago (later tests changed nothing), and not tested since this process started.
        let started = t(10_000);
        let mut restarted = observed(Some(&s), &secrets, None);
        restarted.started = Some(&started);
        let place = next_slot(&started, Duration::from_secs(300), "uid-1");
        for now in [t(10_000), Time(place.0 - Duration::from_millis(1))] {
            let decision = decide(&restarted, &now);
            assert_eq!(decision.test, None);
            assert_eq!(
                decision.requeue_after,
                place.0.duration_since(now.0).unsigned_abs()
            );
        }
        // At its place, or a little later (a late wake-up, a wait for the budget): due, not put off.
        for late in [0, 1, 5_000, 200_000] {
            let now = Time(place.0 + Duration::from_millis(late));
            assert_eq!(
                decide(&restarted, &now).test,
                Some(Trigger::Due),
                "{late} ms late"
            );
        }
        // A connection this process takes over from another (long after its own start) is tested at once.
        let long_ago = t(0);
        restarted.started = Some(&long_ago);
        let s = status(9_000, "True", "AllChecksPassed", 0);
        let taken_over = Observed {
            status: Some(&s),
            ..restarted.clone()
        };
        assert_eq!(decide(&taken_over, &t(10_000)).test, Some(Trigger::Due));
        // A failing one keeps its backoff.
        let failing = status(10_000, "False", Reason::NoBrokerReachable, 10_000);
        let restarted = observed(Some(&failing), &secrets, None);
        assert_eq!(decide(&restarted, &t(10_005)).test, None);
        assert_eq!(decide(&restarted, &t(10_012)).test, Some(Trigger::Due));
        // Doubling: failing for 40 s at the last test, the next one is about 40 s later.
        let failing = status(10_040, "False", Reason::NoBrokerReachable, 10_000);
        let restarted = observed(Some(&failing), &secrets, None);
        assert_eq!(decide(&restarted, &t(10_070)).test, None);
        assert_eq!(decide(&restarted, &t(10_085)).test, Some(Trigger::Due));
    }

    #[test]
    fn failures_back_off_but_logins_wait_the_interval() {
        let interval = Duration::from_secs(300);
        assert_eq!(
            retry_delay(
                &status(0, "False", Reason::NoBrokerReachable, 0),
                &t(1),
                interval
            ),
            MIN_RETRY
        );
        assert_eq!(
            retry_delay(
                &status(0, "False", Reason::NoBrokerReachable, 0),
                &t(40),
                interval
            ),
            Duration::from_secs(40)
        );
        assert_eq!(
            retry_delay(
                &status(0, "False", Reason::NoBrokerReachable, 0),
                &t(4000),
                interval
            ),
            interval
        );
        for rejected in [
            Reason::AuthenticationFailed,
            Reason::TokenRequestRejected,
            Reason::TokenRefused,
        ] {
            assert_eq!(
                retry_delay(&status(0, "False", rejected, 0), &t(1), interval),
                interval,
                "{rejected}"
            );
        }
        assert_eq!(
            retry_delay(
                &status(0, "False", Reason::TokenEndpointUnreachable, 0),
                &t(1),
                interval
            ),
            MIN_RETRY
        );
        assert_eq!(
            retry_delay(&status(0, "True", "AllChecksPassed", 0), &t(1), interval),
            interval
        );
    }

    #[test]
    fn jitter_is_bounded_and_stable() {
        let d = Duration::from_secs(100);
        for key in ["a", "b", "uid-1", "another-uid"] {
            let j = jitter(d, key);
            assert!(
                j >= Duration::from_secs(90) && j <= Duration::from_secs(110),
                "{key}: {j:?}"
            );
            assert_eq!(j, jitter(d, key));
        }
    }
}
