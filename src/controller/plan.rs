//! The decisions of one reconcile, as pure functions of what it observed and one reading of the
//! clock. [`decide`] says who handles the object and whether it is tested now, and why (or why not);
//! [`settle`] says, once the test (if any) has run, what status to write, which Event to publish,
//! whether a model refresh starts and when to look again. No I/O here: the table tests below answer
//! "why did it (not) test?" and "why was (nothing) written?".

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::agents::Assignment;
use crate::api::{
    BindingStatus, ConditionStatus, ConditionType, KafkaConnection, KafkaConnectionStatus,
    ObservedSecret, Reason, TestedBy, REFRESH_REQUESTED_AT, TEST_REQUESTED_AT,
};
use crate::binding::{self, Binding};
use crate::checks::TestReport;
use crate::models::refresh::{self, Refreshed};
use crate::schedule::{self, Trigger};
use crate::status::{self, ReadyEvent};
use crate::validate::ValidSpec;

/// The interval of a spec that does not validate (it is tested, and fails SpecValid, this often).
const INVALID_SPEC_INTERVAL: Duration = Duration::from_secs(300);

/// The object as the watch delivered it.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    /// A KafkaConnection.
    Readable(&'a KafkaConnection),
    /// An object this version cannot read as a KafkaConnection (e.g. an enum value it does not know).
    Unreadable {
        /// Why it cannot be read.
        error: &'a str,
        /// Its `metadata.generation`.
        generation: Option<i64>,
    },
}

/// What one reconcile observed: the results of its I/O, and nothing computed from them.
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    /// The object.
    pub object: Object<'a>,
    /// Its uid (the key of ownership, jitter and what this process remembers).
    pub uid: &'a str,
    /// The status as last written (of an unreadable object: read untyped from the API server).
    pub prev: Option<&'a KafkaConnectionStatus>,
    /// Who handles it, from the agents' membership.
    pub assignment: &'a Assignment,
    /// This process, as status names it.
    pub tested_by: &'a TestedBy,
    /// The referenced Secrets as they are now (read only when this process may test it).
    pub secrets: &'a [ObservedSecret],
    /// Whether the object read is a version this process's own status writes made old: the cache
    /// has not caught up with them.
    pub cache_behind: bool,
    /// A model refresh that finished since the last reconcile.
    pub refreshed: Option<&'a Refreshed>,
    /// The spec, validated once (`None`: it breaks a rule; the test's SpecValid row says which).
    pub valid: Option<&'a ValidSpec>,
    /// When this process last tested it (a test that changed nothing is not written).
    pub tested: Option<&'a Time>,
    /// When this process started testing.
    pub started: Option<&'a Time>,
}

impl Seen<'_> {
    fn generation(&self) -> Option<i64> {
        match self.object {
            Object::Readable(conn) => conn.metadata.generation,
            Object::Unreadable { generation, .. } => generation,
        }
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        match self.object {
            Object::Readable(conn) => conn
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .map(String::as_str),
            Object::Unreadable { .. } => None,
        }
    }

    fn interval(&self) -> Duration {
        self.valid.map_or(INVALID_SPEC_INTERVAL, |v| v.interval)
    }

    /// Everything besides a test report that goes into the status. A status written without a test
    /// keeps the Secrets observed by the last test.
    fn facts(&self, now: &Time, tested: bool) -> status::Facts {
        status::Facts {
            generation: self.generation(),
            now: now.clone(),
            tested_by: self.tested_by.clone(),
            observed_secrets: if tested {
                self.secrets.to_vec()
            } else {
                self.prev
                    .map(|p| p.observed_secrets.clone())
                    .unwrap_or_default()
            },
            handled_request: if tested {
                self.annotation(TEST_REQUESTED_AT).map(str::to_string)
            } else {
                None
            },
        }
    }

    fn observed<'b>(
        &'b self,
        status: Option<&'b KafkaConnectionStatus>,
        secrets: &'b [ObservedSecret],
        tested: Option<&'b Time>,
    ) -> schedule::Observed<'b> {
        schedule::Observed {
            generation: self.generation(),
            status,
            requested: self.annotation(TEST_REQUESTED_AT),
            secrets,
            interval: self.interval(),
            key: self.uid,
            tested,
            started: self.started,
        }
    }

    fn schedule(
        &self,
        status: Option<&KafkaConnectionStatus>,
        secrets: &[ObservedSecret],
        tested: Option<&Time>,
        now: &Time,
    ) -> schedule::Decision {
        schedule::decide(&self.observed(status, secrets, tested), now)
    }
}

