//! Property-based fuzzing of every parser of untrusted input: keytabs, krb5.conf, bootstrap servers,
//! topic expressions and the model inferrer. Each target runs for a time budget
//! (`KCONN_FUZZ_SECONDS`, default 2 s per target in the normal test run; `scripts/fuzz.sh` gives each
//! a minute or more), prints how many inputs it tried, and first replays its corpus in
//! `tests/corpus/<target>/`. A failing input is shrunk and written into the corpus, so it is replayed
//! on every later run.
//!
//! The properties go beyond "does not panic": a generated valid keytab or krb5.conf reads back to what
//! was written, the CRD's host:port pattern and the validator agree on every string, a glob matches
//! the names it describes and a regex only whole names, and every sample conforms to the schema
//! inferred from it.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kconn::api::TopicSelector;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::Value;

fn budget() -> Duration {
    let secs = std::env::var("KCONN_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target)
}

/// Replays the corpus of `target`, then runs `property` on generated inputs until the budget is spent.
/// `encode`/`decode` turn an input into a corpus file and back.
fn fuzz<S>(
    target: &str,
    strategy: S,
    encode: impl Fn(&S::Value) -> Vec<u8>,
    decode: impl Fn(&[u8]) -> Option<S::Value>,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let dir = corpus(target);
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if let Some(input) = decode(&bytes) {
            if let Err(e) = property(input) {
                panic!("{target}: corpus file {} fails: {e}", path.display());
            }
            replayed += 1;
        }
    }
    let start = Instant::now();
    let mut tried: u64 = 0;
    let config = Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    };
    while start.elapsed() < budget() {
        // A runner counts its successes for good: a fresh one (freshly seeded) per batch.
        match TestRunner::new(config.clone()).run(&strategy, &property) {
            Ok(()) => tried += 256,
            Err(TestError::Fail(reason, input)) => {
                std::fs::create_dir_all(&dir).unwrap();
                let bytes = encode(&input);
                let name = format!("found-{:016x}", fnv(&bytes));
                std::fs::write(dir.join(&name), &bytes).unwrap();
                panic!("{target}: {reason}\nshrunk input (kept as tests/corpus/{target}/{name}): {input:?}");
            }
            Err(TestError::Abort(reason)) => panic!("{target}: aborted: {reason}"),
        }
    }
    eprintln!(
        "fuzz {target}: {replayed} corpus inputs, {tried} generated inputs in {:.1?}",
        start.elapsed()
    );
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

fn text_encode(s: &String) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn text_decode(b: &[u8]) -> Option<String> {
    String::from_utf8(b.to_vec()).ok()
}

// ------------------------------------------------------------------------------------------ keytab

fn name_part() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{1,12}"
}

/// `(principal name, realm, enctype, kvno)` entries.
fn keytab_entries() -> impl Strategy<Value = Vec<(String, String, u16, u32)>> {
    prop::collection::vec(
        (
            prop::collection::vec(name_part(), 1..4).prop_map(|p| p.join("/")),
            "[A-Z][A-Z0-9.]{0,15}",
            any::<u16>(),
            1u32..100_000,
        ),
        1..6,
    )
}

#[derive(Debug, Clone)]
enum KeytabInput {
    /// A valid keytab and the entries it holds.
    Valid(Vec<(String, String, u16, u32)>),
    /// Bytes: random, or a valid keytab damaged.
    Bytes(Vec<u8>),
}

fn keytab_bytes(entries: &[(String, String, u16, u32)]) -> Vec<u8> {
    let refs: Vec<(&str, &str, u16, u32)> = entries
        .iter()
        .map(|(n, r, e, k)| (n.as_str(), r.as_str(), *e, *k))
        .collect();
    support::keytab(&refs)
}

