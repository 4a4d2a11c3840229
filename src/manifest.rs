//! Reading Kubernetes manifests from files and directories: KafkaConnections (with every shape problem
//! reported as a [`Problem`] on its field path, as the API server would), Secrets, and notes about
//! documents of other kinds.

use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;

use crate::api::{KafkaConnection, Reason, API_VERSION, GROUP, KIND};
use crate::validate::Problem;

/// Where a document came from: a file and the document's 1-based position in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// 1-based document index within the file.
    pub doc: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.path.display(), self.doc)
    }
}

/// A KafkaConnection document: the object (when its shape could be read) and its shape problems.
#[derive(Debug, Clone)]
pub struct ConnectionDoc {
    /// Where it was read.
    pub source: Source,
    /// `metadata.name` (or `<unnamed>` when absent).
    pub name: String,
    /// `metadata.namespace`, or the default namespace.
    pub namespace: String,
    /// The object, when its shape allowed reading it.
    pub object: Option<KafkaConnection>,
    /// Shape problems: unknown fields, wrong types, unknown enum values, missing required fields.
    pub shape_problems: Vec<Problem>,
}

/// Input that could not be read at all (a missing file, malformed YAML).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InputError {
    /// The file (or directory).
    pub path: String,
    /// What went wrong, with line and column for YAML syntax errors.
    pub message: String,
}

/// Everything read from the inputs.
#[derive(Debug, Default)]
pub struct Manifests {
    /// KafkaConnection documents, in input order.
    pub connections: Vec<ConnectionDoc>,
    /// Secret documents, in input order.
    pub secrets: Vec<(Source, Secret)>,
    /// Documents that are neither, each with a note saying it was ignored.
    pub notes: Vec<String>,
    /// Inputs that could not be read.
    pub errors: Vec<InputError>,
}

/// Reads files, directories (their `.yaml`, `.yml` and `.json` files, sorted, recursively) and `-` (stdin).
pub fn load(paths: &[PathBuf], default_namespace: &str) -> Manifests {
    let mut out = Manifests::default();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            let read = std::io::Read::read_to_string(
                &mut std::io::Read::take(std::io::stdin(), MAX_FILE_BYTES + 1),
                &mut text,
            );
            match read {
                Ok(n) if n as u64 > MAX_FILE_BYTES => out.errors.push(InputError {
                    path: "<stdin>".into(),
                    message: TOO_LARGE.into(),
                }),
                Ok(_) => parse_text(&mut out, Path::new("<stdin>"), &text, default_namespace),
                Err(e) => out.errors.push(InputError {
                    path: "<stdin>".into(),
                    message: e.to_string(),
                }),
            }
            continue;
        }
        match collect_files(path) {
            Ok(files) if files.is_empty() => out.errors.push(InputError {
                path: path.display().to_string(),
                message: "the directory holds no .yaml, .yml or .json files".into(),
            }),
            Ok(files) => {
                for file in files {
                    match read_bounded(&file) {
                        Ok(bytes) => match String::from_utf8(bytes) {
                            Ok(text) => parse_text(&mut out, &file, &text, default_namespace),
                            Err(_) => out.errors.push(InputError {
                                path: file.display().to_string(),
                                message: "not UTF-8 text; manifests are YAML or JSON".into(),
                            }),
                        },
                        Err(e) => out.errors.push(InputError {
                            path: file.display().to_string(),
                            message: e.to_string(),
                        }),
                    }
                }
            }
            Err(e) => out.errors.push(InputError {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
        }
    }
    out
}

/// The largest manifest file (or stdin) read: far beyond any real set of manifests.
const MAX_FILE_BYTES: u64 = 16 << 20;
/// How many files one directory argument may hold.
const MAX_FILES: usize = 10_000;
/// How deep directories are walked.
const MAX_DEPTH: usize = 16;
const TOO_LARGE: &str = "larger than 16 MiB; split the manifests into several files";