/// How long after it was due a test that starts now starts (zero when a change triggered it).
pub fn lateness(seen: &Seen<'_>, now: &Time) -> Duration {
    schedule::lateness(&seen.observed(seen.prev, seen.secrets, seen.tested), now)
}

/// Whether a reconcile reads the referenced Secrets: only for an object this process may test, read
/// from a cache that has caught up with this process's writes.
pub fn needs_secrets(object: Object<'_>, assignment: &Assignment, cache_behind: bool) -> bool {
    matches!(
        (object, assignment),
        (Object::Readable(conn), Assignment::Mine) if !conn.spec.suspend && !cache_behind
    )
}

/// What a reconcile does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Another process handles it: nothing is written, and what this process remembers is dropped.
    NotMine,
    /// Its pinned agent pool has no live member, and this process is the one to say so.
    ReportNoAgent {
        /// The pinned pool.
        pool: String,
        /// The pools that are live, for the message.
        live_pools: Vec<String>,
    },
    /// It cannot be read as a KafkaConnection: say so on the object.
    ReportInvalid,
    /// `spec.suspend`: no test, Reconciling=False says why.
    Suspended,
    /// Test now. A new object or generation is announced first (Reconciling=True), so that kstatus
    /// never calls it current before it was tested.
    Test(Trigger),
    /// Not yet: look again after this long (or at the next change).
    Wait(Duration),
    /// The object read is older than what this process last wrote (the cache has not caught up):
    /// nothing is decided from, or written over, a status known to be old. The watch event of that
    /// write brings the next reconcile.
    CacheBehind,
}

/// When to look again at a status the cache has not caught up with, if the watch event is lost.
pub const CACHE_BEHIND_RETRY: Duration = Duration::from_secs(5);

/// Who handles the object, and whether it is tested now.
pub fn decide(seen: &Seen<'_>, now: &Time) -> Plan {
    let conn = match (seen.assignment, seen.object) {
        (Assignment::Other(_) | Assignment::NoAgentElsewhere, _) => return Plan::NotMine,
        _ if seen.cache_behind => return Plan::CacheBehind,
        (Assignment::ReportNoAgent { live_pools }, object) => {
            let pool = match object {
                Object::Readable(conn) => conn.spec.agent.as_ref().map(|a| a.name.clone()),
                Object::Unreadable { .. } => None,
            };
            return Plan::ReportNoAgent {
                pool: pool.unwrap_or_default(),
                live_pools: live_pools.clone(),
            };
        }
        (Assignment::Mine, Object::Unreadable { .. }) => return Plan::ReportInvalid,
        (Assignment::Mine, Object::Readable(conn)) => conn,
    };
    if conn.spec.suspend {
        return Plan::Suspended;
    }
    let decision = seen.schedule(seen.prev, seen.secrets, seen.tested, now);
    match decision.test {
        Some(trigger) => Plan::Test(trigger),
        None => Plan::Wait(decision.requeue_after),
    }
}

impl Plan {
    /// Whether the test is announced (Reconciling=True) before it runs.
    pub fn announces(&self) -> bool {
        *self == Plan::Test(Trigger::SpecChanged)
    }
}

/// Whether the status already announces a test of this generation (Reconciling=True).
pub fn announced(seen: &Seen<'_>) -> bool {
    seen.prev.is_some_and(|p| {
        p.observed_generation == seen.generation()
            && p.conditions
                .iter()
                .any(|c| c.type_ == ConditionType::Reconciling && c.status == ConditionStatus::True)
    })
}

/// The status written when an announced test starts.
pub fn announcement(seen: &Seen<'_>, now: &Time) -> KafkaConnectionStatus {
    status::testing(seen.prev, &seen.facts(now, true))
}

