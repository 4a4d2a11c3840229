//! Rendering test reports for people (a table) and tools (JSON, YAML in the `status.checks` shape).

use std::io::Write;

use clap::ValueEnum;
use serde::Serialize;

use crate::api::{Check, CheckReport, CheckResult, ClusterInfo, TopicsStatus};
use crate::models::report::ModelOutcome;
use crate::validate::Problem;

/// Output format of `kconn check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable table.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Everything `kconn check` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// One entry per KafkaConnection in the input, in input order.
    pub connections: Vec<ConnectionReport>,
}

/// The report of one connection.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionReport {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (or the default).
    pub namespace: String,
    /// `file#document`.
    pub source: String,
    /// The rows `status.checks` would hold.
    pub checks: Vec<CheckReport>,
    /// Every spec problem, with field, reason, message and hint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    /// Cluster facts, when the test reached the cluster (`status.cluster`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    /// Matched topics (`status.topics`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topics: Option<TopicsStatus>,
    /// The models of the matched topics (`--models`, and `kconn demo`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelOutcome>,
    /// Why models could not be sampled, when they were asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models_error: Option<String>,
    /// The binding Secret a passing test would publish (`kconn check --binding`); never part of
    /// the report's output.
    #[serde(skip)]
    pub binding: Option<crate::binding::Manifest>,
}

impl ConnectionReport {
    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.result == CheckResult::Failed)
    }
}

/// The symbol a table shows for a result.
pub fn symbol(result: CheckResult) -> &'static str {
    match result {
        CheckResult::Passed => "✓",
        CheckResult::Warning => "⚠",
        CheckResult::Failed => "✗",
        CheckResult::Skipped => "–",
    }
}

/// Writes the report to stdout.
pub fn print(report: &Report, format: Format) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Table => out.write_all(table(report).as_bytes()),
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, report).map_err(std::io::Error::other)?;
            out.write_all(b"\n")
        }
        Format::Yaml => out.write_all(
            serde_yaml::to_string(report)
                .map_err(std::io::Error::other)?
                .as_bytes(),
        ),
    }
}

/// The table for people.
pub fn table(report: &Report) -> String {
    let mut s = String::new();
    for c in &report.connections {
        s.push_str(&format!(
            "KafkaConnection {}/{}  ({})\n",
            c.namespace, c.name, c.source
        ));
        let name_w = c.checks.iter().map(|r| r.name.len()).max().unwrap_or(0);
        let reason_w = c.checks.iter().map(|r| r.reason.len()).max().unwrap_or(0);
        for r in &c.checks {
            // A SpecValid failure with several problems lists each under its row.
            let listed = r.name == Check::SpecValid
                && c.problems.len() > 1
                && r.result == CheckResult::Failed;
            let message = if listed {
                format!("{} problems:", c.problems.len())
            } else {
                r.message.clone()
            };
            s.push_str(&format!(
                "  {} {:name_w$}  {:reason_w$}  {message}\n",
                symbol(r.result),
                r.name,
                r.reason
            ));
            if listed {
                for p in &c.problems {
                    s.push_str(&format!("      ✗ {}  {}\n", p.field, p.reason));
                    s.push_str(&format!("          {}\n", p.message));
                    s.push_str(&format!("          fix: {}\n", p.hint));
                }
            } else if matches!(r.result, CheckResult::Failed | CheckResult::Warning) {
                if let Some(field) = &r.field {
                    s.push_str(&format!("      field: {field}\n"));
                }
                if let Some(hint) = &r.hint {
                    s.push_str(&format!("      fix:   {hint}\n"));
                }
            }
        }
        if let Some(cluster) = &c.cluster {
            s.push_str(&format!(
                "  cluster: {} ({} broker{})\n",
                cluster.cluster_id.as_deref().unwrap_or("id unknown"),
                cluster.brokers,
                if cluster.brokers == 1 { "" } else { "s" }
            ));
        }
        if let Some(topics) = &c.topics {
            s.push_str(&format!(
                "  topics:  {} matched{}{}\n",
                topics.matched,
                if topics.sample.is_empty() { "" } else { ": " },
                topics.sample.join(", ")
            ));
        }
        if !c.models.is_empty() {
            s.push_str("  models:\n");
            let width = c.models.iter().map(|m| m.topic.len()).max().unwrap_or(0);
            for m in &c.models {
                match (&m.model, &m.error) {
                    (Some(model), _) => s.push_str(&format!(
                        "    ✓ {:width$}  {} sampled{}{}: {}\n",
                        m.topic,
                        model.sampled,
                        registry_note(model),
                        match (model.skipped, model.oversized) {
                            (0, 0) => String::new(),
                            (skipped, 0) => format!(", {skipped} skipped"),
                            (0, oversized) => format!(", {oversized} too large"),
                            (skipped, oversized) =>
                                format!(", {skipped} skipped, {oversized} too large"),
                        },
                        crate::models::report::fields(&model.schema.value())
                    )),
                    (None, error) => {
                        s.push_str(&format!(
                            "    ✗ {:width$}  {}\n",
                            m.topic,
                            error.as_deref().unwrap_or("no model")
                        ));
                        s.push_str("        fix: set spec.consumer.ignoreNonJsonMessages: true to skip and count such messages\n");
                    }
                }
            }
        }
        if let Some(e) = &c.models_error {
            s.push_str(&format!("  models: not sampled: {e}\n"));
        }
        s.push('\n');
    }
    let failed = report.connections.iter().filter(|c| c.failed()).count();
    let total = report.connections.len();
    s.push_str(&format!(
        "{total} connection{}: {} passed, {failed} failed\n",
        if total == 1 { "" } else { "s" },
        total - failed
    ));
    printable(&s)
}