/// Reads a file of at most [`MAX_FILE_BYTES`].
fn read_bounded(file: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(file)?, MAX_FILE_BYTES + 1),
        &mut bytes,
    )?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(TOO_LARGE));
    }
    Ok(bytes)
}

/// The manifest files under `path`. Inside a directory, links to directories are not followed (two
/// links to `.` would make the walk endless), links to files are; at most [`MAX_DEPTH`] levels and
/// [`MAX_FILES`] files.
fn collect_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if !std::fs::metadata(path)?.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    walk(path, 0, &mut files)?;
    Ok(files)
}

fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(std::io::Error::other(format!(
            "directories nested deeper than {MAX_DEPTH} levels under {}",
            dir.display()
        )));
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        let own = std::fs::symlink_metadata(&entry)?;
        if own.is_dir() {
            walk(&entry, depth + 1, files)?;
        } else if own.file_type().is_symlink() && entry.is_dir() {
            continue;
        } else if matches!(
            entry.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            if files.len() == MAX_FILES {
                return Err(std::io::Error::other(format!(
                    "more than {MAX_FILES} manifest files; name fewer files or directories"
                )));
            }
            files.push(entry);
        }
    }
    Ok(())
}

/// Parses one file's text (one or more YAML documents; JSON is YAML).
pub fn parse_text(out: &mut Manifests, path: &Path, text: &str, default_namespace: &str) {
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let source = Source {
            path: path.to_path_buf(),
            doc: i + 1,
        };
        let value = match serde_yaml::Value::deserialize(document) {
            Ok(v) => v,
            Err(e) => {
                out.errors.push(InputError {
                    path: source.to_string(),
                    message: yaml_error_text(&e),
                });
                // A syntax error leaves the rest of the stream unreadable.
                return;
            }
        };
        add_value(out, source, value, default_namespace);
    }
}

fn add_value(
    out: &mut Manifests,
    source: Source,
    value: serde_yaml::Value,
    default_namespace: &str,
) {
    if value.is_null() {
        return; // an empty document, e.g. after a trailing `---`
    }
    let kind = value
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or_default()
        .to_string();
    let api_version = value
        .get("apiVersion")
        .and_then(|k| k.as_str())
        .unwrap_or_default()
        .to_string();
    match (kind.as_str(), api_version.as_str()) {
        ("List", "v1") => {
            if let Some(items) = value.get("items").and_then(|i| i.as_sequence()) {
                for item in items.clone() {
                    add_value(out, source.clone(), item, default_namespace);
                }
            }
        }
        ("Secret", "v1") => match serde_yaml::from_value::<Secret>(value) {
            Ok(secret) => out.secrets.push((source, secret)),
            // The message of a Secret parse error may quote data; say only where it is.
            Err(_) => out.errors.push(InputError {
                path: source.to_string(),
                message: "the Secret is malformed (data values must be base64, stringData values strings)".into(),
            }),
        },
        (KIND, v) if v.split('/').next() == Some(GROUP) => {
            let name = meta_str(&value, "name").unwrap_or_else(|| "<unnamed>".into());
            let namespace = meta_str(&value, "namespace").unwrap_or_else(|| default_namespace.to_string());
            let (object, shape_problems) = if v != API_VERSION {
                let problem = Problem::new(
                    "apiVersion",
                    Reason::UnsupportedValue,
                    format!("apiVersion {v:?} is not served by this kconn"),
                    format!("use apiVersion: {API_VERSION}"),
                );
                (None, vec![problem])
            } else {
                parse_connection(value, &namespace)
            };
            out.connections.push(ConnectionDoc { source, name, namespace, object, shape_problems });
        }
        ("", _) => out.notes.push(format!("{source}: ignored a document without kind")),
        (kind, api_version) => {
            let name = meta_str(&value, "name").unwrap_or_default();
            out.notes.push(format!("{source}: ignored {kind} {name} ({api_version}), not a KafkaConnection or Secret"));
        }
    }
}

fn meta_str(value: &serde_yaml::Value, key: &str) -> Option<String> {
    value
        .get("metadata")?
        .get(key)?
        .as_str()
        .map(str::to_string)
}

