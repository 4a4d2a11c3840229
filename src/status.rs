//! Status as pure functions: the test report becomes kstatus conditions (Ready, Reconciling, Stalled)
//! and one condition per area, `lastTransitionTime` moves only when a condition's status flips, and a
//! write that would change nothing but timestamps inside the interval is recognised as a no-op.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{
    Check, CheckReport, CheckResult, ConditionStatus, ConditionType, KafkaConnectionStatus,
    ObservedSecret, Reason, TestedBy,
};
use crate::checks::{self, TestReport};
use crate::models::refresh::{self, Refreshed};

/// Whether a failed check is one that only a change by a person can mend (the spec, a Secret, the
/// brokers' certificates or ACLs): the connection is then Stalled, and kstatus (Flux, `kubectl wait`)
/// reports it failed instead of waiting. Failures that may pass by themselves (brokers, DNS or KDC
/// unreachable, timeouts) are not.
pub fn needs_a_person(c: &CheckReport) -> bool {
    c.result == CheckResult::Failed
        && (c.name == Check::SpecValid
            || c.name == Check::CredentialsResolved
            || matches!(
                Reason::parse(&c.reason),
                Some(
                    Reason::AuthenticationFailed
                        | Reason::TlsFailed
                        | Reason::CertificateUntrusted
                        | Reason::CertificateExpired
                        | Reason::HostnameMismatch
                        | Reason::PrincipalUnknown
                        | Reason::KeytabRejected
                        | Reason::TokenRequestRejected
                        | Reason::TokenUnusable
                        | Reason::TokenRefused
                        | Reason::RegistryUnauthorized
                        | Reason::NotAuthorized
                        | Reason::ProducerSettingsUnsafe
                )
            ))
}

/// The status written when a test of a new object or a new generation starts: `Reconciling=True`
/// and `observedGeneration` set, so that kstatus reports it in progress until the test ends, not
/// current before it was ever tested. Ready says it is not tested yet (first test) or keeps what the
/// last test found.
pub fn testing(prev: Option<&KafkaConnectionStatus>, facts: &Facts) -> KafkaConnectionStatus {
    let empty = Vec::new();
    let prev_conditions = prev.map(|p| &p.conditions).unwrap_or(&empty);
    let generation = facts.generation.unwrap_or_default();
    let kstatus = vec![
        prev_conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Ready)
            .cloned()
            .unwrap_or_else(|| {
                condition(
                    prev_conditions,
                    ConditionType::Ready,
                    ConditionStatus::Unknown,
                    Reason::NotTestedYet,
                    "the first test is running".into(),
                    facts,
                )
            }),
        condition(
            prev_conditions,
            ConditionType::Reconciling,
            ConditionStatus::True,
            Reason::Testing,
            format!("testing generation {generation}"),
            facts,
        ),
        condition(
            prev_conditions,
            ConditionType::Stalled,
            ConditionStatus::False,
            Reason::Testing,
            format!("testing generation {generation}"),
            facts,
        ),
    ];
    keeping_areas(prev, kstatus, facts)
}

/// Everything besides the report that goes into a status.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `metadata.generation` the test ran against.
    pub generation: Option<i64>,
    /// Now.
    pub now: Time,
    /// Who tested.
    pub tested_by: TestedBy,
    /// Secrets used, with their resourceVersions.
    pub observed_secrets: Vec<ObservedSecret>,
    /// The `kconn.dev/test-requested-at` value handled by this test.
    pub handled_request: Option<String>,
}

/// Builds a condition, keeping `lastTransitionTime` from `prev` when the status did not change.
fn condition(
    prev: &[Condition],
    type_: ConditionType,
    status: ConditionStatus,
    reason: impl AsRef<str>,
    message: String,
    facts: &Facts,
) -> Condition {
    let last_transition_time = prev
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| facts.now.clone());
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.as_ref().to_string(),
        message,
        last_transition_time,
        observed_generation: facts.generation,
    }
}