/// ` (Avro, orders-value v3, id 7)` for a topic whose values name registry schemas; empty for JSON.
fn registry_note(model: &crate::models::Model) -> String {
    let Some(newest) = model.schemas.last() else {
        return String::new();
    };
    let subject = match (&newest.subject, newest.version) {
        (Some(s), Some(v)) => format!("{s} v{v}, "),
        (Some(s), None) => format!("{s}, "),
        _ => String::new(),
    };
    let ids: Vec<String> = model.schemas.iter().map(|s| s.id.to_string()).collect();
    format!(
        " ({}, {subject}id{} {})",
        model.format.name(),
        if ids.len() == 1 { "" } else { "s" },
        ids.join(", ")
    )
}

/// `text` with every control character but the newline escaped (`\u{1b}`): brokers, KDCs and
/// manifests supply topic names and error texts, and none of them may steer a terminal.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `kconn models` as a table: the catalog's state, then one row per model.
pub fn models_table(
    namespace: &str,
    name: &str,
    status: Option<&crate::api::ModelsStatus>,
    models: &[crate::models::Model],
) -> String {
    let mut s = format!("KafkaConnection {namespace}/{name}\n");
    match status {
        Some(st) => {
            let time = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
                t.as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_else(|| "never".into())
            };
            s.push_str(&format!(
                "  {} models in {} ConfigMap{}; refreshed {}, next {} ({})\n",
                st.count,
                st.catalog.len(),
                if st.catalog.len() == 1 { "" } else { "s" },
                time(&st.last_refresh_time),
                time(&st.next_refresh_time),
                match st.schedule {
                    Some(crate::api::RefreshSchedule::Daily) => "daily",
                    _ => "hourly",
                }
            ));
            if let Some(c) = &st.changes {
                s.push_str(&format!(
                    "  last refresh: {} added, {} removed, {} changed; {} non-JSON messages skipped{}\n",
                    c.added,
                    c.removed,
                    c.changed,
                    st.skipped_messages,
                    if st.failed_topics > 0 {
                        format!("; {} topics without a model (see the ModelsLoaded condition)", st.failed_topics)
                    } else {
                        String::new()
                    }
                ));
            }
        }
        None => s.push_str("  no catalog yet: the first refresh has not finished\n"),
    }
    if models.is_empty() {
        return s;
    }
    let rows: Vec<[String; 6]> = models
        .iter()
        .map(|m| {
            let format = match m.schemas.last() {
                Some(newest) => match newest.version {
                    Some(v) => format!("{} v{v}", m.format.name()),
                    None => format!("{} id {}", m.format.name(), newest.id),
                },
                None => "JSON".into(),
            };
            [
                m.topic.clone(),
                format!("{}/{}", m.partitions, m.replication_factor),
                m.configs
                    .get("cleanup.policy")
                    .cloned()
                    .unwrap_or_else(|| "-".into()),
                if m.empty {
                    "empty".into()
                } else {
                    format!("{}", m.sampled)
                },
                format,
                crate::models::report::fields(&m.schema.value()),
            ]
        })
        .collect();
    let header = ["TOPIC", "PART/RF", "CLEANUP", "SAMPLED", "FORMAT", "FIELDS"];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 6]| {
        format!(
            "  {:w0$}  {:w1$}  {:w2$}  {:w3$}  {:w4$}  {}\n",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4]
        )
    };
    s.push_str(&line(header));
    for r in &rows {
        s.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
    }
    printable(&s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_escapes_from_brokers_are_shown_not_obeyed() {
        let hostile = "topic\u{1b}]0;owned\u{7}\u{1b}[2J\rx\ty\nnext";
        let shown = super::printable(hostile);
        assert_eq!(shown, "topic\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\rx\\ty\nnext");
        assert!(!shown.chars().any(|c| c.is_control() && c != '\n'));
    }
}
