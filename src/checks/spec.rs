//! SpecValid: every spec rule holds. The rules themselves live in `crate::validate`; this file turns
//! their outcome into the row.

use super::engine::Test;
use super::{clip, MAX_ROW_TEXT};
use crate::api::{Check, CheckReport, CheckResult, Reason};
use crate::kafka::Kafka;
use crate::validate::Problem;

/// The SpecValid step: the outcome the caller validated once.
pub(super) fn spec_valid_step<K: Kafka>(t: &mut Test<'_, K>) -> CheckReport {
    match &t.input.valid {
        Ok(_) => spec_valid(&[], 0),
        Err(problems) => spec_valid(problems, 0),
    }
}

/// The SpecValid row for a validation outcome: Passed, or Failed with the first problem's field and
/// hint and every problem in the message.
pub fn spec_valid(problems: &[Problem], duration_ms: u64) -> CheckReport {
    match problems {
        [] => CheckReport {
            name: Check::SpecValid.into(),
            result: CheckResult::Passed,
            reason: Reason::SpecValid.into(),
            message: "every spec rule holds".into(),
            hint: None,
            field: None,
            duration_ms,
        },
        [only] => CheckReport {
            name: Check::SpecValid.into(),
            result: CheckResult::Failed,
            reason: only.reason.into(),
            message: clip(&only.to_string(), MAX_ROW_TEXT),
            hint: Some(clip(&only.hint, MAX_ROW_TEXT)),
            field: Some(only.field.clone()),
            duration_ms,
        },
        [first, ..] => CheckReport {
            name: Check::SpecValid.into(),
            result: CheckResult::Failed,
            reason: Reason::SpecInvalid.into(),
            message: clip(
                &format!(
                    "{} problems: {}",
                    problems.len(),
                    problems
                        .iter()
                        .map(Problem::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                MAX_ROW_TEXT,
            ),
            hint: Some(clip(&first.hint, MAX_ROW_TEXT)),
            field: Some(first.field.clone()),
            duration_ms,
        },
    }
}