fn area(
    prev: &[Condition],
    type_: ConditionType,
    rows: &[&CheckReport],
    facts: &Facts,
) -> Condition {
    if let Some(failed) = rows.iter().find(|r| r.result == CheckResult::Failed) {
        return condition(
            prev,
            type_,
            ConditionStatus::False,
            &failed.reason,
            format!("{}: {}", failed.name, failed.message),
            facts,
        );
    }
    if let Some(skipped) = rows
        .iter()
        .find(|r| r.result == CheckResult::Skipped && r.reason == Reason::DependencyFailed)
    {
        return condition(
            prev,
            type_,
            ConditionStatus::Unknown,
            Reason::DependencyFailed,
            format!("{}: {}", skipped.name, skipped.message),
            facts,
        );
    }
    let last = rows
        .iter()
        .rev()
        .find(|r| matches!(r.result, CheckResult::Passed | CheckResult::Warning));
    match last {
        Some(r) => condition(
            prev,
            type_,
            ConditionStatus::True,
            &r.reason,
            r.message.clone(),
            facts,
        ),
        None => condition(
            prev,
            type_,
            ConditionStatus::Unknown,
            Reason::NotImplemented,
            "not checked".into(),
            facts,
        ),
    }
}

/// The status after a test.
pub fn after_test(
    prev: Option<&KafkaConnectionStatus>,
    report: &TestReport,
    facts: Facts,
) -> KafkaConnectionStatus {
    let empty = Vec::new();
    let prev_conditions = prev.map(|p| &p.conditions).unwrap_or(&empty);
    // The rows of the checks that feed an area's condition (`Check::area`).
    let rows = |area: ConditionType| {
        report
            .checks
            .iter()
            .filter(|c| Check::parse(&c.name).and_then(Check::area) == Some(area))
            .collect::<Vec<_>>()
    };
    let failed = report
        .checks
        .iter()
        .find(|c| c.result == CheckResult::Failed);
    let warned = report
        .checks
        .iter()
        .any(|c| c.result == CheckResult::Warning);
    let passed = report
        .checks
        .iter()
        .filter(|c| c.result == CheckResult::Passed)
        .count();
    let summary = format!(
        "{} checks: {passed} passed, {} warned, {} skipped",
        report.checks.len(),
        report
            .checks
            .iter()
            .filter(|c| c.result == CheckResult::Warning)
            .count(),
        report
            .checks
            .iter()
            .filter(|c| c.result == CheckResult::Skipped)
            .count()
    );
    let ready = match failed {
        Some(f) => condition(
            prev_conditions,
            ConditionType::Ready,
            ConditionStatus::False,
            &f.reason,
            format!("{}: {}", f.name, f.message),
            &facts,
        ),
        None if warned => condition(
            prev_conditions,
            ConditionType::Ready,
            ConditionStatus::True,
            Reason::PassedWithWarnings,
            summary,
            &facts,
        ),
        None => condition(
            prev_conditions,
            ConditionType::Ready,
            ConditionStatus::True,
            Reason::AllChecksPassed,
            summary,
            &facts,
        ),
    };
    // Stalled: only a change by a person can help.
    let stalled_by = report.checks.iter().find(|c| needs_a_person(c));
    let stalled = match stalled_by {
        Some(c) => condition(
            prev_conditions,
            ConditionType::Stalled,
            ConditionStatus::True,
            &c.reason,
            format!("{}: {}", c.name, c.message),
            &facts,
        ),
        None => condition(
            prev_conditions,
            ConditionType::Stalled,
            ConditionStatus::False,
            Reason::NotStalled,
            "no user action is needed".into(),
            &facts,
        ),
    };
    let conditions: Vec<Condition> = vec![
        ready,
        condition(
            prev_conditions,
            ConditionType::Reconciling,
            ConditionStatus::False,
            Reason::TestComplete,
            "the last test finished".into(),
            &facts,
        ),
        stalled,
        area(
            prev_conditions,
            ConditionType::Reachable,
            &rows(ConditionType::Reachable),
            &facts,
        ),
        area(
            prev_conditions,
            ConditionType::Authenticated,
            &rows(ConditionType::Authenticated),
            &facts,
        ),
        area(
            prev_conditions,
            ConditionType::Authorized,
            &rows(ConditionType::Authorized),
            &facts,
        ),
        area(
            prev_conditions,
            ConditionType::TopicsResolved,
            &rows(ConditionType::TopicsResolved),
            &facts,
        ),
        // The catalog is refreshed on its own schedule: keep what the last refresh said.
        prev_conditions
            .iter()
            .find(|c| c.type_ == ConditionType::ModelsLoaded)
            .cloned()
            .unwrap_or_else(|| {
                condition(
                    prev_conditions,
                    ConditionType::ModelsLoaded,
                    ConditionStatus::Unknown,
                    Reason::Refreshing,
                    "the first model refresh has not finished".into(),
                    &facts,
                )
            }),
    ]
    .into_iter()
    // The binding is decided after the test (controller::plan): keep what the last one said.
    .chain(
        prev_conditions
            .iter()
            .find(|c| c.type_ == ConditionType::BindingReady)
            .cloned(),
    )
    .collect();
    KafkaConnectionStatus {
        observed_generation: facts.generation,
        conditions,
        checks: report.checks.clone(),
        last_test_time: Some(facts.now.clone()),
        last_handled_test_request: facts
            .handled_request
            .clone()
            .or_else(|| prev.and_then(|p| p.last_handled_test_request.clone())),
        last_handled_refresh_request: prev.and_then(|p| p.last_handled_refresh_request.clone()),
        tested_by: Some(facts.tested_by.clone()),
        cluster: report.cluster.clone(),
        topics: report.topics.clone(),
        models: prev.and_then(|p| p.models.clone()),
        observed_secrets: facts.observed_secrets.clone(),
        binding: prev.and_then(|p| p.binding.clone()),
        budget_wait_ms: (!report.budget_wait.is_zero())
            .then_some(report.budget_wait.as_millis() as u64),
        checks_digest: None,
    }
}