/// What the test step did.
#[derive(Debug, Clone, Default)]
pub struct Done {
    /// The announcement written before the test.
    pub announced: Option<KafkaConnectionStatus>,
    /// The test's report.
    pub report: Option<TestReport>,
    /// How long the test took (its outcome is dated at the clock reading plus this).
    pub took: Duration,
    /// The test is due but its cluster's turn is this far ahead: look again then.
    pub deferred: Option<Duration>,
}

/// What becomes of Ready for the `kconn_connection_ready` metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyGauge {
    /// This process no longer reports it.
    Drop,
    /// Left as it is.
    Keep,
    /// Ready's status now.
    Set(String),
}

/// Everything a reconcile writes, publishes and starts after the test.
#[derive(Debug, Clone)]
pub struct Next {
    /// The status to write (`None`: nothing worth an API call).
    pub status: Option<KafkaConnectionStatus>,
    /// The Event of a Ready transition.
    pub event: Option<ReadyEvent>,
    /// Start a model refresh, answering this `kconn.dev/refresh-requested-at` value (if any).
    pub refresh: Option<Option<String>>,
    /// The Ready metric.
    pub ready: ReadyGauge,
    /// Look again after this long; `None`: only at the next change.
    pub requeue: Option<Duration>,
    /// What becomes of the binding Secret.
    pub binding: Option<BindingStep>,
}

/// What becomes of the binding Secret (`spec.binding`).
#[derive(Debug, Clone, PartialEq)]
pub enum BindingStep {
    /// Write it from the test that just passed, and remove the one of an earlier name.
    Publish {
        /// The Secret's name and data.
        binding: Binding,
        /// The Secret of the name `spec.binding.secretName` had before, to remove.
        replaces: Option<String>,
    },
    /// `spec.binding` is gone: remove the Secret.
    Remove(String),
}

impl Next {
    fn nothing(ready: ReadyGauge) -> Self {
        Next {
            status: None,
            event: None,
            refresh: None,
            ready,
            requeue: None,
            binding: None,
        }
    }
}

/// After the test step: the status, the Event, the refresh to start and the requeue.
pub fn settle(seen: &Seen<'_>, plan: &Plan, done: &Done, now: &Time) -> Next {
    let prev = seen.prev;
    match (plan, seen.object) {
        (Plan::NotMine, _) => Next::nothing(ReadyGauge::Drop),
        (Plan::ReportNoAgent { .. }, Object::Unreadable { .. }) => Next::nothing(ReadyGauge::Drop),
        (Plan::ReportNoAgent { pool, live_pools }, Object::Readable(_)) => {
            let next = status::no_agent(prev, pool, live_pools, seen.facts(now, false));
            let changed = prev.map(|p| &p.conditions) != Some(&next.conditions);
            Next {
                event: changed
                    .then(|| status::ready_transition(prev, &next))
                    .flatten(),
                status: changed.then_some(next),
                ..Next::nothing(ReadyGauge::Drop)
            }
        }
        (Plan::ReportInvalid, object) => {
            let error = match object {
                Object::Unreadable { error, .. } => error,
                Object::Readable(_) => "",
            };
            let next = status::invalid_object(prev, error, seen.facts(now, false));
            let changed = prev.map(|p| &p.conditions) != Some(&next.conditions);
            Next {
                status: changed.then_some(next),
                ..Next::nothing(ReadyGauge::Keep)
            }
        }
        (Plan::CacheBehind, _) => Next {
            requeue: Some(CACHE_BEHIND_RETRY),
            ..Next::nothing(ReadyGauge::Keep)
        },
        (Plan::Suspended, _) => {
            let next = status::suspended(prev, &seen.facts(now, false));
            Next {
                status: (prev != Some(&next)).then_some(next),
                ..Next::nothing(ReadyGauge::Keep)
            }
        }
        (Plan::Test(_) | Plan::Wait(_), Object::Unreadable { .. }) => {
            Next::nothing(ReadyGauge::Keep)
        }
        // Due, but its cluster's turn is ahead: nothing changes until the test has run.
        (Plan::Test(_), _) if done.deferred.is_some() => Next {
            requeue: done.deferred.map(|d| d.max(Duration::from_millis(10))),
            ..Next::nothing(ReadyGauge::Keep)
        },
        (Plan::Test(_) | Plan::Wait(_), Object::Readable(conn)) => {
            tested_or_waited(seen, conn, plan, done, now)
        }
    }
}