/// Deserializes a KafkaConnection document, turning every shape problem (unknown enum value, missing
/// or unknown field, wrong type) into a [`Problem`] on its field path. Unknown fields and a missing
/// name still yield the object, so its other rules can be checked in the same run.
pub fn parse_connection(
    value: serde_yaml::Value,
    namespace: &str,
) -> (Option<KafkaConnection>, Vec<Problem>) {
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(value, &mut track);
    let result = serde_ignored::deserialize(de, |path| {
        // serde_ignored writes `?` for each Option it stepped through.
        let field = path.to_string().replace(".?", "");
        // `status` is written by kconn; a manifest copied from a cluster may carry it.
        if !matches!(field.as_str(), "status" | "apiVersion" | "kind")
            && !field.starts_with("status.")
        {
            unknown.push(field)
        }
    });
    let mut problems: Vec<Problem> = unknown.into_iter().map(unknown_field).collect();
    match result {
        Ok(mut conn) => {
            let conn: &mut KafkaConnection = &mut conn;
            if conn.metadata.name.as_deref().unwrap_or_default().is_empty() {
                problems.push(Problem::new(
                    "metadata.name",
                    Reason::RequiredFieldMissing,
                    "metadata.name is missing",
                    "give the connection a name (a DNS subdomain, e.g. orders-prod)",
                ));
            }
            conn.metadata
                .namespace
                .get_or_insert_with(|| namespace.to_string());
            (Some(conn.clone()), problems)
        }
        Err(e) => {
            problems.push(shape_problem(&track.path().to_string(), e));
            (None, problems)
        }
    }
}

fn unknown_field(field: String) -> Problem {
    let hint = if field.ends_with("Ref.namespace") || field.ends_with("secretRef.namespace") {
        "remove it: Secret references always point into the connection's own namespace".to_string()
    } else {
        "remove the field or fix its spelling (kubectl explain kafkaconnection.spec lists the fields)".to_string()
    };
    Problem::new(
        field,
        Reason::UnknownField,
        "not a field of KafkaConnection v1alpha1",
        hint,
    )
}

/// Builds the problem for a deserialization error at `path` (serde_path_to_error's dotted path).
fn shape_problem(path: &str, e: serde_yaml::Error) -> Problem {
    let text = e.to_string();
    // serde_yaml appends " at line L column C"; the path already says where.
    let text = text.split(" at line ").next().unwrap_or(&text).to_string();
    let path = normalize_path(path);
    if let Some(rest) = text.strip_prefix("missing field `") {
        let missing = rest.split('`').next().unwrap_or_default();
        let field = if path.is_empty() {
            missing.to_string()
        } else {
            format!("{path}.{missing}")
        };
        let hint = required_hint(&field);
        return Problem::new(
            field,
            Reason::RequiredFieldMissing,
            "required, but missing",
            hint,
        );
    }
    if text.starts_with("unknown variant") {
        // "unknown variant `X`, expected one of `A`, `B`"
        let expected = text
            .split("expected ")
            .nth(1)
            .unwrap_or_default()
            .replace('`', "");
        return Problem::new(
            path.clone(),
            Reason::UnsupportedValue,
            text.replace('`', "\""),
            format!("set {path} to {expected}"),
        );
    }
    Problem::new(
        path.clone(),
        Reason::InvalidField,
        text.replace('`', "\""),
        format!("fix the value of {path} (kubectl explain kafkaconnection.{path} describes it)"),
    )
}