fn damaged_keytab() -> impl Strategy<Value = Vec<u8>> {
    (
        keytab_entries(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(entries, flips, cut, truncate)| {
            let mut b = keytab_bytes(&entries);
            for (i, v) in flips {
                let at = i.index(b.len());
                b[at] = v;
            }
            if truncate {
                b.truncate(cut.index(b.len() + 1));
            }
            b
        })
}

#[test]
fn fuzz_keytab() {
    let strategy = prop_oneof![
        keytab_entries().prop_map(KeytabInput::Valid),
        damaged_keytab().prop_map(KeytabInput::Bytes),
        prop::collection::vec(any::<u8>(), 0..512).prop_map(KeytabInput::Bytes),
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|tail| [vec![5, 2], tail].concat())
            .prop_map(KeytabInput::Bytes),
    ];
    fuzz(
        "keytab",
        strategy,
        |i| match i {
            KeytabInput::Valid(e) => keytab_bytes(e),
            KeytabInput::Bytes(b) => b.clone(),
        },
        |b| Some(KeytabInput::Bytes(b.to_vec())),
        |input| {
            match input {
                KeytabInput::Valid(entries) => {
                    let got = kconn::testing::kerberos::keytab::parse(&keytab_bytes(&entries))
                        .map_err(|e| TestCaseError::fail(format!("valid keytab refused: {e}")))?;
                    let want: Vec<(String, u16, u32)> = entries
                        .iter()
                        .map(|(n, r, e, k)| (format!("{n}@{r}"), *e, *k))
                        .collect();
                    let got: Vec<(String, u16, u32)> = got
                        .into_iter()
                        .map(|e| (e.principal, e.enctype, e.kvno))
                        .collect();
                    prop_assert_eq!(got, want);
                }
                KeytabInput::Bytes(bytes) => {
                    // Never a panic; an error names a position inside the data.
                    if let Err(kconn::testing::kerberos::keytab::KeytabError::Truncated(at)) =
                        kconn::testing::kerberos::keytab::parse(&bytes)
                    {
                        prop_assert!(at <= bytes.len(), "position {} past {}", at, bytes.len());
                    }
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------- krb5.conf

/// A krb5.conf written from (default realm, realms with their KDCs, dns_lookup_kdc), with comments,
/// blank lines and both brace styles.
fn krb5_conf_text(
    default: &str,
    realms: &[(String, Vec<String>)],
    dns: bool,
    inline: bool,
) -> String {
    let mut t = String::from("# written by the fuzz test\n[libdefaults]\n");
    t.push_str(&format!("  default_realm = {default}\n"));
    t.push_str(&format!("  dns_lookup_kdc = {dns}\n\n[realms]\n"));
    for (realm, kdcs) in realms {
        if inline && kdcs.len() == 1 {
            t.push_str(&format!("  {realm} = {{ kdc = {} }}\n", kdcs[0]));
        } else {
            t.push_str(&format!("  {realm} = {{\n"));
            for k in kdcs {
                t.push_str(&format!("    kdc = {k}\n"));
            }
            t.push_str("    admin_server = admin.example\n  }\n");
        }
    }
    t.push_str("\n[domain_realm]\n  .example = EXAMPLE\n");
    t
}

#[test]
fn fuzz_krb5_conf() {
    let kdc = ("[a-z][a-z0-9.-]{0,20}", prop::option::of(1u16..)).prop_map(|(h, p)| match p {
        Some(p) => format!("{h}:{p}"),
        None => h,
    });
    let realms = prop::collection::btree_map(
        "[A-Z][A-Z0-9.]{0,12}",
        prop::collection::vec(kdc, 1..4),
        1..4,
    );
    let valid = (realms, any::<bool>(), any::<bool>()).prop_map(|(realms, dns, inline)| {
        let realms: Vec<(String, Vec<String>)> = realms.into_iter().collect();
        let default = realms[0].0.clone();
        (
            krb5_conf_text(&default, &realms, dns, inline),
            Some((default, realms, dns)),
        )
    });
    let noise = prop_oneof![any::<String>(), "[\\[\\]{}=a-zA-Z0-9 \n#;._-]{0,300}",]
        .prop_map(|t| (t, None));
    fuzz(
        "krb5conf",
        prop_oneof![valid, noise],
        |(t, _)| t.as_bytes().to_vec(),
        |b| String::from_utf8(b.to_vec()).ok().map(|t| (t, None)),
        |(text, expected)| {
            let parsed = kconn::testing::kerberos::conf::parse(&text);
            match expected {
                Some((default, realms, dns)) => {
                    let conf = parsed.map_err(|e| {
                        TestCaseError::fail(format!("valid krb5.conf refused: {e}\n{text}"))
                    })?;
                    prop_assert_eq!(conf.default_realm.as_deref(), Some(default.as_str()));
                    prop_assert_eq!(conf.dns_lookup_kdc, dns);
                    for (realm, kdcs) in &realms {
                        prop_assert_eq!(conf.kdcs(realm), kdcs.as_slice(), "{}", text);
                    }
                }
                None => {
                    if let Err(e) = parsed {
                        prop_assert!(
                            e.line >= 1 && e.line <= text.lines().count().max(1),
                            "line {} of {}",
                            e.line,
                            text.lines().count()
                        );
                    }
                }
            }
            Ok(())
        },
    );
}

// ------------------------------------------------------------------------------------ bootstrap

#[test]
fn fuzz_bootstrap_servers() {
    let pattern = regex::Regex::new(kconn::api::HOST_PORT_PATTERN).unwrap();
    let host = prop_oneof![
        "[a-zA-Z0-9][a-zA-Z0-9._-]{0,30}",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        "\\[[0-9a-fA-F:.]{0,20}\\]",
        "[a-z0-9\\[\\]:._ -]{0,12}",
    ];
    let port = prop_oneof!["[0-9]{1,6}", "-?[0-9a-z]{0,3}", Just(String::new())];
    let structured = (host, prop::sample::select(vec![":", "::", "", " :"]), port)
        .prop_map(|(h, sep, p)| format!("{h}{sep}{p}"));
    fuzz(
        "bootstrap",
        prop_oneof![structured, any::<String>(), "[a-z0-9.:\\[\\]-]{250,270}"],
        text_encode,
        text_decode,
        |s| {
            let parsed = kconn::testing::validate::parse_host_port(&s);
            // The CRD's pattern (enforced by the API server) never refuses what kconn accepts, and
            // accepts nothing kconn refuses for its shape or port. It is looser about the host itself
            // (an IPv6 literal's characters but not the address, no per-label rules): such a value
            // passes the API server and fails SpecValid as InvalidHost, with its field.
            let matched = pattern.is_match(&s);
            let host_only = matches!(
                parsed,
                Err(kconn::testing::validate::HostPortError::InvalidHost { .. })
            );
            prop_assert!(
                matched == parsed.is_ok() || (matched && host_only),
                "{:?}: pattern {} but validator {:?}",
                s,
                matched,
                parsed
            );
            if let Ok(hp) = parsed {
                prop_assert!(hp.port >= 1);
                let suffix = format!(":{}", hp.port);
                prop_assert!(s.ends_with(&suffix), "{:?} does not end with {}", s, suffix);
            }
            Ok(())
        },
    );
}

// ------------------------------------------------------------------------------------ topics

#[derive(Debug, Clone)]
enum TopicInput {
    /// Any expression in either syntax: compiles or is refused, never panics; bounded time.
    Any(String, bool),
    /// A glob built from pieces, and a topic name it must match.
    Glob(Vec<(String, u8)>),
    /// A literal topic name as a regex (escaped).
    Literal(String),
}

fn selector(expression: &str, glob: bool) -> TopicSelector {
    serde_json::from_value(serde_json::json!({
        "expression": expression,
        "syntax": if glob { "Glob" } else { "Regex" },
    }))
    .unwrap()
}

#[test]
fn fuzz_topic_expressions() {
    let piece = ("[a-zA-Z0-9._-]{0,6}", 0u8..3);
    let strategy = prop_oneof![
        (
            prop_oneof![any::<String>(), "[a-z.*+?()\\[\\]{}|\\\\^$,0-9 -]{0,300}"],
            any::<bool>()
        )
            .prop_map(|(e, g)| TopicInput::Any(e, g)),
        prop::collection::vec(piece, 1..6).prop_map(TopicInput::Glob),
        "[a-zA-Z0-9._-]{1,100}".prop_map(TopicInput::Literal),
    ];
    fuzz(
        "topics",
        strategy,
        |i| match i {
            TopicInput::Any(e, _) | TopicInput::Literal(e) => e.as_bytes().to_vec(),
            TopicInput::Glob(p) => format!("{p:?}").into_bytes(),
        },
        |b| {
            String::from_utf8(b.to_vec())
                .ok()
                .map(|e| TopicInput::Any(e, false))
        },
        |input| {
            match input {
                TopicInput::Any(expression, glob) => {
                    let start = Instant::now();
                    if let Ok(m) =
                        kconn::testing::topics::TopicMatcher::new(&selector(&expression, glob))
                    {
                        for t in ["orders.eu", "", "__consumer_offsets", &"a".repeat(249)] {
                            m.matches(t);
                        }
                    }
                    prop_assert!(
                        start.elapsed() < Duration::from_secs(2),
                        "slow: {:?}",
                        start.elapsed()
                    );
                }
                TopicInput::Glob(pieces) => {
                    // Literal pieces joined by wildcards; `*` replaced by "xyz", `?` by "q".
                    let mut glob = String::new();
                    let mut name = String::new();
                    for (lit, wild) in &pieces {
                        glob.push_str(lit);
                        name.push_str(lit);
                        match wild {
                            1 => {
                                glob.push('*');
                                name.push_str("xyz");
                            }
                            2 => {
                                glob.push('?');
                                name.push('q');
                            }
                            _ => {}
                        }
                    }
                    if glob.trim().is_empty() || glob.len() > 256 {
                        return Ok(());
                    }
                    let m = kconn::testing::topics::TopicMatcher::new(&selector(&glob, true))
                        .map_err(|e| TestCaseError::fail(format!("{glob:?} refused: {e}")))?;
                    prop_assert!(
                        m.matches(&name) || name.starts_with("__"),
                        "{:?} does not match {:?}",
                        glob,
                        name
                    );
                }
                TopicInput::Literal(name) => {
                    let m = kconn::testing::topics::TopicMatcher::new(&selector(
                        &regex::escape(&name),
                        false,
                    ))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let internal = name.starts_with("__");
                    prop_assert_eq!(m.matches(&name), !internal);
                    prop_assert!(!m.matches(&format!("{name}x")), "not a whole-name match");
                    prop_assert!(!m.matches(&format!("x{name}")), "not a whole-name match");
                }
            }
            Ok(())
        },
    );
}

// ------------------------------------------------------------------------------------ inferrer

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        "[a-z ]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-e]{1,2}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Whether `v` conforms to `schema`, for the keywords the inferrer writes.
fn conforms(schema: &Value, v: &Value) -> bool {
    if let Some(any_of) = schema.get("anyOf") {
        return any_of.as_array().unwrap().iter().any(|s| conforms(s, v));
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap()).collect(),
            _ => return false,
        };
        let kind_ok = types.iter().any(|t| match *t {
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "string" => v.is_string(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            _ => false,
        });
        if !kind_ok {
            return false;
        }
    }
    if let (Some(props), Some(obj)) = (schema.get("properties"), v.as_object()) {
        for (k, s) in props.as_object().unwrap() {
            if let Some(x) = obj.get(k) {
                if !conforms(s, x) {
                    return false;
                }
            }
        }
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !obj.contains_key(r.as_str().unwrap()) {
                return false;
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        return arr.iter().all(|x| conforms(items, x));
    }
    true
}

#[test]
fn fuzz_model_inferrer() {
    let samples = prop::collection::vec(
        prop::collection::btree_map("[a-e]{1,2}", json_value(), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        0..8,
    );
    fuzz(
        "infer",
        samples,
        |s| serde_json::to_vec(s).unwrap(),
        |b| serde_json::from_slice::<Vec<Value>>(b).ok(),
        |samples| {
            let schema = kconn::testing::models::infer::infer(samples.iter());
            for s in &samples {
                prop_assert!(conforms(&schema, s), "{} does not conform to {}", s, schema);
            }
            Ok(())
        },
    );
}
