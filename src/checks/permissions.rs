//! Authorized and ProducerSettings, as pure functions of what the session learned: the operations
//! Kafka reports as authorized (KIP-430; nothing is produced and no group is joined), replication
//! factors, `min.insync.replicas`, and the brokers' highest Produce version.

use crate::api::{
    Acks, Check, CheckReport, CheckResult, Compression, ProducerSettings, Reason, Role,
};
use crate::kafka::ffi::{ApiError, Op};
use crate::kafka::{ClusterView, NOT_SERVED};

use super::row;
/// The Authorized step: the role's permissions, from what the session described.
pub(super) fn authorized_step<K: Kafka>(t: &mut Test<'_, K>) -> CheckReport {
    match &t.view {
        Some(view) => authorized(t.input.spec.role, &t.input.group_id, view),
        None => skipped(
            Check::Authorized,
            Reason::DependencyFailed,
            "TopicsResolved did not run",
        ),
    }
}

/// The ProducerSettings step: acks against the topics' min.insync.replicas, and the codec against
/// what the brokers support (zstd needs Produce v7, asked of a reachable bootstrap server).
pub(super) async fn producer_settings_step<K: Kafka>(t: &mut Test<'_, K>) -> CheckReport {
    let unreached = || {
        skipped(
            Check::ProducerSettings,
            Reason::DependencyFailed,
            "TopicsResolved did not run",
        )
    };
    if t.view.is_none() {
        return unreached();
    }
    let produce_max = if t.input.spec.producer.compression == Compression::Zstd {
        Some(t.api_versions().await.clone().and_then(|versions| {
            versions
                .get(&crate::kafka::api_versions::PRODUCE)
                .map(|(_, max)| *max)
                .ok_or_else(|| "the brokers list no Produce API".to_string())
        }))
    } else {
        None
    };
    match &t.view {
        Some(view) => producer_settings(&t.input.spec.producer, view, produce_max),
        None => unreached(),
    }
}

/// Whether `ops` allow `needed` (ALL allows everything; READ, WRITE, DELETE and ALTER imply DESCRIBE).
fn allows(ops: &[Op], needed: Op) -> bool {
    ops.contains(&Op::All)
        || ops.contains(&needed)
        || (needed == Op::Describe
            && ops
                .iter()
                .any(|o| matches!(o, Op::Read | Op::Write | Op::Delete | Op::Alter)))
}