/// serde_path_to_error prints sequence indices as `.N`; use `[N]` as Kubernetes field paths do.
fn normalize_path(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    let mut out = String::new();
    for segment in path.split('.') {
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

fn required_hint(field: &str) -> String {
    match field {
        "spec" => "add a spec with at least bootstrapServers and topics".into(),
        "spec.bootstrapServers" => {
            "list the brokers as host:port, e.g. [kafka-0.kafka:9092]".into()
        }
        "spec.topics" | "spec.topics.expression" => {
            "add topics.expression, e.g. orders\\..* (a regex over whole topic names)".into()
        }
        "spec.authentication.sasl.secretRef" => {
            "add secretRef: {name: <Secret>, usernameKey: username, passwordKey: password}".into()
        }
        "spec.authentication.sasl.mechanism" => {
            "add mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512".into()
        }
        "spec.authentication.kerberos.principal" => {
            "add the client principal, e.g. principal: pipeline@EXAMPLE.COM".into()
        }
        "spec.authentication.kerberos.keytabSecretRef" => {
            "add keytabSecretRef: {name: <Secret>, key: krb5.keytab}".into()
        }
        "spec.authentication.kerberos.krb5ConfSecretRef" => {
            "add krb5ConfSecretRef: {name: <Secret>, key: krb5.conf}".into()
        }
        other => format!("add {other}"),
    }
}

fn yaml_error_text(e: &serde_yaml::Error) -> String {
    match e.location() {
        Some(loc) => {
            let text = e.to_string();
            let text = text.split(" at line ").next().unwrap_or(&text).to_string();
            format!(
                "line {} column {}: malformed YAML: {text}",
                loc.line(),
                loc.column()
            )
        }
        None => format!("malformed YAML: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Manifests {
        let mut out = Manifests::default();
        parse_text(&mut out, Path::new("t.yaml"), text, "default");
        out
    }

    fn problems(text: &str) -> Vec<Problem> {
        let m = load_str(text);
        assert_eq!(m.connections.len(), 1, "{m:?}");
        assert!(
            !m.connections[0].shape_problems.is_empty(),
            "expected shape problems"
        );
        m.connections[0].shape_problems.clone()
    }

    const HEAD: &str =
        "apiVersion: kconn.dev/v1alpha1\nkind: KafkaConnection\nmetadata: {name: c}\n";

    #[test]
    fn link_loops_end_and_large_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("c.yaml"), format!("{HEAD}spec: {{}}\n")).unwrap();
        // Two links back up: without care, 2^40 paths before the kernel says ELOOP.
        std::os::unix::fs::symlink(dir.path(), sub.join("up1")).unwrap();
        std::os::unix::fs::symlink(dir.path(), sub.join("up2")).unwrap();
        std::os::unix::fs::symlink(sub.join("c.yaml"), dir.path().join("link.yaml")).unwrap();
        let files = collect_files(dir.path()).unwrap();
        assert_eq!(files, [dir.path().join("link.yaml"), sub.join("c.yaml")]);

        let big = dir.path().join("big.yaml");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let m = load(&[big], "default");
        assert_eq!(m.errors.len(), 1, "{m:?}");
        assert!(m.errors[0].message.contains("larger than 16 MiB"), "{m:?}");
    }

    #[test]
    fn unknown_enum_values_name_field_and_choices() {
        let cases = [
            (
                "role: Both\n",
                "spec.role",
                "Source, Target, SourceAndTarget",
            ),
            (
                "producer: {acks: Fast}\n",
                "spec.producer.acks",
                "MajorityIsr",
            ),
            (
                "producer: {compression: brotli}\n",
                "spec.producer.compression",
                "zstd",
            ),
            (
                "authentication: {sasl: {mechanism: SCRAM-SHA-1, secretRef: {name: u}}}\n",
                "spec.authentication.sasl.mechanism",
                "SCRAM-SHA-512",
            ),
        ];
        for (extra, field, choice) in cases {
            let text = format!(
                "{HEAD}spec:\n  bootstrapServers: [a:1]\n  topics: {{expression: x}}\n  {extra}"
            );
            let p = problems(&text);
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!(
                (p[0].field.as_str(), p[0].reason),
                (field, Reason::UnsupportedValue),
                "{p:?}"
            );
            assert!(p[0].hint.contains(choice), "{p:?}");
        }
    }

    #[test]
    fn missing_required_fields_are_named() {
        let cases = [
            ("authentication: {sasl: {mechanism: PLAIN}}", "spec.authentication.sasl.secretRef"),
            ("authentication: {kerberos: {keytabSecretRef: {name: k, key: kt}, krb5ConfSecretRef: {name: k, key: c}}}", "spec.authentication.kerberos.principal"),
            ("authentication: {kerberos: {principal: p@R, krb5ConfSecretRef: {name: k, key: c}}}", "spec.authentication.kerberos.keytabSecretRef"),
        ];
        for (extra, field) in cases {
            let text = format!(
                "{HEAD}spec:\n  bootstrapServers: [a:1]\n  topics: {{expression: x}}\n  {extra}\n"
            );
            let p = problems(&text);
            assert_eq!(
                (p[0].field.as_str(), p[0].reason),
                (field, Reason::RequiredFieldMissing),
                "{p:?}"
            );
        }
        let p = problems(&format!("{HEAD}spec:\n  topics: {{expression: x}}\n"));
        assert_eq!(p[0].field, "spec.bootstrapServers");
    }

    #[test]
    fn wrong_types_and_unknown_fields() {
        let p = problems(&format!(
            "{HEAD}spec:\n  bootstrapServers: [a:1, [nested]]\n  topics: {{expression: x}}\n"
        ));
        assert_eq!(
            (p[0].field.as_str(), p[0].reason),
            ("spec.bootstrapServers[1]", Reason::InvalidField),
            "{p:?}"
        );
        let p = problems(&format!(
            "{HEAD}spec:\n  bootstrapServer: [a:1]\n  bootstrapServers: [a:1]\n  topics: {{expression: x}}\n  authentication: {{sasl: {{mechanism: PLAIN, secretRef: {{name: u, namespace: other}}}}}}\n"
        ));
        let fields: Vec<_> = p.iter().map(|p| (p.field.as_str(), p.reason)).collect();
        assert_eq!(
            fields,
            [
                ("spec.bootstrapServer", Reason::UnknownField),
                (
                    "spec.authentication.sasl.secretRef.namespace",
                    Reason::UnknownField
                )
            ]
        );
        assert!(p[1].hint.contains("own namespace"), "{:?}", p[1]);
    }

    #[test]
    fn other_kinds_are_noted_and_secrets_kept() {
        let m = load_str(&format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData: {{password: x}}\n---\n{HEAD}spec: {{bootstrapServers: [a:1], topics: {{expression: x}}}}\n---\n"
        ));
        assert_eq!(m.notes.len(), 1);
        assert!(
            m.notes[0].contains("ignored Deployment web"),
            "{:?}",
            m.notes
        );
        assert_eq!(m.secrets.len(), 1);
        assert!(m.errors.is_empty());
        assert!(m.connections[0].shape_problems.is_empty());
        let c = m.connections[0].object.as_ref().expect("valid");
        assert_eq!(c.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(m.connections[0].source.doc, 3);
    }

    #[test]
    fn malformed_yaml_is_an_input_error_with_a_line() {
        let m = load_str("apiVersion: v1\nkind: [unclosed\n");
        assert_eq!(m.errors.len(), 1);
        assert!(
            m.errors[0]
                .message
                .starts_with("line 3 column 1: malformed YAML"),
            "{:?}",
            m.errors
        );
        assert!(m.connections.is_empty());
    }

    #[test]
    fn list_items_are_read() {
        let m = load_str(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: kconn.dev/v1alpha1\n  kind: KafkaConnection\n  metadata: {name: a, namespace: n}\n  spec: {bootstrapServers: [a:1], topics: {expression: x}}\n",
        );
        assert_eq!(m.connections.len(), 1);
        assert_eq!(m.connections[0].namespace, "n");
    }

    #[test]
    fn unknown_api_version() {
        let p = problems(
            "apiVersion: kconn.dev/v1\nkind: KafkaConnection\nmetadata: {name: c}\nspec: {}\n",
        );
        assert_eq!(
            (p[0].field.as_str(), p[0].reason),
            ("apiVersion", Reason::UnsupportedValue)
        );
    }
}