/// The status of a suspended connection: the last test's conditions stay, `observedGeneration` follows
/// the spec (so that kstatus does not wait for a test that will not come) and Reconciling=False says
/// why nothing runs.
pub fn suspended(prev: Option<&KafkaConnectionStatus>, facts: &Facts) -> KafkaConnectionStatus {
    let empty = Vec::new();
    let prev_conditions = prev.map(|p| &p.conditions).unwrap_or(&empty);
    let kept = |type_: ConditionType| prev_conditions.iter().find(|c| c.type_ == type_).cloned();
    let kstatus = [
        kept(ConditionType::Ready),
        Some(condition(
            prev_conditions,
            ConditionType::Reconciling,
            ConditionStatus::False,
            Reason::Suspended,
            "testing is suspended (spec.suspend)".into(),
            facts,
        )),
        kept(ConditionType::Stalled),
    ];
    keeping_areas(prev, kstatus.into_iter().flatten().collect(), facts)
}

/// The status of a connection pinned to an agent pool with no live member: Ready=False and
/// Stalled=True with reason `NoAgentAvailable`; the last test report is kept as it was.
pub fn no_agent(
    prev: Option<&KafkaConnectionStatus>,
    pool: &str,
    live_pools: &[String],
    facts: Facts,
) -> KafkaConnectionStatus {
    let empty = Vec::new();
    let prev_conditions = prev.map(|p| &p.conditions).unwrap_or(&empty);
    let message = format!(
        "no live kconn agent of pool {pool:?} (spec.agent.name); live pools: {}. Start `kconn run --agent {pool}` where it can reach the brokers, or change spec.agent.name",
        if live_pools.is_empty() {
            "none".to_string()
        } else {
            live_pools.join(", ")
        }
    );
    let kstatus = stuck(
        prev_conditions,
        Reason::NoAgentAvailable,
        message,
        (Reason::NoAgentAvailable, "waiting for an agent of the pool"),
        &facts,
    );
    keeping_areas(prev, kstatus, &facts)
}

/// `prev` with `kstatus` (Ready, Reconciling, Stalled) as its first conditions, the areas' conditions
/// as the last test left them, and `observedGeneration` from `facts`: a status written without a
/// test.
fn keeping_areas(
    prev: Option<&KafkaConnectionStatus>,
    kstatus: Vec<Condition>,
    facts: &Facts,
) -> KafkaConnectionStatus {
    let areas = prev.into_iter().flat_map(|p| &p.conditions).filter(|c| {
        !matches!(
            ConditionType::parse(&c.type_),
            Some(ConditionType::Ready | ConditionType::Reconciling | ConditionType::Stalled)
        )
    });
    KafkaConnectionStatus {
        observed_generation: facts.generation,
        conditions: kstatus.into_iter().chain(areas.cloned()).collect(),
        ..prev.cloned().unwrap_or_default()
    }
}