fn tested_or_waited(
    seen: &Seen<'_>,
    conn: &KafkaConnection,
    plan: &Plan,
    done: &Done,
    now: &Time,
) -> Next {
    let prev = seen.prev;
    // The outcome is dated when the test ended: the clock reading plus its duration.
    let end = Time(now.0 + done.took);
    let mut next = match &done.report {
        Some(report) => status::after_test(
            done.announced.as_ref().or(prev),
            report,
            seen.facts(&end, true),
        ),
        None => prev.cloned().unwrap_or_default(),
    };
    if let (Some(refreshed), Some(valid)) = (seen.refreshed, seen.valid) {
        status::after_refresh(
            &mut next,
            refreshed,
            &conn.spec.models,
            valid.refresh_at,
            valid.time_zone,
        );
    }
    // The model refresh: due, waiting for the topics, paused, or scheduled.
    let mut refresh = None;
    let mut next_refresh = None;
    if let Some(valid) = seen.valid {
        let due = refresh::due(
            &refresh::Observed {
                settings: &conn.spec.models,
                generation: conn.metadata.generation,
                status: next.models.as_ref(),
                requested: seen.annotation(REFRESH_REQUESTED_AT),
                handled: next.last_handled_refresh_request.as_deref(),
                refresh_at: valid.refresh_at,
                time_zone: valid.time_zone,
            },
            refresh::to_chrono(&end),
        );
        match due {
            refresh::Due::At(at) => next_refresh = Some(at),
            refresh::Due::Suspended => {
                status::models_suspended(&mut next, &end, conn.metadata.generation)
            }
            refresh::Due::Now { request } if status::topics_listed(&next) => {
                refresh = Some(request)
            }
            refresh::Due::Now { .. } => {
                status::models_waiting_for_topics(&mut next, &end, conn.metadata.generation)
            }
        }
    }
    let binding = binding_step(seen, conn, done, &mut next, &end);
    let tested = done.report.is_some();
    let event = tested
        .then(|| status::ready_transition(prev, &next))
        .flatten();
    // After an announcement the outcome is always written; a test that changed nothing but times and
    // durations is not written at all (the schedule runs from the time this process keeps); anything
    // else when it changed.
    let write = if plan.announces() {
        true
    } else if tested && seen.refreshed.is_none() {
        !status::is_noop(prev, &next)
    } else {
        prev != Some(&next)
    };
    let tested_at = if tested { Some(&end) } else { seen.tested };
    let mut requeue = seen
        .schedule(Some(&next), &next.observed_secrets, tested_at, &end)
        .requeue_after
        .max(Duration::from_secs(1));
    if let Some(at) = next_refresh {
        let until = (at - refresh::to_chrono(&end))
            .to_std()
            .unwrap_or_default()
            .max(Duration::from_secs(1));
        requeue = requeue.min(until);
    }
    Next {
        ready: ReadyGauge::Set(status::ready_status(&next).to_string()),
        status: write.then_some(next),
        event,
        refresh,
        requeue: Some(requeue),
        binding,
    }
}