fn list(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

/// Why an answer is missing, in the user's words: a request nobody answered in time says so (the
/// broker is slow or hangs, not the permissions); otherwise librdkafka's text.
fn why(e: &ApiError) -> String {
    if unanswered(e) && e.message.to_lowercase().contains("timed out") {
        "no answer in time".into()
    } else if unanswered(e) {
        format!("no answer in time: {}", e.message)
    } else {
        e.message.clone()
    }
}

fn unanswered(e: &ApiError) -> bool {
    e.code == "OperationTimedOut"
}

/// The Authorized row for `role` (group: the consumer group pipelines will use).
pub fn authorized(role: Role, group: &str, view: &ClusterView) -> CheckReport {
    let mut missing: Vec<String> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    let mut granted: Vec<String> = Vec::new();
    // What the brokers do not serve: not the user's to fix, and not a warning.
    let mut not_served: Vec<String> = Vec::new();
    let mut timed_out = false;
    let described = view.topic_ops.len();
    let needed: Vec<Op> = [(role.reads(), Op::Read), (role.writes(), Op::Write)]
        .into_iter()
        .filter(|(b, _)| *b)
        .map(|(_, o)| o)
        .collect();

    for op in &needed {
        let mut lacking: Vec<&str> = Vec::new();
        let mut unreported = 0;
        let mut failed: Option<&ApiError> = None;
        for (topic, ops) in &view.topic_ops {
            match ops {
                Ok(Some(ops)) if allows(ops, *op) => {}
                Ok(Some(_)) => lacking.push(topic),
                Err(e) if e.code == "TopicAuthorizationFailed" => lacking.push(topic),
                Err(e) => failed = Some(e),
                Ok(None) => unreported += 1,
            }
        }
        let verb = if *op == Op::Read { "read" } else { "write" };
        if !lacking.is_empty() {
            missing.push(format!(
                "may not {verb} {} of {described} topics: {}",
                lacking.len(),
                list(&lacking)
            ));
        } else if let Some(e) = failed.filter(|e| e.code == NOT_SERVED) {
            not_served.push(format!("{} (topic permissions)", e.message));
        } else if let Some(e) = failed {
            timed_out |= unanswered(e);
            unknown.push(format!("topic permissions could not be read ({})", why(e)));
        } else if unreported > 0 {
            not_served
                .push("the brokers do not report topic permissions (KIP-430, Kafka 2.3+)".into());
        } else if described > 0 {
            granted.push(format!(
                "{verb} {described} topic{}",
                if described == 1 { "" } else { "s" }
            ));
        }
    }

    if role.reads() {
        match &view.group_ops {
            Some(Ok(Some(ops))) if allows(ops, Op::Read) => {
                granted.push(format!("use group {group}"))
            }
            Some(Ok(Some(_))) => missing.push(format!(
                "may not read (join or commit to) consumer group {group}"
            )),
            Some(Err(ApiError { code, .. })) if code == "GroupAuthorizationFailed" => missing.push(
                format!("may not use consumer group {group} (not even describe it)"),
            ),
            Some(Err(e)) if e.code == NOT_SERVED => {
                not_served.push(format!("{} (the permissions on group {group})", e.message))
            }
            Some(Err(e)) => {
                timed_out |= unanswered(e);
                unknown.push(format!("group permissions could not be read ({})", why(e)))
            }
            Some(Ok(None)) | None => not_served
                .push("the brokers do not report group permissions (KIP-430, Kafka 2.3+)".into()),
        }
    }

    if role.writes() && view.matched.is_empty() {
        match &view.cluster_ops {
            Some(Ok(Some(ops))) if allows(ops, Op::Create) => granted.push("create topics".into()),
            Some(Ok(Some(_))) => unknown.push(
                "no topic matches yet and the cluster does not grant CREATE; topic-prefixed CREATE grants cannot be seen before the topic exists".into(),
            ),
            _ => unknown.push("no topic matches yet and topic creation rights could not be read".into()),
        }
    }

    unknown.dedup();
    not_served.dedup();
    if !missing.is_empty() || !unknown.is_empty() {
        // A finding or a real doubt decides the row; what is not served is named with it.
        unknown.append(&mut not_served);
    }
    let field = if missing.iter().any(|m| m.contains("group"))
        && !missing.iter().any(|m| m.contains("topics"))
    {
        "spec.consumer.groupId"
    } else {
        "spec.role"
    };
    if !missing.is_empty() {
        let mut message = missing.join("; ");
        if !unknown.is_empty() {
            message.push_str(&format!("; {}", unknown.join("; ")));
        }
        let hint = "grant the principal the missing ACLs (for example: kafka-acls --add --allow-principal User:NAME --operation Read --topic PREFIX --resource-pattern-type prefixed), narrow spec.topics, or set spec.role to what pipelines really do";
        return row(
            Check::Authorized,
            CheckResult::Failed,
            Reason::NotAuthorized,
            message,
            Some(hint.into()),
            Some(field.into()),
        );
    }
    if !unknown.is_empty() {
        let message = if granted.is_empty() {
            unknown.join("; ")
        } else {
            format!("may {}; {}", granted.join(", "), unknown.join("; "))
        };
        let hint = if timed_out {
            "a broker did not answer in time (for the group: its coordinator); check the brokers' health and load, or raise spec.check.timeout; the next test asks again"
        } else {
            "check the principal's ACLs by hand (kafka-acls --list), or upgrade the brokers (Kafka 2.3+ reports permissions)"
        };
        return row(
            Check::Authorized,
            CheckResult::Warning,
            Reason::PermissionsUnverified,
            message,
            Some(hint.into()),
            None,
        );
    }
    if !not_served.is_empty() {
        let mut message = not_served.join("; ");
        if !granted.is_empty() {
            message = format!("may {}; {message}", granted.join(", "));
        }
        return row(
            Check::Authorized,
            CheckResult::Skipped,
            Reason::NotSupportedByBroker,
            message,
            Some("these brokers cannot tell kconn what the principal may do (managed services leave these requests out); nothing in the spec to fix: check the principal's rights with the service's own tools or console".into()),
            None,
        );
    }
    if granted.is_empty() {
        return row(
            Check::Authorized,
            CheckResult::Passed,
            Reason::Authorized,
            "no topic matches, nothing to authorize",
            None,
            None,
        );
    }
    let sampled = if view.matched.len() > described {
        format!(" (checked {described} of {} topics)", view.matched.len())
    } else {
        String::new()
    };
    row(
        Check::Authorized,
        CheckResult::Passed,
        Reason::Authorized,
        format!("may {}{sampled}", granted.join(", ")),
        None,
        None,
    )
}

/// The lowest min.insync.replicas the acks setting needs for a replication factor (`None`: any).
pub fn required_min_insync(acks: Acks, replication_factor: u32) -> Option<u32> {
    match acks {
        Acks::None | Acks::Leader => None,
        Acks::MajorityIsr => Some(replication_factor / 2 + 1),
        Acks::AllIsr => Some(replication_factor),
    }
}

/// The ProducerSettings row. `produce_max`: the brokers' highest Produce API version, when known.
pub fn producer_settings(
    producer: &ProducerSettings,
    view: &ClusterView,
    produce_max: Option<Result<i16, String>>,
) -> CheckReport {
    let mut failed: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();

    if producer.compression == Compression::Zstd {
        match &produce_max {
            Some(Ok(v)) if *v >= 7 => {}
            Some(Ok(v)) => failed.push(format!(
                "zstd needs Produce v7 (Kafka 2.1+), the brokers support up to v{v}"
            )),
            Some(Err(e)) => warnings.push(format!(
                "the brokers' API versions could not be read ({e}); zstd support not verified"
            )),
            None => warnings.push("zstd support not verified".into()),
        }
    }

    let replication: std::collections::HashMap<&str, u32> = view
        .topics
        .iter()
        .map(|t| (t.name.as_str(), t.replication_factor))
        .collect();
    let mut too_low: Vec<String> = Vec::new();
    let mut unreadable = 0;
    let mut denied = 0;
    let mut not_served = 0;
    if matches!(producer.acks, Acks::MajorityIsr | Acks::AllIsr) {
        for (topic, min_insync) in &view.min_insync {
            let rf = replication.get(topic.as_str()).copied().unwrap_or(0);
            match min_insync {
                Ok(Some(min)) => {
                    if let Some(need) = required_min_insync(producer.acks, rf) {
                        if *min < need {
                            too_low.push(format!("{topic} (replication factor {rf}, min.insync.replicas {min}, needs {need})"));
                        }
                    }
                }
                Err(e) if e.code.contains("Authorization") => denied += 1,
                Err(e) if e.code == NOT_SERVED => not_served += 1,
                Ok(None) | Err(_) => unreadable += 1,
            }
        }
    }
    let acks_name = match producer.acks {
        Acks::None => "None",
        Acks::Leader => "Leader",
        Acks::MajorityIsr => "MajorityIsr",
        Acks::AllIsr => "AllIsr",
    };
    if !too_low.is_empty() {
        let names: Vec<&str> = too_low.iter().map(String::as_str).collect();
        failed.push(format!(
            "acks {acks_name} is not met by {} topic{}: {}",
            too_low.len(),
            if too_low.len() == 1 { "" } else { "s" },
            list(&names)
        ));
    }
    if denied > 0 {
        warnings.push(format!("min.insync.replicas of {denied} topics could not be read: the principal lacks DESCRIBE_CONFIGS"));
    }
    if unreadable > 0 {
        let why = view
            .min_insync
            .iter()
            .find_map(|(_, r)| r.as_ref().err())
            .map(|e| format!(" ({})", e.message))
            .unwrap_or_default();
        warnings.push(format!(
            "min.insync.replicas of {unreadable} topics could not be read{why}"
        ));
    }
    let unserved = (not_served > 0).then(|| {
        format!(
            "the brokers do not serve DescribeConfigs: min.insync.replicas of {not_served} topic{} cannot be read, so acks {acks_name} is not verified",
            if not_served == 1 { "" } else { "s" }
        )
    });
    if !failed.is_empty() || !warnings.is_empty() {
        warnings.extend(unserved.clone());
    }
    if !failed.is_empty() {
        let mut message = failed.join("; ");
        if !warnings.is_empty() {
            message.push_str(&format!("; {}", warnings.join("; ")));
        }
        let hint = if too_low.is_empty() {
            "choose a codec the brokers support (spec.producer.compression: lz4) or upgrade the brokers"
        } else {
            "raise the topics' min.insync.replicas (kafka-configs --alter --add-config min.insync.replicas=N) or lower spec.producer.acks"
        };
        let field = if too_low.is_empty() {
            "spec.producer.compression"
        } else {
            "spec.producer.acks"
        };
        return row(
            Check::ProducerSettings,
            CheckResult::Failed,
            Reason::ProducerSettingsUnsafe,
            message,
            Some(hint.into()),
            Some(field.into()),
        );
    }
    if !warnings.is_empty() {
        let hint = "grant DESCRIBE_CONFIGS on the topics so kconn can verify durability, or check the topics' min.insync.replicas by hand";
        return row(
            Check::ProducerSettings,
            CheckResult::Warning,
            Reason::ProducerSettingsUnverified,
            warnings.join("; "),
            Some(hint.into()),
            None,
        );
    }
    if let Some(unserved) = unserved {
        return row(
            Check::ProducerSettings,
            CheckResult::Skipped,
            Reason::NotSupportedByBroker,
            format!("{unserved}; compression {}", producer.compression.as_str()),
            Some("nothing in the spec to fix: check the topics' min.insync.replicas with the service's own tools or console".into()),
            None,
        );
    }
    let durability = match producer.acks {
        Acks::None => "acks None: writes are not confirmed and can be lost".to_string(),
        Acks::Leader => "acks Leader: a leader failure can lose confirmed writes".to_string(),
        _ if view.min_insync.is_empty() => format!("acks {acks_name}: no topic to verify yet"),
        _ => format!(
            "acks {acks_name} is met by all {} topics checked",
            view.min_insync.len()
        ),
    };
    let message = format!(
        "{durability}; compression {}",
        producer.compression.as_str()
    );
    row(
        Check::ProducerSettings,
        CheckResult::Passed,
        Reason::ProducerSettingsOk,
        message,
        None,
        None,
    )
}

use super::engine::{skipped, Test};
use crate::kafka::Kafka;
#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::Topic;

    fn view(
        topics: &[(&str, u32)],
        ops: &[(&str, Option<&[Op]>)],
        group: Option<Result<Option<Vec<Op>>, ApiError>>,
    ) -> ClusterView {
        ClusterView {
            topics: topics
                .iter()
                .map(|(n, rf)| Topic {
                    name: n.to_string(),
                    partitions: 1,
                    replication_factor: *rf,
                })
                .collect(),
            matched: topics.iter().map(|(n, _)| n.to_string()).collect(),
            topic_ops: ops
                .iter()
                .map(|(n, o)| (n.to_string(), Ok(o.map(|o| o.to_vec()))))
                .collect(),
            group_ops: group,
            ..ClusterView::default()
        }
    }

    #[test]
    fn read_and_write_by_role() {
        let rw: &[Op] = &[Op::Read, Op::Write, Op::Describe];
        let r: &[Op] = &[Op::Read];
        let g = || Some(Ok(Some(vec![Op::Read])));
        let v = view(
            &[("a", 3), ("b", 3)],
            &[("a", Some(rw)), ("b", Some(r))],
            g(),
        );
        assert_eq!(
            authorized(Role::Source, "grp", &v).result,
            CheckResult::Passed
        );
        let target = authorized(Role::Target, "grp", &v);
        assert_eq!(
            (target.result, target.reason.as_str()),
            (CheckResult::Failed, Reason::NotAuthorized.as_str())
        );
        assert!(
            target.message.contains("may not write 1 of 2 topics: b"),
            "{}",
            target.message
        );
        let all: &[Op] = &[Op::All];
        assert_eq!(
            authorized(
                Role::SourceAndTarget,
                "grp",
                &view(&[("a", 1)], &[("a", Some(all))], g())
            )
            .result,
            CheckResult::Passed
        );
    }

    #[test]
    fn group_denied_names_the_group_field() {
        let r: &[Op] = &[Op::Read];
        let denied = Some(Err(ApiError {
            code: "GroupAuthorizationFailed".into(),
            message: "x".into(),
        }));
        let row = authorized(
            Role::Source,
            "pipelines",
            &view(&[("a", 1)], &[("a", Some(r))], denied),
        );
        assert_eq!(
            (row.result, row.field.as_deref()),
            (CheckResult::Failed, Some("spec.consumer.groupId"))
        );
        assert!(row.message.contains("pipelines"));
    }

    #[test]
    fn errors_other_than_denial_do_not_count_as_missing_rights() {
        let slow = || {
            Err(ApiError {
                code: "OperationTimedOut".into(),
                message: "slow".into(),
            })
        };
        let mut v = view(&[("a", 1)], &[], Some(slow()));
        v.topic_ops = vec![("a".into(), slow())];
        let row = authorized(Role::Source, "g", &v);
        assert_eq!(
            (row.result, row.reason.as_str()),
            (CheckResult::Warning, Reason::PermissionsUnverified.as_str()),
            "{}",
            row.message
        );
        assert!(
            row.message
                .contains("group permissions could not be read (no answer in time: slow)"),
            "{}",
            row.message
        );
        assert!(row
            .hint
            .as_deref()
            .unwrap()
            .contains("did not answer in time"));
        v.topic_ops = vec![(
            "a".into(),
            Err(ApiError {
                code: "TopicAuthorizationFailed".into(),
                message: "no".into(),
            }),
        )];
        assert_eq!(
            authorized(Role::Source, "g", &v).result,
            CheckResult::Failed
        );
    }

    #[test]
    fn permissions_the_brokers_do_not_report_or_serve_are_skipped_not_warned() {
        // Brokers before Kafka 2.3 answer without KIP-430 permissions.
        let row = authorized(
            Role::Source,
            "g",
            &view(&[("a", 1)], &[("a", None)], Some(Ok(None))),
        );
        assert_eq!(
            (row.result, row.reason.as_str()),
            (CheckResult::Skipped, Reason::NotSupportedByBroker.as_str())
        );
        assert!(row.message.contains("KIP-430"), "{}", row.message);
        // A broker without DescribeGroups: topics verified, the group named as not served.
        let mut v = view(
            &[("a", 1)],
            &[("a", Some(&[Op::Read][..]))],
            Some(Err(ApiError {
                code: crate::kafka::NOT_SERVED.into(),
                message: "the brokers do not serve DescribeGroups".into(),
            })),
        );
        let row = authorized(Role::Source, "g", &v);
        assert_eq!(
            (row.result, row.reason.as_str()),
            (CheckResult::Skipped, Reason::NotSupportedByBroker.as_str())
        );
        assert!(
            row.message
                .starts_with("may read 1 topic; the brokers do not serve DescribeGroups"),
            "{}",
            row.message
        );
        // A finding still decides: a topic it may not read fails, whatever is not served.
        v.topic_ops = vec![("a".into(), Ok(Some(vec![Op::Describe])))];
        assert_eq!(
            authorized(Role::Source, "g", &v).result,
            CheckResult::Failed
        );
    }

    #[test]
    fn min_insync_rules() {
        assert_eq!(required_min_insync(Acks::MajorityIsr, 3), Some(2));
        assert_eq!(required_min_insync(Acks::MajorityIsr, 4), Some(3));
        assert_eq!(required_min_insync(Acks::MajorityIsr, 1), Some(1));
        assert_eq!(required_min_insync(Acks::AllIsr, 3), Some(3));
        assert_eq!(required_min_insync(Acks::Leader, 3), None);
    }

    #[test]
    fn durability_against_topics() {
        let mut v = view(&[("ok", 3), ("low", 3)], &[], None);
        v.min_insync = vec![("ok".into(), Ok(Some(2))), ("low".into(), Ok(Some(1)))];
        let majority = ProducerSettings {
            acks: Acks::MajorityIsr,
            ..Default::default()
        };
        let row = producer_settings(&majority, &v, None);
        assert_eq!(
            (row.result, row.field.as_deref()),
            (CheckResult::Failed, Some("spec.producer.acks"))
        );
        assert!(
            row.message
                .contains("low (replication factor 3, min.insync.replicas 1, needs 2)"),
            "{}",
            row.message
        );
        let all = ProducerSettings {
            acks: Acks::AllIsr,
            ..Default::default()
        };
        assert!(producer_settings(&all, &v, None)
            .message
            .contains("2 topics"));
        let leader = ProducerSettings {
            acks: Acks::Leader,
            ..Default::default()
        };
        assert_eq!(
            producer_settings(&leader, &v, None).result,
            CheckResult::Passed
        );
    }

    #[test]
    fn zstd_needs_produce_v7() {
        let zstd = ProducerSettings {
            acks: Acks::Leader,
            compression: Compression::Zstd,
            ..Default::default()
        };
        let v = view(&[], &[], None);
        assert_eq!(
            producer_settings(&zstd, &v, Some(Ok(9))).result,
            CheckResult::Passed
        );
        let old = producer_settings(&zstd, &v, Some(Ok(5)));
        assert_eq!(
            (old.result, old.field.as_deref()),
            (CheckResult::Failed, Some("spec.producer.compression"))
        );
        assert_eq!(
            producer_settings(&zstd, &v, Some(Err("x".into()))).result,
            CheckResult::Warning
        );
    }
}