/// Sets the `ModelsLoaded` condition, keeping its `lastTransitionTime` when its status stays.
pub fn set_models_condition(
    next: &mut KafkaConnectionStatus,
    status: ConditionStatus,
    reason: Reason,
    message: String,
    now: &Time,
    generation: Option<i64>,
) {
    set_condition(
        next,
        ConditionType::ModelsLoaded,
        (status, reason, message),
        now,
        generation,
    );
}

/// Sets a condition the test itself does not compute (ModelsLoaded, BindingReady), keeping its
/// `lastTransitionTime` when its status stays.
pub fn set_condition(
    next: &mut KafkaConnectionStatus,
    type_: ConditionType,
    (status, reason, message): (ConditionStatus, Reason, String),
    now: &Time,
    generation: Option<i64>,
) {
    let c = Condition {
        last_transition_time: next
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone()),
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: checks::clip(&message, checks::MAX_ROW_TEXT),
        observed_generation: generation,
    };
    match next.conditions.iter_mut().find(|x| x.type_ == type_) {
        Some(old) => *old = c,
        None => next.conditions.push(c),
    }
}

/// Removes a condition (BindingReady once `spec.binding` is gone).
pub fn remove_condition(next: &mut KafkaConnectionStatus, type_: ConditionType) {
    next.conditions.retain(|c| c.type_ != type_);
}

/// `ModelsLoaded` while `spec.models.suspend` pauses refreshing: its status stays, the reason says why.
pub fn models_suspended(next: &mut KafkaConnectionStatus, now: &Time, generation: Option<i64>) {
    let kept = next
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::ModelsLoaded)
        .and_then(|c| ConditionStatus::parse(&c.status))
        .unwrap_or(ConditionStatus::Unknown);
    set_models_condition(
        next,
        kept,
        Reason::Suspended,
        "model refreshing is paused by spec.models.suspend; the catalog is kept as it is".into(),
        now,
        generation,
    );
}

/// `ModelsLoaded` while a refresh is due but the last test did not list the topics.
pub fn models_waiting_for_topics(
    next: &mut KafkaConnectionStatus,
    now: &Time,
    generation: Option<i64>,
) {
    let already = next
        .conditions
        .iter()
        .any(|c| c.type_ == ConditionType::ModelsLoaded && c.reason == Reason::DependencyFailed);
    if !already {
        set_models_condition(
            next,
            ConditionStatus::Unknown,
            Reason::DependencyFailed,
            "waiting for the connection test to list the topics (TopicsResolved); the catalog is kept as it is".into(),
            now,
            generation,
        );
    }
}

/// Whether the last test listed the topics (a model refresh needs them).
pub fn topics_listed(s: &KafkaConnectionStatus) -> bool {
    s.conditions
        .iter()
        .any(|c| c.type_ == ConditionType::TopicsResolved && c.status == ConditionStatus::True)
}

/// The reason of Ready (empty when there is none).
pub fn ready_reason(s: &KafkaConnectionStatus) -> &str {
    s.conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Ready)
        .map_or("", |c| c.reason.as_str())
}

/// The status of Ready, for the metric (`Unknown` when there is none).
pub fn ready_status(s: &KafkaConnectionStatus) -> &str {
    s.conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Ready)
        .map_or(ConditionStatus::Unknown.as_str(), |c| c.status.as_str())
}

/// Writes a finished refresh into the status: `status.models`, `ModelsLoaded`, and the
/// `kconn.dev/refresh-requested-at` value it answered.
pub fn after_refresh(
    next: &mut KafkaConnectionStatus,
    done: &Refreshed,
    settings: &crate::api::ModelSettings,
    refresh_at: (u8, u8),
    time_zone: chrono_tz::Tz,
) {
    next.models = Some(refresh::status_after(
        next.models.as_ref(),
        done,
        settings,
        refresh_at,
        time_zone,
    ));
    if done.request.is_some() {
        next.last_handled_refresh_request = done.request.clone();
    }
    let (status, reason, message) = refresh::condition_after(done);
    set_models_condition(
        next,
        status,
        reason,
        message,
        &refresh::to_time(done.finished),
        done.generation,
    );
}

