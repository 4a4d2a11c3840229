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
    /// A stable key for jitter (e.g. the object's uid).
    pub key: &'a str,
}

/// Spreads `d` by up to ±10 %, deterministically per key (so replicas and restarts agree).
pub fn jitter(d: Duration, key: &str) -> Duration {
    let hash = key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    let factor = 0.9 + (hash % 2001) as f64 / 10_000.0; // 0.9 ..= 1.1
    d.mul_f64(factor)
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
    let after_test = |status: Option<&KafkaConnectionStatus>| match status {
        Some(s) => jitter(retry_delay(s, now, o.interval), o.key),
        None => jitter(o.interval, o.key),
    };
    let Some(status) = o.status else {
        return Decision {
            test: Some(Trigger::SpecChanged),
            requeue_after: jitter(o.interval, o.key),
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
            requeue_after: after_test(Some(status)),
        };
    }
    let wait = jitter(retry_delay(status, now, o.interval), o.key);
    let elapsed: Duration = match &status.last_test_time {
        Some(t) => now.0.duration_since(t.0).unsigned_abs(),
        None => Duration::MAX,
    };
    if elapsed >= wait {
        Decision {
            test: Some(Trigger::Due),
            requeue_after: after_test(Some(status)),
        }
    } else {
        Decision {
            test: None,
            requeue_after: wait - elapsed,
        }
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
        let quiet = decide(&observed(Some(&s), &secrets, None), &t(10));
        assert_eq!(quiet.test, None);
        assert!(
            quiet.requeue_after > Duration::from_secs(250)
                && quiet.requeue_after < Duration::from_secs(321),
            "{quiet:?}"
        );
        assert_eq!(
            decide(&observed(Some(&s), &secrets, None), &t(400)).test,
            Some(Trigger::Due)
        );
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