/// The binding after a test: published from one that passed (with what it used), kept as it was
/// after one that failed, removed with `spec.binding`. Only a test changes it.
fn binding_step(
    seen: &Seen<'_>,
    conn: &KafkaConnection,
    done: &Done,
    next: &mut KafkaConnectionStatus,
    end: &Time,
) -> Option<BindingStep> {
    let name = conn.metadata.name.as_deref().unwrap_or_default();
    let generation = conn.metadata.generation;
    let previous = seen
        .prev
        .and_then(|p| p.binding.as_ref())
        .map(|b| b.name.clone());
    let Some(spec) = &conn.spec.binding else {
        next.binding = None;
        status::remove_condition(next, ConditionType::BindingReady);
        return previous.map(BindingStep::Remove);
    };
    let report = done.report.as_ref()?;
    let secret = binding::secret_name(name, spec);
    let failed_because = status::ready_reason(next).to_string();
    let mut set = |state, reason, message: String| {
        status::set_condition(
            next,
            ConditionType::BindingReady,
            (state, reason, message),
            end,
            generation,
        )
    };
    let session = report.session.as_ref().filter(|_| !report.failed());
    let Some(session) = session else {
        match &previous {
            Some(kept) => set(
                ConditionStatus::False,
                Reason::BindingStale,
                format!("the last test failed ({failed_because}); Secret {kept} keeps what the last passing test used"),
            ),
            None => set(
                ConditionStatus::False,
                Reason::BindingNotPublished,
                "no test has passed yet: the binding Secret is published after the first that does".into(),
            ),
        }
        return None;
    };
    match binding::render(name, &conn.spec, spec, &session.settings) {
        Ok(rendered) => {
            set(
                ConditionStatus::True,
                Reason::BindingPublished,
                format!(
                    "Secret {secret} holds what the last test used; mount it at {}",
                    binding::mount_path(&secret, spec)
                ),
            );
            next.binding = Some(BindingStatus {
                name: secret.clone(),
            });
            Some(BindingStep::Publish {
                binding: rendered,
                replaces: previous.filter(|p| *p != secret),
            })
        }
        Err(e) => {
            set(
                ConditionStatus::False,
                Reason::BindingInvalid,
                format!("{e}: use a credential without line breaks (the binding is not published)"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    //! Why a reconcile tests or not, and what it writes: one row per case.
    use super::*;
    use crate::agents::Member;
    use crate::api::CheckResult;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn t(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap())
    }

    fn conn(spec: serde_json::Value, annotations: serde_json::Value) -> KafkaConnection {
        let mut base = serde_json::json!({"role": "Source", "bootstrapServers": ["k:9092"],
            "topics": {"expression": "orders"}});
        for (k, v) in spec.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
            "metadata": {"name": "orders", "namespace": "team", "uid": "u-1", "generation": 2,
                         "annotations": annotations},
            "spec": base,
        }))
        .unwrap()
    }

    fn condition(type_: &str, status: &str, at: i64) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "R".into(),
            message: String::new(),
            last_transition_time: t(at),
            observed_generation: Some(2),
        }
    }

    /// Tested at 0 (generation 2), Ready, Secret `u` at version 5, request `a` handled.
    fn tested() -> KafkaConnectionStatus {
        KafkaConnectionStatus {
            observed_generation: Some(2),
            last_test_time: Some(t(0)),
            observed_secrets: secrets("5"),
            last_handled_test_request: Some("a".into()),
            conditions: vec![
                condition("Ready", "True", 0),
                condition("Reconciling", "False", 0),
                condition("Stalled", "False", 0),
            ],
            ..Default::default()
        }
    }

    fn announced(at: i64) -> KafkaConnectionStatus {
        let mut s = tested();
        s.conditions[1] = condition("Reconciling", "True", at);
        s
    }

    fn secrets(version: &str) -> Vec<ObservedSecret> {
        vec![ObservedSecret {
            name: "u".into(),
            resource_version: version.into(),
        }]
    }

    /// Why, the object, who owns it, its status, the Secret's version, whether the object read is
    /// one this process's writes made old, the clock (seconds after the last test), the plan.
    type Case<'a> = (
        &'a str,
        Object<'a>,
        &'a Assignment,
        Option<&'a KafkaConnectionStatus>,
        &'a str,
        bool,
        i64,
        Plan,
    );

    #[test]
    fn why_it_tests_or_not() {
        let plain = conn(serde_json::json!({}), serde_json::json!({}));
        let requested = conn(
            serde_json::json!({}),
            serde_json::json!({"kconn.dev/test-requested-at": "b"}),
        );
        let handled = conn(
            serde_json::json!({}),
            serde_json::json!({"kconn.dev/test-requested-at": "a"}),
        );
        let suspended = conn(serde_json::json!({"suspend": true}), serde_json::json!({}));
        let other = Assignment::Other(Member {
            identity: "q".into(),
            pool: "default".into(),
        });
        let no_agent = Assignment::ReportNoAgent {
            live_pools: vec!["default".into()],
        };
        let done = tested();
        let mut older = tested();
        older.observed_generation = Some(1);
        let ann = announced(5);
        let unreadable = Object::Unreadable {
            error: "unknown variant",
            generation: Some(2),
        };
        // Its place in the interval after the test at 0: at least half an interval later.
        let slot = schedule::next_slot(&t(150), Duration::from_secs(300), "u-1");
        let wait_from = |at: i64| slot.0.duration_since(t(at).0).unsigned_abs();
        #[rustfmt::skip]
        let table: Vec<Case> = vec![
            ("another process owns it", Object::Readable(&plain), &other, Some(&done), "5", false, 10, Plan::NotMine),
            ("no live agent elsewhere reports it", Object::Readable(&plain), &Assignment::NoAgentElsewhere, None, "5", false, 10, Plan::NotMine),
            ("its pool has no live agent", Object::Readable(&plain), &no_agent, None, "5", false, 10,
                Plan::ReportNoAgent { pool: String::new(), live_pools: vec!["default".into()] }),
            ("it cannot be read", unreadable, &Assignment::Mine, None, "5", false, 10, Plan::ReportInvalid),
            ("spec.suspend", Object::Readable(&suspended), &Assignment::Mine, Some(&done), "5", false, 10, Plan::Suspended),
            ("never tested", Object::Readable(&plain), &Assignment::Mine, None, "5", false, 10, Plan::Test(Trigger::SpecChanged)),
            ("a new generation", Object::Readable(&plain), &Assignment::Mine, Some(&older), "5", false, 10, Plan::Test(Trigger::SpecChanged)),
            ("a new request", Object::Readable(&requested), &Assignment::Mine, Some(&done), "5", false, 10, Plan::Test(Trigger::Requested)),
            ("a handled request", Object::Readable(&handled), &Assignment::Mine, Some(&done), "5", false, 10, Plan::Wait(wait_from(10))),
            ("a rotated Secret", Object::Readable(&plain), &Assignment::Mine, Some(&done), "6", false, 10, Plan::Test(Trigger::SecretChanged)),
            ("its place in the next interval came", Object::Readable(&plain), &Assignment::Mine, Some(&done), "5", false, 450, Plan::Test(Trigger::Due)),
            ("a version its own writes made old (the cache has not caught up)", Object::Readable(&plain), &Assignment::Mine, Some(&ann), "5", true, 6, Plan::CacheBehind),
            ("an announcement nobody answered (its operator was killed)", Object::Readable(&plain), &Assignment::Mine, Some(&ann), "5", false, 6, Plan::Test(Trigger::SpecChanged)),
            ("another process's, whatever the cache", Object::Readable(&plain), &other, Some(&ann), "5", true, 6, Plan::NotMine),
        ];
        let tested_by = TestedBy::default();
        for (why, object, assignment, prev, version, cache_behind, at, plan) in table {
            let observed = secrets(version);
            let valid = match object {
                Object::Readable(c) => crate::validate::validate(&c.spec).ok(),
                Object::Unreadable { .. } => None,
            };
            let seen = Seen {
                object,
                uid: "u-1",
                prev,
                assignment,
                tested_by: &tested_by,
                secrets: &observed,
                cache_behind,
                refreshed: None,
                valid: valid.as_ref(),
                // This process ran the last test.
                tested: prev.and_then(|p| p.last_test_time.as_ref()),
                started: None,
            };
            assert_eq!(decide(&seen, &t(at)), plan, "{why}");
            assert_eq!(
                needs_secrets(object, assignment, cache_behind),
                matches!(plan, Plan::Test(_) | Plan::Wait(_)),
                "{why}: Secrets are read exactly when it may be tested"
            );
        }
    }

    fn report(result: CheckResult) -> TestReport {
        TestReport {
            checks: vec![crate::api::CheckReport {
                name: "BrokersReachable".into(),
                result,
                reason: "R".into(),
                message: "m".into(),
                hint: None,
                field: None,
                duration_ms: 7,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn what_it_writes() {
        let plain = conn(
            serde_json::json!({"models": {"suspend": true}}),
            serde_json::json!({}),
        );
        let valid = crate::validate::validate(&plain.spec).unwrap();
        let tested_by = TestedBy::default();
        let observed = secrets("5");
        let seen = |prev| Seen {
            object: Object::Readable(&plain),
            uid: "u-1",
            prev,
            assignment: &Assignment::Mine,
            tested_by: &tested_by,
            secrets: &observed,
            cache_behind: false,
            refreshed: None,
            valid: Some(&valid),
            tested: None,
            started: None,
        };
        let done = |result| Done {
            announced: None,
            report: Some(report(result)),
            took: Duration::from_secs(2),
            deferred: None,
        };
        // A first test: announced, then its outcome written (dated at its end) with no Event.
        let first = seen(None);
        let plan = decide(&first, &t(0));
        let mut announced_done = done(CheckResult::Passed);
        announced_done.announced = Some(announcement(&first, &t(0)));
        let next = settle(&first, &plan, &announced_done, &t(0));
        let written = next
            .status
            .expect("the outcome of an announced test is written");
        assert_eq!(written.last_test_time, Some(t(2)));
        assert_eq!(next.event, None, "a first test that passes is no news");
        assert_eq!(next.ready, ReadyGauge::Set("True".into()));

        // The same outcome again within the interval: nothing worth a write.
        let prev = written;
        let again = seen(Some(&prev));
        let next = settle(
            &again,
            &Plan::Test(Trigger::Due),
            &done(CheckResult::Passed),
            &t(60),
        );
        assert!(next.status.is_none(), "only times and durations changed");
        // A failure: written, with a Warning Event.
        let next = settle(
            &again,
            &Plan::Test(Trigger::Due),
            &done(CheckResult::Failed),
            &t(60),
        );
        assert!(next.status.is_some());
        assert!(next.event.expect("Ready turned False").warning);
        // Waiting: nothing changed, nothing written, the requeue is what is left of the interval.
        let next = settle(
            &again,
            &Plan::Wait(Duration::from_secs(1)),
            &Done::default(),
            &t(60),
        );
        assert!(next.status.is_none() && next.event.is_none());
        let left = next.requeue.unwrap();
        assert!(
            left > Duration::from_secs(200) && left < Duration::from_secs(280),
            "{left:?}"
        );
        // Due, but its cluster's turn is ahead: nothing written, even for a new connection, and it
        // comes back at its turn.
        for prev in [None, Some(&prev)] {
            let deferred = Done {
                deferred: Some(Duration::from_secs(7)),
                ..Done::default()
            };
            let next = settle(&seen(prev), &Plan::Test(Trigger::Due), &deferred, &t(60));
            assert!(next.status.is_none() && next.event.is_none() && next.refresh.is_none());
            assert_eq!(next.requeue, Some(Duration::from_secs(7)));
            assert_eq!(next.binding, None);
        }
        // An announcement is written once per generation, however long the turn takes.
        assert!(!super::announced(&seen(None)) && !super::announced(&seen(Some(&prev))));
        let announcing = announcement(&seen(Some(&prev)), &t(60));
        assert!(super::announced(&seen(Some(&announcing))));
        // Another process's: nothing written, and the metric dropped.
        let next = settle(&again, &Plan::NotMine, &Done::default(), &t(60));
        assert!(next.status.is_none() && next.requeue.is_none());
        assert_eq!(next.ready, ReadyGauge::Drop);
        // Suspended: Reconciling=False says why, once.
        let next = settle(&again, &Plan::Suspended, &Done::default(), &t(60));
        let suspended = next.status.expect("suspension is written");
        let again_suspended = seen(Some(&suspended));
        assert!(
            settle(&again_suspended, &Plan::Suspended, &Done::default(), &t(70))
                .status
                .is_none()
        );
    }
}