/// Ready=False and Stalled=True with `reason` and `message`, and Reconciling=False with its own
/// reason and message: what a connection that cannot progress without a user change shows.
fn stuck(
    prev_conditions: &[Condition],
    reason: Reason,
    message: String,
    reconciling: (Reason, &str),
    facts: &Facts,
) -> Vec<Condition> {
    vec![
        condition(
            prev_conditions,
            ConditionType::Ready,
            ConditionStatus::False,
            reason,
            message.clone(),
            facts,
        ),
        condition(
            prev_conditions,
            ConditionType::Reconciling,
            ConditionStatus::False,
            reconciling.0,
            reconciling.1.into(),
            facts,
        ),
        condition(
            prev_conditions,
            ConditionType::Stalled,
            ConditionStatus::True,
            reason,
            message,
            facts,
        ),
    ]
}

/// The status of an object that cannot be read as a KafkaConnection (e.g. an enum value this version
/// does not know): Ready=False and Stalled=True naming the problem.
pub fn invalid_object(
    prev: Option<&KafkaConnectionStatus>,
    error: &str,
    facts: Facts,
) -> KafkaConnectionStatus {
    let empty = Vec::new();
    let prev_conditions = prev.map(|p| &p.conditions).unwrap_or(&empty);
    let message = format!("the object cannot be read as a KafkaConnection v1alpha1: {error}");
    let row = checks::spec_valid(
        &[crate::validate::Problem::new(
            "spec",
            Reason::InvalidField,
            message.clone(),
            "fix the field named in the message (kubectl explain kafkaconnection.spec)",
        )],
        0,
    );
    KafkaConnectionStatus {
        observed_generation: facts.generation,
        conditions: stuck(
            prev_conditions,
            Reason::InvalidObject,
            message,
            (Reason::TestComplete, "nothing to test"),
            &facts,
        ),
        checks: vec![row],
        last_test_time: Some(facts.now.clone()),
        tested_by: Some(facts.tested_by),
        ..prev.cloned().unwrap_or_default()
    }
}

/// An Event to publish for a Ready transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyEvent {
    /// Warning (Ready went False) or Normal (it recovered).
    pub warning: bool,
    /// The Ready condition's reason.
    pub reason: String,
    /// The Ready condition's message.
    pub note: String,
}

/// The Event for a change of Ready between two statuses: a Warning when it turns False (with the
/// failing check's reason), a Normal when it turns True again. Nothing when it does not change, and
/// nothing for a first test that passes.
pub fn ready_transition(
    prev: Option<&KafkaConnectionStatus>,
    next: &KafkaConnectionStatus,
) -> Option<ReadyEvent> {
    let ready = |s: &KafkaConnectionStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Ready)
            .cloned()
    };
    let status = |c: &Condition| ConditionStatus::parse(&c.status);
    let before = prev.and_then(ready).and_then(|c| status(&c));
    let after = ready(next)?;
    use ConditionStatus::{False, True, Unknown};
    match (before, status(&after)?) {
        (Some(False), False) | (Some(True), True) | (None | Some(Unknown), True) => None,
        (_, False) => Some(ReadyEvent {
            warning: true,
            reason: after.reason,
            note: after.message,
        }),
        (Some(False), True) => Some(ReadyEvent {
            warning: false,
            reason: Reason::Recovered.into(),
            note: after.message,
        }),
        _ => None,
    }
}

/// Whether writing `next` over `prev` is worth an API call: not when only the test's time, its
/// durations and its wait for the cluster's budget changed. (`status.lastTestTime` is then the time
/// of the last test that changed something; the controller keeps the time of every test in memory.)
pub fn is_noop(prev: Option<&KafkaConnectionStatus>, next: &KafkaConnectionStatus) -> bool {
    let Some(prev) = prev else { return false };
    let strip = |s: &KafkaConnectionStatus| {
        let mut s = s.clone();
        s.checks_digest = Some(checks_digest(&s));
        s.checks = Vec::new();
        s.last_test_time = None;
        s.budget_wait_ms = None;
        s
    };
    strip(prev) == strip(next)
}

