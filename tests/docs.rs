//! The documentation is checked against the code: every reason kconn writes is explained in
//! docs/reasons.md, every metric and annotation in docs/operations.md, every spec field the seed field
//! map names exists in the CRD, every relative link resolves, and every KafkaConnection manifest shown in
//! the docs passes `kconn check --offline`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_reason_is_explained() {
    use kconn::api::{Check, ConditionType, Reason};
    let doc = read("docs/reasons.md");
    assert!(Reason::ALL.len() > 80);
    let missing: Vec<&str> = Reason::ALL
        .iter()
        .map(|r| r.as_str())
        .filter(|r| !doc.contains(&format!("`{r}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/reasons.md does not explain {missing:?}"
    );
    // Every check and condition type is named there too.
    let unnamed: Vec<&str> = Check::ALL
        .iter()
        .map(|c| c.as_str())
        .chain(ConditionType::ALL.iter().map(|c| c.as_str()))
        .filter(|w| !doc.contains(&format!("`{w}`")))
        .collect();
    assert!(
        unnamed.is_empty(),
        "docs/reasons.md does not name {unnamed:?}"
    );
}

#[test]
fn the_check_table_is_the_engine_s() {
    use kconn::api::Check;
    let doc = read("docs/reasons.md");
    let section = doc
        .split("## Checks")
        .nth(1)
        .expect("a Checks section")
        .split("\n## ")
        .next()
        .unwrap();
    let words = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let rows: Vec<Vec<&str>> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    let names: Vec<String> = rows.iter().map(|r| words(r[1]).remove(0)).collect();
    let expected: Vec<String> = Check::ALL.iter().map(|c| c.to_string()).collect();
    assert_eq!(names, expected, "one row per check, in the order they run");
    for (row, check) in rows.iter().zip(Check::ALL) {
        let needs: Vec<String> = check.needs().iter().map(|c| c.to_string()).collect();
        assert_eq!(words(row[3]), needs, "the needs of {check}");
        let area: Vec<String> = check.area().iter().map(|a| a.to_string()).collect();
        assert_eq!(words(row[4]), area, "the condition {check} feeds");
    }
}

#[test]
fn every_metric_annotation_and_flag_is_documented() {
    let doc = read("docs/operations.md");
    // The names registered in src/http.rs; counters are exposed with `_total`.
    let source = read("src/http.rs");
    let names: Vec<&str> = source
        .split("registry.register(")
        .skip(1)
        .map(|rest| rest.split('"').nth(1).unwrap())
        .collect();
    assert!(names.len() >= 9, "{names:?}");
    let exposed = kconn::testing::http::Metrics::default().encode();
    for name in names {
        let family = format!("kconn_{name}");
        // A family with labels is exposed only once it has a value: then the doc's spelling decides.
        let shown = match exposed.contains(&format!("# TYPE {family} ")) {
            true if exposed.contains(&format!("# TYPE {family} counter")) => {
                format!("{family}_total")
            }
            true => family.clone(),
            false if doc.contains(&format!("`{family}_total`")) => format!("{family}_total"),
            false => family.clone(),
        };
        assert!(
            doc.contains(&format!("`{shown}`")),
            "docs/operations.md does not document {shown}"
        );
        assert!(
            read("README.md").contains(&shown),
            "README.md does not name {shown}"
        );
    }
    for annotation in [
        kconn::api::TEST_REQUESTED_AT,
        kconn::api::REFRESH_REQUESTED_AT,
        kconn::testing::models::store::CONNECTION_ANNOTATION,
    ] {
        assert!(
            doc.contains(&format!("`{annotation}`")),
            "{annotation} is not documented"
        );
    }
    // Every flag of `kconn run`, from its own help.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let flags: Vec<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2 && *w != "--help")
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
        .collect();
    assert!(flags.len() >= 11, "{flags:?}");
    for flag in flags {
        assert!(
            doc.contains(&format!("`{flag}`")),
            "docs/operations.md does not document {flag}"
        );
    }
}

/// `spec.a.b` paths named in a text.
fn spec_paths(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
        .filter(|w| w.starts_with("spec.") && w.len() > 5)
        .map(|w| w.trim_end_matches('.').to_string())
        .collect()
}

#[test]
fn the_seed_field_map_covers_the_form_and_names_real_fields() {
    let doc = read("docs/seed-field-map.md");
    for field in [
        "Connection name",
        "Connection type",
        "DB host",
        "Topic expression",
        "Kerberos authentication",
        "User name, Password",
        "Encryption",
        "Ignore non-JSON Object format messages",
        "ACK confirmation mechanism",
        "Message compression type",
        "Ignore push message exception",
        "Agent settings",
        "Model load time",
        "Connection Test",
    ] {
        assert!(
            doc.contains(&format!("| {field}")),
            "the map lacks the form field {field:?}"
        );
    }
    let crd = serde_json::to_value(kconn::api::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let paths = spec_paths(&doc);
    assert!(paths.len() > 15, "{paths:?}");
    for path in paths {
        let mut node = schema;
        for part in path.split('.') {
            node = &node["properties"][part];
            assert!(
                !node.is_null(),
                "docs/seed-field-map.md names {path}, which the CRD does not have"
            );
        }
    }
}

/// Markdown files whose links are checked.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![
        root().join("README.md"),
        root().join("CHANGELOG.md"),
        root().join("charts/kconn/README.md"),
    ];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    files
}

/// GitHub's anchor of a heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_relative_link_resolves() {
    let mut checked = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for target in text
            .split("](")
            .skip(1)
            .filter_map(|rest| rest.split(')').next())
        {
            if target.starts_with("http") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
            let dest = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            assert!(
                dest.exists(),
                "{}: the link {target} leads nowhere",
                file.display()
            );
            if !fragment.is_empty() {
                let body = std::fs::read_to_string(&dest).unwrap();
                let anchors: Vec<String> = body
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .map(|l| anchor(l.trim_start_matches('#')))
                    .collect();
                assert!(
                    anchors.contains(&fragment.to_string()),
                    "{}: no heading for #{fragment} in {} ({anchors:?})",
                    file.display(),
                    dest.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 10, "only {checked} links found");
}

#[test]
fn every_manifest_shown_in_the_docs_passes_offline_validation() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for block in text
            .split("```yaml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
        {
            if !(block.contains("kind: KafkaConnection")
                && block.contains("apiVersion: kconn.dev/"))
            {
                continue;
            }
            n += 1;
            let path = dir.path().join(format!("{n}.yaml"));
            std::fs::write(&path, block).unwrap();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_kconn"))
                .args(["check", "--offline", "-f", path.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "a manifest in {} does not validate:\n{block}\n{}",
                file.display(),
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    assert!(n >= 2, "only {n} manifests found in the docs");
}
