//! The connection test: one row per check, in dependency order. This module holds the checks that
//! need no network; the online checks build on the same report type.

use crate::api::{reason, CheckReport, CheckResult};
use crate::validate::Problem;

/// Name of the first check.
pub const SPEC_VALID: &str = "SpecValid";

/// The SpecValid row for a validation outcome: Passed, or Failed with the first problem's field and
/// hint and every problem in the message.
pub fn spec_valid(problems: &[Problem], duration_ms: u64) -> CheckReport {
    match problems {
        [] => CheckReport {
            name: SPEC_VALID.into(),
            result: CheckResult::Passed,
            reason: reason::SPEC_VALID.into(),
            message: "every spec rule holds".into(),
            hint: None,
            field: None,
            duration_ms,
        },
        [only] => CheckReport {
            name: SPEC_VALID.into(),
            result: CheckResult::Failed,
            reason: only.reason.into(),
            message: only.to_string(),
            hint: Some(only.hint.clone()),
            field: Some(only.field.clone()),
            duration_ms,
        },
        [first, ..] => CheckReport {
            name: SPEC_VALID.into(),
            result: CheckResult::Failed,
            reason: reason::SPEC_INVALID.into(),
            message: format!(
                "{} problems: {}",
                problems.len(),
                problems
                    .iter()
                    .map(Problem::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            hint: Some(first.hint.clone()),
            field: Some(first.field.clone()),
            duration_ms,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_problem_keeps_its_reason_many_summarise() {
        let a = Problem::new("spec.a", reason::INVALID_NAME, "a is bad", "fix a");
        let b = Problem::new("spec.b", reason::INVALID_DURATION, "b is bad", "fix b");
        assert_eq!(spec_valid(&[], 3).result, CheckResult::Passed);
        let one = spec_valid(std::slice::from_ref(&a), 0);
        assert_eq!(
            (one.reason.as_str(), one.field.as_deref()),
            (reason::INVALID_NAME, Some("spec.a"))
        );
        let two = spec_valid(&[a, b], 0);
        assert_eq!(two.reason, reason::SPEC_INVALID);
        assert_eq!(
            two.message,
            "2 problems: spec.a: a is bad; spec.b: b is bad"
        );
        assert_eq!(two.hint.as_deref(), Some("fix a"));
    }
}