/// A digest of `status.checks` with their durations left out: what the watch cache keeps in their
/// place ([`elide_checks`]), and what [`is_noop`] compares.
pub fn checks_digest(status: &KafkaConnectionStatus) -> u64 {
    use std::hash::{Hash, Hasher};
    if let (true, Some(digest)) = (status.checks.is_empty(), status.checks_digest) {
        return digest;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for c in &status.checks {
        (&c.name, &c.result, &c.reason, &c.message, &c.hint, &c.field).hash(&mut h);
    }
    h.finish()
}

/// Replaces `status.checks` with their digest: the rows are most of a status's bytes, and a
/// reconcile only compares them. A status written from one without its rows gets them back from
/// the API server first.
pub fn elide_checks(status: &mut KafkaConnectionStatus) {
    if !status.checks.is_empty() {
        status.checks_digest = Some(checks_digest(status));
        status.checks = Vec::new();
    }
}

/// Whether the rows of `status.checks` were left out of this copy ([`elide_checks`]).
pub fn checks_elided(status: &KafkaConnectionStatus) -> bool {
    status.checks.is_empty() && status.checks_digest.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ClusterInfo;

    fn t(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap())
    }

    fn row(name: impl AsRef<str>, result: CheckResult, reason: impl AsRef<str>) -> CheckReport {
        let name = name.as_ref();
        CheckReport {
            name: name.into(),
            result,
            reason: reason.as_ref().into(),
            message: format!("{name} says so"),
            hint: None,
            field: None,
            duration_ms: 3,
        }
    }

    fn facts(now: Time) -> Facts {
        Facts {
            generation: Some(2),
            now,
            tested_by: TestedBy {
                agent: "default".into(),
                pod: "p".into(),
            },
            observed_secrets: vec![],
            handled_request: None,
        }
    }

    fn get<'a>(s: &'a KafkaConnectionStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    fn report(rows: Vec<CheckReport>) -> TestReport {
        TestReport {
            checks: rows,
            cluster: Some(ClusterInfo {
                cluster_id: Some("c".into()),
                brokers: 3,
                controller_id: Some(1),
            }),
            topics: None,
            session: None,
            budget_wait: Default::default(),
        }
    }

    #[test]
    fn ready_follows_failures_and_warnings() {
        let ok = report(vec![
            row(
                Check::BrokersReachable,
                CheckResult::Warning,
                Reason::SomeBrokersUnreachable,
            ),
            row(
                Check::Authenticated,
                CheckResult::Passed,
                Reason::Authenticated,
            ),
        ]);
        let s = after_test(None, &ok, facts(t(0)));
        assert_eq!(
            (
                get(&s, "Ready").status.as_str(),
                get(&s, "Ready").reason.as_str()
            ),
            ("True", Reason::PassedWithWarnings.as_str())
        );
        assert_eq!(get(&s, "Reachable").status, "True");
        assert_eq!(get(&s, "Stalled").status, "False");
        assert_eq!(s.observed_generation, Some(2));

        let bad = report(vec![
            row(
                Check::Authenticated,
                CheckResult::Failed,
                Reason::AuthenticationFailed,
            ),
            row(
                Check::TopicsResolved,
                CheckResult::Skipped,
                Reason::DependencyFailed,
            ),
        ]);
        let s = after_test(None, &bad, facts(t(0)));
        assert_eq!(
            (
                get(&s, "Ready").status.as_str(),
                get(&s, "Ready").reason.as_str()
            ),
            ("False", Reason::AuthenticationFailed.as_str())
        );
        assert_eq!(get(&s, "Authenticated").status, "False");
        assert_eq!(get(&s, "TopicsResolved").status, "Unknown");
        assert_eq!(
            get(&s, "Stalled").status,
            "True",
            "a rejected login waits for a person to fix the Secret (kconn retries only at the interval)"
        );
    }

    #[test]
    fn missing_secret_stalls() {
        let s = after_test(
            None,
            &report(vec![row(
                Check::CredentialsResolved,
                CheckResult::Failed,
                Reason::SecretNotFound,
            )]),
            facts(t(0)),
        );
        assert_eq!(
            (
                get(&s, "Stalled").status.as_str(),
                get(&s, "Stalled").reason.as_str()
            ),
            ("True", Reason::SecretNotFound.as_str())
        );
    }

    #[test]
    fn only_failures_a_person_must_mend_stall() {
        let cases = [
            (Check::Authenticated, Reason::AuthenticationFailed, "True"),
            (Check::Authenticated, Reason::TlsFailed, "True"),
            (Check::TlsHandshake, Reason::CertificateUntrusted, "True"),
            (Check::TlsHandshake, Reason::HostnameMismatch, "True"),
            (Check::KerberosTicket, Reason::KeytabRejected, "True"),
            (Check::KerberosTicket, Reason::PrincipalUnknown, "True"),
            (Check::Authorized, Reason::NotAuthorized, "True"),
            (
                Check::CredentialsResolved,
                Reason::PrincipalNotInKeytab,
                "True",
            ),
            (Check::SpecValid, Reason::InvalidDuration, "True"),
            (Check::BrokersReachable, Reason::NoBrokerReachable, "False"),
            (Check::BootstrapResolved, Reason::UnresolvableHosts, "False"),
            (Check::KerberosTicket, Reason::KdcUnreachable, "False"),
            (Check::Authenticated, Reason::TestTimedOut, "False"),
            (Check::Authenticated, Reason::KafkaUnavailable, "False"),
            (Check::TokenAcquired, Reason::TokenRequestRejected, "True"),
            (Check::TokenAcquired, Reason::TokenUnusable, "True"),
            (Check::Authenticated, Reason::TokenRefused, "True"),
            (
                Check::TokenAcquired,
                Reason::TokenEndpointUnreachable,
                "False",
            ),
            (Check::TokenAcquired, Reason::TokenEndpointFailed, "False"),
        ];
        for (check, why, stalled) in cases {
            let s = after_test(
                None,
                &report(vec![row(check, CheckResult::Failed, why)]),
                facts(t(0)),
            );
            assert_eq!(get(&s, "Stalled").status, stalled, "{check} {why}");
            assert_eq!(get(&s, "Ready").status, "False");
            assert_eq!(get(&s, "Reconciling").status, "False");
        }
    }

    #[test]
    fn a_test_of_a_new_generation_is_announced_as_reconciling() {
        let mut f = facts(t(0));
        f.generation = Some(1);
        let s = testing(None, &f);
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(
            (
                get(&s, "Ready").status.as_str(),
                get(&s, "Ready").reason.as_str()
            ),
            ("Unknown", Reason::NotTestedYet.as_str())
        );
        assert_eq!(get(&s, "Reconciling").status, "True");
        assert_eq!(get(&s, "Stalled").status, "False");
        // A later generation keeps what the last test found in Ready and the areas.
        let ok = report(vec![row(
            Check::Authenticated,
            CheckResult::Passed,
            Reason::Authenticated,
        )]);
        let done = after_test(Some(&s), &ok, f.clone());
        assert_eq!(get(&done, "Reconciling").status, "False");
        f.generation = Some(2);
        f.now = t(60);
        let again = testing(Some(&done), &f);
        assert_eq!(again.observed_generation, Some(2));
        assert_eq!(get(&again, "Ready"), get(&done, "Ready"));
        assert_eq!(get(&again, "Authenticated"), get(&done, "Authenticated"));
        assert_eq!(get(&again, "Reconciling").status, "True");
        assert_eq!(get(&again, "Reconciling").last_transition_time, t(60));
    }

    #[test]
    fn a_suspended_connection_keeps_its_verdict_and_follows_the_generation() {
        let ok = report(vec![row(
            Check::Authenticated,
            CheckResult::Passed,
            Reason::Authenticated,
        )]);
        let tested = after_test(None, &ok, facts(t(0)));
        let mut f = facts(t(60));
        f.generation = Some(3);
        let s = suspended(Some(&tested), &f);
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(get(&s, "Ready"), get(&tested, "Ready"));
        assert_eq!(
            (
                get(&s, "Reconciling").status.as_str(),
                get(&s, "Reconciling").reason.as_str()
            ),
            ("False", Reason::Suspended.as_str())
        );
        assert_eq!(s.conditions.len(), tested.conditions.len());
        assert_eq!(
            suspended(Some(&s), &f),
            s,
            "a second reconcile changes nothing"
        );
    }

    #[test]
    fn transition_time_moves_only_on_flips() {
        let ok = report(vec![row(
            Check::Authenticated,
            CheckResult::Passed,
            Reason::Authenticated,
        )]);
        let first = after_test(None, &ok, facts(t(0)));
        let second = after_test(Some(&first), &ok, facts(t(300)));
        assert_eq!(get(&second, "Ready").last_transition_time, t(0));
        let bad = report(vec![row(
            Check::Authenticated,
            CheckResult::Failed,
            Reason::AuthenticationFailed,
        )]);
        let third = after_test(Some(&second), &bad, facts(t(600)));
        assert_eq!(get(&third, "Ready").last_transition_time, t(600));
    }

    #[test]
    fn events_only_on_ready_transitions() {
        let ok = report(vec![row(
            Check::Authenticated,
            CheckResult::Passed,
            Reason::Authenticated,
        )]);
        let bad = report(vec![row(
            Check::Authenticated,
            CheckResult::Failed,
            Reason::AuthenticationFailed,
        )]);
        let first_ok = after_test(None, &ok, facts(t(0)));
        assert_eq!(
            ready_transition(None, &first_ok),
            None,
            "a first success is not news"
        );
        let failed = after_test(Some(&first_ok), &bad, facts(t(10)));
        let ev = ready_transition(Some(&first_ok), &failed).unwrap();
        assert!(ev.warning);
        assert_eq!(ev.reason, Reason::AuthenticationFailed);
        assert_eq!(
            ready_transition(
                Some(&failed),
                &after_test(Some(&failed), &bad, facts(t(20)))
            ),
            None
        );
        let back = after_test(Some(&failed), &ok, facts(t(30)));
        assert_eq!(
            ready_transition(Some(&failed), &back).map(|e| (e.warning, e.reason)),
            Some((false, "Recovered".to_string()))
        );
        assert!(
            ready_transition(None, &after_test(None, &bad, facts(t(0))))
                .unwrap()
                .warning
        );
    }

    #[test]
    fn a_test_that_changed_only_times_durations_and_waits_is_not_written() {
        let ok = report(vec![row(
            Check::Authenticated,
            CheckResult::Passed,
            Reason::Authenticated,
        )]);
        let first = after_test(None, &ok, facts(t(0)));
        let mut again = ok.clone();
        again.checks[0].duration_ms = 99;
        again.budget_wait = std::time::Duration::from_millis(700);
        let second = after_test(Some(&first), &again, facts(t(30)));
        assert_eq!(second.budget_wait_ms, Some(700));
        assert!(is_noop(Some(&first), &second));
        // However long ago the last write was: the time of each test is kept in memory.
        let much_later = after_test(Some(&first), &again, facts(t(400_000)));
        assert!(is_noop(Some(&first), &much_later));
        let bad = report(vec![row(
            Check::Authenticated,
            CheckResult::Failed,
            Reason::AuthenticationFailed,
        )]);
        assert!(!is_noop(
            Some(&first),
            &after_test(Some(&first), &bad, facts(t(30)))
        ));
        assert!(!is_noop(None, &first));
        // A message that changed is a change.
        let mut reworded = ok.clone();
        reworded.checks[0].message = "another message".into();
        assert!(!is_noop(
            Some(&first),
            &after_test(Some(&first), &reworded, facts(t(30)))
        ));
    }

    #[test]
    fn the_watch_cache_keeps_the_rows_as_a_digest_that_compares_the_same() {
        let ok = report(vec![row(
            Check::Authenticated,
            CheckResult::Passed,
            Reason::Authenticated,
        )]);
        let first = after_test(None, &ok, facts(t(0)));
        let mut cached = first.clone();
        elide_checks(&mut cached);
        assert!(cached.checks.is_empty() && checks_elided(&cached));
        assert!(!checks_elided(&first));
        assert_eq!(checks_digest(&cached), checks_digest(&first));
        let mut again = ok.clone();
        again.checks[0].duration_ms = 12_345;
        assert!(is_noop(
            Some(&cached),
            &after_test(Some(&cached), &again, facts(t(60)))
        ));
        let bad = report(vec![row(
            Check::Authenticated,
            CheckResult::Failed,
            Reason::AuthenticationFailed,
        )]);
        assert!(!is_noop(
            Some(&cached),
            &after_test(Some(&cached), &bad, facts(t(60)))
        ));
        // Eliding twice changes nothing; a status without rows has nothing to elide.
        let digest = cached.checks_digest;
        elide_checks(&mut cached);
        assert_eq!(cached.checks_digest, digest);
        let mut empty = KafkaConnectionStatus::default();
        elide_checks(&mut empty);
        assert!(!checks_elided(&empty));
    }
}
