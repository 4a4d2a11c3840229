//! Every spec rule, as a pure function: each broken rule becomes a [`Problem`] naming the field path,
//! a stable reason, what is wrong and how to fix it. The SpecValid check, `kconn check --offline` and
//! the controller all use this module; the CRD's CEL rules mirror the same rules for the API server.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Serialize;

use crate::api::{KafkaConnectionSpec, Reason, MAX_BOOTSTRAP_SERVERS, MAX_BOOTSTRAP_SERVER_LEN};
use crate::kerberos::{check_principal, Realm};
use crate::topics::{TopicExpressionError, TopicMatcher};

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// Path of the offending field, e.g. `spec.bootstrapServers[2]`.
    pub field: String,
    /// Why, in the API's words.
    pub reason: Reason,
    /// What is wrong. Never contains secret values (specs hold none).
    pub message: String,
    /// What to change.
    pub hint: String,
}

impl Problem {
    /// A problem at `field`.
    pub fn new(
        field: impl Into<String>,
        reason: Reason,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            reason,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A bootstrap server split into host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// DNS name or IP address, without brackets.
    pub host: String,
    /// TCP port, 1..=65535.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a bootstrap server is not `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    /// Empty string.
    #[error("is empty")]
    Empty,
    /// Longer than a DNS name plus a port can be.
    #[error("is {0} characters long; the limit is 261")]
    TooLong(usize),
    /// No `:port`.
    #[error("{0:?} has no port")]
    MissingPort(String),
    /// `[` without `]` (or the reverse).
    #[error("{0:?} has an unbalanced '[' or ']' around an IPv6 address")]
    UnbalancedBracket(String),
    /// A bare IPv6 address: the port cannot be told apart.
    #[error("{0:?} looks like an IPv6 address without brackets")]
    UnbracketedIpv6(String),
    /// Port is not a number (or not written as one: a leading zero).
    #[error("{value:?} has port {port:?}, which is not a number written without leading zeros")]
    PortNotANumber {
        /// The whole entry.
        value: String,
        /// The port part.
        port: String,
    },
    /// Port 0 or above 65535.
    #[error("{value:?} has port {port}, outside 1-65535")]
    PortOutOfRange {
        /// The whole entry.
        value: String,
        /// The port.
        port: u64,
    },
    /// Host part is not a DNS name or IP address.
    #[error("{value:?} has host {host:?}, which is not a DNS name or an IP address")]
    InvalidHost {
        /// The whole entry.
        value: String,
        /// The host part.
        host: String,
    },
}

/// Parses `host:port`, `1.2.3.4:port` or `[v6]:port`.
pub fn parse_host_port(value: &str) -> Result<HostPort, HostPortError> {
    let owned = || value.to_string();
    if value.is_empty() {
        return Err(HostPortError::Empty);
    }
    if value.len() > MAX_BOOTSTRAP_SERVER_LEN {
        return Err(HostPortError::TooLong(value.len()));
    }
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return Err(HostPortError::UnbalancedBracket(owned()));
        };
        let host = &rest[..close];
        let after = &rest[close + 1..];
        if host.contains('[') || after.contains(']') || after.contains('[') {
            return Err(HostPortError::UnbalancedBracket(owned()));
        }
        let Some(port) = after.strip_prefix(':') else {
            return Err(HostPortError::MissingPort(owned()));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(HostPortError::InvalidHost {
                value: owned(),
                host: host.to_string(),
            });
        }
        (host, port)
    } else {
        if value.contains('[') || value.contains(']') {
            return Err(HostPortError::UnbalancedBracket(owned()));
        }
        match value.matches(':').count() {
            0 => return Err(HostPortError::MissingPort(owned())),
            1 => {}
            _ => return Err(HostPortError::UnbracketedIpv6(owned())),
        }
        let (host, port) = value.split_once(':').expect("one colon");
        if !is_dns_name(host) {
            return Err(HostPortError::InvalidHost {
                value: owned(),
                host: host.to_string(),
            });
        }
        (host, port)
    };
    if port.is_empty() {
        return Err(HostPortError::MissingPort(owned()));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) || (port.len() > 1 && port.starts_with('0')) {
        return Err(HostPortError::PortNotANumber {
            value: owned(),
            port: port.to_string(),
        });
    }
    let n: u64 = port.parse().unwrap_or(u64::MAX);
    if n == 0 || n > 65535 {
        return Err(HostPortError::PortOutOfRange {
            value: owned(),
            port: n,
        });
    }
    Ok(HostPort {
        host: host.to_string(),
        port: n as u16,
    })
}

/// A DNS name (labels of letters, digits, `-` and `_`, starting and ending with a letter or digit as the
/// CRD's pattern requires) or a dotted IPv4 address.
pub(crate) fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.starts_with(|c: char| c.is_ascii_alphanumeric())
        && host.ends_with(|c: char| c.is_ascii_alphanumeric())
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// An RFC 1123 label (agent pool names).
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// An RFC 1123 subdomain (Secret names).
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A Secret data key: letters, digits, `-`, `_` and `.`.
fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Whether the API server refuses a bad input by the CRD's schema and CEL rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiServer {
    /// The CRD refuses it: the object is never stored.
    Refuses,
    /// The CRD cannot express the rule (the reason why): the object is stored and the operator's
    /// SpecValid check reports it.
    Accepts(&'static str),
}

/// One bad input: a JSON merge patch on a valid spec, and what the validator reports for it.
#[derive(Debug, Clone)]
pub struct BadInput {
    /// What is wrong, in words.
    pub what: &'static str,
    /// Merged into a valid spec (`bootstrapServers` and `topics.expression` set).
    pub patch: serde_json::Value,
    /// The field path reported.
    pub field: &'static str,
    /// The reason reported.
    pub reason: Reason,
    /// What the API server does with it.
    pub api_server: ApiServer,
}

/// Every bad input the validator knows, one each: the unit tests run them through [`validate`], the
/// environment tests apply them to a real API server.
pub fn bad_inputs() -> Vec<BadInput> {
    use serde_json::json;
    use ApiServer::{Accepts, Refuses};
    let kerberos = |principal: &str| {
        json!({"kerberos": {"principal": principal, "keytabSecretRef": {"name": "k", "key": "kt"},
            "krb5ConfSecretRef": {"name": "k", "key": "conf"}}})
    };
    let oauth = |extra: serde_json::Value| {
        let mut o = json!({"tokenEndpoint": "https://idp.example.com/token",
            "clientSecretRef": {"name": "oauth-client"}});
        merge(&mut o, &extra);
        o
    };
    let case = |what, patch, field, reason, api_server| BadInput {
        what,
        patch,
        field,
        reason,
        api_server,
    };
    vec![
        case(
            "empty bootstrap list",
            json!({"bootstrapServers": []}),
            "spec.bootstrapServers",
            Reason::BootstrapServersEmpty,
            Refuses,
        ),
        case(
            "65 bootstrap servers",
            json!({"bootstrapServers": (0..65).map(|i| format!("b{i}:9092")).collect::<Vec<_>>()}),
            "spec.bootstrapServers",
            Reason::TooManyBootstrapServers,
            Refuses,
        ),
        case(
            "host without port",
            json!({"bootstrapServers": ["ok:1", "kafka"]}),
            "spec.bootstrapServers[1]",
            Reason::InvalidBootstrapServer,
            Refuses,
        ),
        case(
            "port 0",
            json!({"bootstrapServers": ["kafka:0"]}),
            "spec.bootstrapServers[0]",
            Reason::InvalidBootstrapServer,
            Refuses,
        ),
        case(
            "port 65536",
            json!({"bootstrapServers": ["kafka:65536"]}),
            "spec.bootstrapServers[0]",
            Reason::InvalidBootstrapServer,
            Refuses,
        ),
        case(
            "unbalanced IPv6",
            json!({"bootstrapServers": ["[::1"]}),
            "spec.bootstrapServers[0]",
            Reason::InvalidBootstrapServer,
            Refuses,
        ),
        case(
            "257-char expression",
            json!({"topics": {"expression": "a".repeat(257)}}),
            "spec.topics.expression",
            Reason::InvalidTopicExpressionLength,
            Refuses,
        ),
        case(
            "invalid regex",
            json!({"topics": {"expression": "orders.("}}),
            "spec.topics.expression",
            Reason::InvalidTopicExpression,
            Accepts("CEL cannot compile a regular expression it is given as data"),
        ),
        case(
            "bad glob",
            json!({"topics": {"expression": "orders/*", "syntax": "Glob"}}),
            "spec.topics.expression",
            Reason::InvalidTopicExpression,
            Accepts("the glob rules are kconn's own"),
        ),
        case(
            "sasl and kerberos",
            json!({"authentication": {"sasl": {"mechanism": "PLAIN", "secretRef": {"name": "u"}}, "kerberos": kerberos("p@R")["kerberos"]}}),
            "spec.authentication",
            Reason::ConflictingAuthentication,
            Refuses,
        ),
        case(
            "empty authentication",
            json!({"authentication": {}}),
            "spec.authentication",
            Reason::MissingAuthentication,
            Refuses,
        ),
        case(
            "empty kerberos principal",
            json!({"authentication": kerberos("")}),
            "spec.authentication.kerberos.principal",
            Reason::InvalidPrincipal,
            Refuses,
        ),
        case(
            "principal with shell syntax",
            json!({"authentication": kerberos("p$(id)@R")}),
            "spec.authentication.kerberos.principal",
            Reason::InvalidPrincipal,
            Refuses,
        ),
        case(
            "bad secret name",
            json!({"authentication": {"sasl": {"mechanism": "PLAIN", "secretRef": {"name": "Orders_User"}}}}),
            "spec.authentication.sasl.secretRef.name",
            Reason::InvalidSecretRef,
            Refuses,
        ),
        case(
            "bad secret key",
            json!({"authentication": {"sasl": {"mechanism": "PLAIN", "secretRef": {"name": "u", "passwordKey": "pass word"}}}}),
            "spec.authentication.sasl.secretRef.passwordKey",
            Reason::InvalidSecretRef,
            Refuses,
        ),
        case(
            "bad CA secret name",
            json!({"tls": {"caSecretRef": {"name": "-ca", "key": "ca.crt"}}}),
            "spec.tls.caSecretRef.name",
            Reason::InvalidSecretRef,
            Refuses,
        ),
        case(
            "refreshAt 25:00",
            json!({"models": {"refreshAt": "25:00"}}),
            "spec.models.refreshAt",
            Reason::InvalidRefreshAt,
            Refuses,
        ),
        case(
            "unknown time zone",
            json!({"models": {"timeZone": "Mars/Olympus"}}),
            "spec.models.timeZone",
            Reason::UnknownTimeZone,
            Accepts("the IANA time zone database is kconn's, not the API server's"),
        ),
        case(
            "zero interval",
            json!({"check": {"interval": "0s", "timeout": "0s"}}),
            "spec.check.interval",
            Reason::InvalidDuration,
            Refuses,
        ),
        case(
            "negative interval",
            json!({"check": {"interval": "-5m"}}),
            "spec.check.interval",
            Reason::InvalidDuration,
            Refuses,
        ),
        case(
            "garbage interval",
            json!({"check": {"interval": "often"}}),
            "spec.check.interval",
            Reason::InvalidDuration,
            Refuses,
        ),
        case(
            "timeout over interval",
            json!({"check": {"interval": "1m", "timeout": "2m"}}),
            "spec.check.timeout",
            Reason::TimeoutExceedsInterval,
            Refuses,
        ),
        case(
            "bad agent name",
            json!({"agent": {"name": "VPC A"}}),
            "spec.agent.name",
            Reason::InvalidName,
            Refuses,
        ),
        case(
            "too many samples",
            json!({"models": {"sampleMessages": 5000}}),
            "spec.models.sampleMessages",
            Reason::OutOfRange,
            Refuses,
        ),
        case(
            "bad binding Secret name",
            json!({"binding": {"secretName": "Orders_Kafka"}}),
            "spec.binding.secretName",
            Reason::InvalidName,
            Refuses,
        ),
        case(
            "relative binding mount path",
            json!({"binding": {"mountPath": "bindings/orders"}}),
            "spec.binding.mountPath",
            Reason::InvalidField,
            Refuses,
        ),
        case(
            "binding mount path with ..",
            json!({"binding": {"mountPath": "/bindings/../etc"}}),
            "spec.binding.mountPath",
            Reason::InvalidField,
            Refuses,
        ),
        case(
            "33 binding labels",
            json!({"binding": {"labels": (0..33).map(|i| (format!("l{i}"), "v".to_string())).collect::<BTreeMap<_, _>>()}}),
            "spec.binding.labels",
            Reason::OutOfRange,
            Refuses,
        ),
        case(
            "oauth beside sasl",
            json!({"authentication": {"oauth": oauth(json!({})), "sasl": {"mechanism": "PLAIN", "secretRef": {"name": "u"}}}}),
            "spec.authentication",
            Reason::ConflictingAuthentication,
            Refuses,
        ),
        case(
            "http token endpoint off loopback",
            json!({"authentication": {"oauth": oauth(json!({"tokenEndpoint": "http://idp.example.com/token"}))}}),
            "spec.authentication.oauth.tokenEndpoint",
            Reason::InvalidField,
            Refuses,
        ),
        case(
            "token endpoint with user info",
            json!({"authentication": {"oauth": oauth(json!({"tokenEndpoint": "https://app:secret@idp.example.com/token"}))}}),
            "spec.authentication.oauth.tokenEndpoint",
            Reason::InvalidField,
            Refuses,
        ),
        case(
            "token endpoint with a bad port",
            json!({"authentication": {"oauth": oauth(json!({"tokenEndpoint": "https://idp.example.com:99999/token"}))}}),
            "spec.authentication.oauth.tokenEndpoint",
            Reason::InvalidField,
            Accepts("the CRD checks the scheme and the characters; the validator parses the port"),
        ),
        case(
            "17 oauth extensions",
            json!({"authentication": {"oauth": oauth(json!({"extensions": (0..17).map(|i| (format!("k{}", char::from(b'a' + i)), "v".to_string())).collect::<BTreeMap<_, _>>()}))}}),
            "spec.authentication.oauth.extensions",
            Reason::OutOfRange,
            Refuses,
        ),
        case(
            "oauth extension value with a comma",
            json!({"authentication": {"oauth": oauth(json!({"extensions": {"logicalCluster": "lkc-1,auth=x"}}))}}),
            "spec.authentication.oauth.extensions",
            Reason::InvalidField,
            Refuses,
        ),
        case(
            "oauth extension named auth",
            json!({"authentication": {"oauth": oauth(json!({"extensions": {"auth": "Bearer x"}}))}}),
            "spec.authentication.oauth.extensions",
            Reason::InvalidField,
            Refuses,
        ),
        case(
            "oauth scope with a quote",
            json!({"authentication": {"oauth": oauth(json!({"scope": "kafka \"admin\""}))}}),
            "spec.authentication.oauth.scope",
            Reason::InvalidField,
            Accepts("scope characters are checked by the validator"),
        ),
        case(
            "schema registry without a URL",
            json!({"schemaRegistry": {"url": []}}),
            "spec.schemaRegistry.url",
            Reason::OutOfRange,
            Refuses,
        ),
        case(
            "schema registry URL with user info",
            json!({"schemaRegistry": {"url": ["https://key:secret@sr.example.com"]}}),
            "spec.schemaRegistry.url[0]",
            Reason::InvalidField,
            Refuses,
        ),
        case(
            "schema registry URL of another scheme",
            json!({"schemaRegistry": {"url": ["ftp://sr.example.com"]}}),
            "spec.schemaRegistry.url[0]",
            Reason::InvalidField,
            Refuses,
        ),
        case(
            "bad binding label",
            json!({"binding": {"labels": {"team/": "orders"}}}),
            "spec.binding.labels",
            Reason::InvalidName,
            Accepts("label keys and values are checked on the Secret, when it is written"),
        ),
    ]
}

/// Applies a JSON merge patch (RFC 7386) to `target`.
pub fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// A spec that passed every rule, with what validation computed on the way.
#[derive(Debug, Clone)]
pub struct ValidSpec {
    /// The bootstrap servers, parsed, in spec order.
    pub bootstrap: Vec<HostPort>,
    /// The OAuth token endpoint (with the audience), when the spec uses OAUTHBEARER.
    pub token_endpoint: Option<crate::web::Url>,
    /// The schema registry's URLs, parsed (empty without `schemaRegistry`).
    pub registry_urls: Vec<crate::web::Url>,
    /// The compiled topic expression.
    pub topics: TopicMatcher,
    /// The re-test interval.
    pub interval: Duration,
    /// The bound on one test.
    pub timeout: Duration,
    /// The daily refresh time, (hour, minute).
    pub refresh_at: (u8, u8),
    /// The time zone of `refresh_at`.
    pub time_zone: Tz,
}

/// The spec validated once, for the schedule and the connection test: [`validate`], with the problems
/// found while reading the object (unknown fields, bad enum values) in front.
pub fn outcome(
    spec: &KafkaConnectionSpec,
    shape_problems: &[Problem],
) -> Result<ValidSpec, Vec<Problem>> {
    match validate(spec) {
        Ok(v) if shape_problems.is_empty() => Ok(v),
        Ok(_) => Err(shape_problems.to_vec()),
        Err(more) => Err(shape_problems.iter().cloned().chain(more).collect()),
    }
}

/// Checks every rule; returns what it computed, or every broken rule (not just the first). One
/// function per section of the spec, each adding its problems.
pub fn validate(spec: &KafkaConnectionSpec) -> Result<ValidSpec, Vec<Problem>> {
    let mut problems = Vec::new();
    let bootstrap = bootstrap_servers(spec, &mut problems);
    let topics = topics(spec, &mut problems);
    let token_endpoint = authentication(spec, &mut problems);
    tls(spec, &mut problems);
    names(spec, &mut problems);
    binding(spec, &mut problems);
    let registry_urls = schema_registry(spec, &mut problems);
    let (interval, timeout) = check(spec, &mut problems);
    let (refresh_at, time_zone) = models(spec, &mut problems);
    match (
        problems.is_empty(),
        topics,
        interval,
        timeout,
        refresh_at,
        time_zone,
    ) {
        (true, Some(topics), Some(interval), Some(timeout), Some(refresh_at), Some(time_zone)) => {
            Ok(ValidSpec {
                bootstrap,
                token_endpoint,
                registry_urls,
                topics,
                interval,
                timeout,
                refresh_at,
                time_zone,
            })
        }
        _ => Err(problems),
    }
}

/// `spec.bootstrapServers`: 1 to 64 entries, each `host:port`.
fn bootstrap_servers(spec: &KafkaConnectionSpec, problems: &mut Vec<Problem>) -> Vec<HostPort> {
    let servers = &spec.bootstrap_servers;
    if servers.is_empty() {
        problems.push(Problem::new(
            "spec.bootstrapServers",
            Reason::BootstrapServersEmpty,
            "no bootstrap servers are listed",
            "list at least one broker as host:port, e.g. kafka-0.kafka:9092",
        ));
    } else if servers.len() > MAX_BOOTSTRAP_SERVERS {
        problems.push(Problem::new(
            "spec.bootstrapServers",
            Reason::TooManyBootstrapServers,
            format!(
                "{} bootstrap servers are listed; the limit is 64",
                servers.len()
            ),
            "list a few brokers per cluster (3 is plenty): kconn discovers the rest from metadata",
        ));
    }
    let mut bootstrap = Vec::with_capacity(servers.len());
    for (i, server) in servers.iter().enumerate() {
        match parse_host_port(&server.0) {
            Ok(hp) => bootstrap.push(hp),
            Err(e) => problems.push(Problem::new(
                format!("spec.bootstrapServers[{i}]"),
                Reason::InvalidBootstrapServer,
                format!("bootstrap server {e}"),
                host_port_hint(&e),
            )),
        }
    }
    bootstrap
}

/// `spec.topics`: the expression compiles.
fn topics(spec: &KafkaConnectionSpec, problems: &mut Vec<Problem>) -> Option<TopicMatcher> {
    match TopicMatcher::new(&spec.topics) {
        Ok(m) => Some(m),
        Err(e) => {
            let (why, hint) = match &e {
                TopicExpressionError::Empty | TopicExpressionError::TooLong(_) => (
                    Reason::InvalidTopicExpressionLength,
                    "write an expression of 1 to 256 characters; for many topics use a common prefix, e.g. orders\\..*",
                ),
                TopicExpressionError::Regex(_) => (
                    Reason::InvalidTopicExpression,
                    "fix the regular expression (whole-name match, no look-around or backreferences), or set spec.topics.syntax: Glob for patterns like orders.*",
                ),
                TopicExpressionError::EmptyGlob(_) | TopicExpressionError::GlobCharacter { .. } => (
                    Reason::InvalidTopicExpression,
                    "write comma-separated patterns of topic-name characters with * and ?, e.g. orders.*, payments.?",
                ),
            };
            problems.push(Problem::new(
                "spec.topics.expression",
                why,
                e.to_string(),
                hint,
            ));
            None
        }
    }
}

/// `spec.authentication`: exactly one of sasl, kerberos and oauth, valid principals, names, Secret keys
/// and the OAuth token endpoint (parsed, for the test).
fn authentication(
    spec: &KafkaConnectionSpec,
    problems: &mut Vec<Problem>,
) -> Option<crate::web::Url> {
    let mut endpoint = None;
    if let Some(auth) = &spec.authentication {
        let set = [
            auth.sasl.is_some(),
            auth.kerberos.is_some(),
            auth.oauth.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        match set {
            0 => problems.push(Problem::new(
                "spec.authentication",
                Reason::MissingAuthentication,
                "authentication is set but names none of sasl, kerberos and oauth",
                "add authentication.sasl, authentication.kerberos or authentication.oauth, or remove authentication for an unauthenticated listener",
            )),
            1 => {}
            _ => problems.push(Problem::new(
                "spec.authentication",
                Reason::ConflictingAuthentication,
                "more than one of authentication.sasl, authentication.kerberos and authentication.oauth is set",
                "keep the one your brokers' listener expects: sasl for PLAIN/SCRAM, kerberos for GSSAPI, oauth for OAUTHBEARER",
            )),
        }
        if let Some(oauth) = &auth.oauth {
            endpoint = self::oauth(oauth, problems);
        }
        if let Some(sasl) = &auth.sasl {
            let r = &sasl.secret_ref;
            secret_name(problems, "spec.authentication.sasl.secretRef.name", &r.name);
            secret_key(
                problems,
                "spec.authentication.sasl.secretRef.usernameKey",
                &r.username_key,
            );
            secret_key(
                problems,
                "spec.authentication.sasl.secretRef.passwordKey",
                &r.password_key,
            );
        }
        if let Some(krb) = &auth.kerberos {
            if let Err(msg) = check_principal(&krb.principal, Realm::Optional) {
                problems.push(Problem::new(
                    "spec.authentication.kerberos.principal",
                    Reason::InvalidPrincipal,
                    msg,
                    "write the client principal as primary[/instance]@REALM, e.g. pipeline@EXAMPLE.COM",
                ));
            }
            if krb.service_name.is_empty()
                || krb.service_name.contains(['/', '@'])
                || krb.service_name.contains(char::is_whitespace)
            {
                problems.push(Problem::new(
                    "spec.authentication.kerberos.serviceName",
                    Reason::InvalidName,
                    format!("service name {:?} is not the first part of a principal", krb.service_name),
                    "set the brokers' service name, the part before '/' in their principal (usually kafka)",
                ));
            }
            secret_name(
                problems,
                "spec.authentication.kerberos.keytabSecretRef.name",
                &krb.keytab_secret_ref.name,
            );
            secret_key(
                problems,
                "spec.authentication.kerberos.keytabSecretRef.key",
                &krb.keytab_secret_ref.key,
            );
            secret_name(
                problems,
                "spec.authentication.kerberos.krb5ConfSecretRef.name",
                &krb.krb5_conf_secret_ref.name,
            );
            secret_key(
                problems,
                "spec.authentication.kerberos.krb5ConfSecretRef.key",
                &krb.krb5_conf_secret_ref.key,
            );
        }
    }
    endpoint
}

/// At most this many SASL extensions.
pub const MAX_EXTENSIONS: usize = 16;

/// `spec.authentication.oauth`: the token endpoint (parsed), the client's Secret, the scope, the
/// audience and the extensions as librdkafka and the brokers take them.
fn oauth(
    oauth: &crate::api::OAuthAuthentication,
    problems: &mut Vec<Problem>,
) -> Option<crate::web::Url> {
    let base = "spec.authentication.oauth";
    let r = &oauth.client_secret_ref;
    secret_name(problems, &format!("{base}.clientSecretRef.name"), &r.name);
    secret_key(
        problems,
        &format!("{base}.clientSecretRef.clientIdKey"),
        &r.client_id_key,
    );
    secret_key(
        problems,
        &format!("{base}.clientSecretRef.clientSecretKey"),
        &r.client_secret_key,
    );
    if let Some(ca) = &oauth.ca_secret_ref {
        secret_name(problems, &format!("{base}.caSecretRef.name"), &ca.name);
        secret_key(problems, &format!("{base}.caSecretRef.key"), &ca.key);
    }
    // RFC 6749 3.3: scope tokens of printable ASCII but '"' and '\', separated by spaces.
    if let Some(scope) = &oauth.scope {
        if scope.len() > 1024
            || scope
                .bytes()
                .any(|b| !(b' '..=b'~').contains(&b) || b == b'"' || b == b'\\')
        {
            problems.push(Problem::new(
                format!("{base}.scope"),
                Reason::InvalidField,
                "the scope holds a character a scope cannot have, or is longer than 1024",
                "write scope names separated by spaces, of printable ASCII without '\"' and '\\', e.g. \"kafka api://orders/.default\"",
            ));
        }
    }
    if let Some(audience) = &oauth.audience {
        if audience.is_empty() || audience.len() > 256 || audience.chars().any(char::is_control) {
            problems.push(Problem::new(
                format!("{base}.audience"),
                Reason::InvalidField,
                "the audience is empty, longer than 256 or holds a control character",
                "write the audience the brokers expect (their sasl.oauthbearer.expected.audience), or omit it",
            ));
        }
    }
    if oauth.extensions.len() > MAX_EXTENSIONS {
        problems.push(Problem::new(
            format!("{base}.extensions"),
            Reason::OutOfRange,
            format!("{} extensions; the limit is {MAX_EXTENSIONS}", oauth.extensions.len()),
            "keep the extensions the brokers ask for (Confluent Cloud: logicalCluster and identityPoolId)",
        ));
    }
    // RFC 7628 3.1: keys of letters ("auth" is the token's own); librdkafka separates values by ','.
    if let Some((key, _)) = oauth.extensions.iter().find(|(k, v)| {
        !extension_key(k)
            || v.len() > 256
            || v.bytes().any(|b| !(b' '..=b'~').contains(&b) || b == b',')
    }) {
        problems.push(Problem::new(
            format!("{base}.extensions"),
            Reason::InvalidField,
            format!("extension {key:?} (or its value) cannot be sent"),
            "keys are 1 to 64 letters (not \"auth\"); values are up to 256 printable ASCII characters without ','",
        ));
    }
    match crate::oauth::token_endpoint(&oauth.token_endpoint, oauth.audience.as_deref()) {
        Ok(endpoint) => Some(endpoint),
        Err(why) => {
            problems.push(Problem::new(
                format!("{base}.tokenEndpoint"),
                Reason::InvalidField,
                format!("{:?} is not a usable token endpoint: {why}", crate::checks::clip(&oauth.token_endpoint, 100)),
                "write the provider's token endpoint (the token_endpoint of its /.well-known/openid-configuration), e.g. https://login.example.com/oauth2/token",
            ));
            None
        }
    }
}

/// A SASL extension key (RFC 7628): letters, not `auth`.
fn extension_key(key: &str) -> bool {
    (1..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphabetic()) && key != "auth"
}

/// `spec.tls`: Secret references and the server name.
fn tls(spec: &KafkaConnectionSpec, problems: &mut Vec<Problem>) {
    if let Some(tls) = &spec.tls {
        if let Some(ca) = &tls.ca_secret_ref {
            secret_name(problems, "spec.tls.caSecretRef.name", &ca.name);
            secret_key(problems, "spec.tls.caSecretRef.key", &ca.key);
        }
        if let Some(cert) = &tls.client_cert_secret_ref {
            secret_name(problems, "spec.tls.clientCertSecretRef.name", &cert.name);
        }
        if let Some(name) = tls.server_name.as_deref().filter(|n| !n.is_empty()) {
            if !is_dns_name(name) {
                problems.push(Problem::new(
                    "spec.tls.serverName",
                    Reason::InvalidName,
                    format!("{name:?} is not a DNS name"),
                    "set the name in the brokers' certificate (or remove serverName to verify the host itself)",
                ));
            }
        }
    }
}

/// `spec.consumer.groupId`, `spec.agent.name` and `spec.displayName`: names and their lengths.
fn names(spec: &KafkaConnectionSpec, problems: &mut Vec<Problem>) {
    if let Some(group) = &spec.consumer.group_id {
        if group.chars().count() > 249 {
            problems.push(Problem::new(
                "spec.consumer.groupId",
                Reason::InvalidName,
                format!(
                    "the group id is {} characters long; the limit is 249",
                    group.chars().count()
                ),
                "use a shorter consumer group id",
            ));
        }
    }
    if let Some(agent) = &spec.agent {
        if !is_dns_label(&agent.name) {
            problems.push(Problem::new(
                "spec.agent.name",
                Reason::InvalidName,
                format!("agent pool {:?} is not a DNS label", agent.name),
                "use lower-case letters, digits and '-', at most 63 characters, as in kconn run --agent vpc-a; or remove spec.agent for automatic allocation",
            ));
        }
    }
    if let Some(name) = &spec.display_name {
        if name.chars().count() > 253 {
            problems.push(Problem::new(
                "spec.displayName",
                Reason::InvalidName,
                format!(
                    "displayName is {} characters long; the limit is 253",
                    name.chars().count()
                ),
                "shorten spec.displayName",
            ));
        }
    }
}

/// `spec.binding`: the Secret's name, an absolute mount path, and labels and annotations the API
/// server will take on a Secret.
fn binding(spec: &KafkaConnectionSpec, problems: &mut Vec<Problem>) {
    let Some(b) = &spec.binding else { return };
    if let Some(name) = &b.secret_name {
        if !is_dns_subdomain(name) {
            problems.push(Problem::new(
                "spec.binding.secretName",
                Reason::InvalidName,
                format!("{name:?} is not a valid Secret name"),
                "use lower-case letters, digits, '-' and '.', at most 253 characters; or omit it for <name>-binding",
            ));
        }
    }
    if let Some(path) = &b.mount_path {
        let plain = path.len() <= 1024
            && path.starts_with('/')
            && path[1..].split('/').all(|part| {
                !part.is_empty()
                    && !part.starts_with('.')
                    && part
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
            });
        if !plain {
            problems.push(Problem::new(
                "spec.binding.mountPath",
                Reason::InvalidField,
                format!("{path:?} is not an absolute path of plain names"),
                "write where applications mount the Secret, e.g. /bindings/orders-kafka (no '..', no spaces)",
            ));
        }
    }
    for (field, map) in [
        ("spec.binding.labels", &b.labels),
        ("spec.binding.annotations", &b.annotations),
    ] {
        if map.len() > MAX_BINDING_METADATA {
            problems.push(Problem::new(
                field,
                Reason::OutOfRange,
                format!("{} entries; the limit is {MAX_BINDING_METADATA}", map.len()),
                "keep the labels and annotations applications select the Secret by",
            ));
        }
        let labels = field.ends_with("labels");
        if let Some((key, _)) = map.iter().find(|(k, v)| {
            !is_qualified_name(k) || (labels && !(v.is_empty() || is_label_value(v)))
        }) {
            problems.push(Problem::new(
                field,
                Reason::InvalidName,
                format!("{key:?} (or its value) is not valid on a Secret"),
                "keys are [prefix/]name, a DNS prefix and a name of letters, digits, '-', '_' and '.' up to 63 characters; label values likewise",
            ));
        }
    }
}

/// At most this many schema registry URLs.
pub const MAX_REGISTRY_URLS: usize = 8;

/// `spec.schemaRegistry`: 1 to 8 http(s) URLs, parsed; the Secret references.
fn schema_registry(
    spec: &KafkaConnectionSpec,
    problems: &mut Vec<Problem>,
) -> Vec<crate::web::Url> {
    let Some(registry) = &spec.schema_registry else {
        return Vec::new();
    };
    let base = "spec.schemaRegistry";
    if registry.url.is_empty() || registry.url.len() > MAX_REGISTRY_URLS {
        problems.push(Problem::new(
            format!("{base}.url"),
            Reason::OutOfRange,
            format!("{} URLs; give 1 to {MAX_REGISTRY_URLS}", registry.url.len()),
            "list the registry's base URL (its clients' schema.registry.url), or a few of its instances",
        ));
    }
    let mut urls = Vec::new();
    for (i, url) in registry.url.iter().enumerate().take(MAX_REGISTRY_URLS) {
        match crate::web::Url::parse(url) {
            Ok(u) => urls.push(u),
            Err(why) => problems.push(Problem::new(
                format!("{base}.url[{i}]"),
                Reason::InvalidField,
                format!("{:?} is not a usable registry URL: {why}", crate::checks::clip(url, 100)),
                "write the registry's base URL, e.g. https://sr.example.com or http://apicurio:8080/apis/ccompat/v7 (credentials go in basicAuthSecretRef)",
            )),
        }
    }
    if let Some(r) = &registry.basic_auth_secret_ref {
        secret_name(
            problems,
            &format!("{base}.basicAuthSecretRef.name"),
            &r.name,
        );
        secret_key(
            problems,
            &format!("{base}.basicAuthSecretRef.usernameKey"),
            &r.username_key,
        );
        secret_key(
            problems,
            &format!("{base}.basicAuthSecretRef.passwordKey"),
            &r.password_key,
        );
    }
    if let Some(ca) = &registry.ca_secret_ref {
        secret_name(problems, &format!("{base}.caSecretRef.name"), &ca.name);
        secret_key(problems, &format!("{base}.caSecretRef.key"), &ca.key);
    }
    if let Some(cert) = &registry.client_cert_secret_ref {
        secret_name(
            problems,
            &format!("{base}.clientCertSecretRef.name"),
            &cert.name,
        );
    }
    urls
}

/// Labels and annotations a binding Secret takes from the spec, at most.
const MAX_BINDING_METADATA: usize = 32;

/// A label or annotation key: an optional DNS-subdomain prefix and `/`, then a name.
fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && is_label_value(name)
}

/// A label value (and the name part of a key): 1 to 63 of letters, digits, `-`, `_`, `.`,
/// beginning and ending with a letter or digit.
fn is_label_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 63
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric())
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
}

/// `spec.check`: the interval and the timeout, the timeout no longer than the interval.
fn check(
    spec: &KafkaConnectionSpec,
    problems: &mut Vec<Problem>,
) -> (Option<Duration>, Option<Duration>) {
    let interval = duration(problems, "spec.check.interval", &spec.check.interval, "5m");
    let timeout = duration(problems, "spec.check.timeout", &spec.check.timeout, "30s");
    if let (Some(i), Some(t)) = (interval, timeout) {
        if t > i {
            problems.push(Problem::new(
                "spec.check.timeout",
                Reason::TimeoutExceedsInterval,
                format!(
                    "check.timeout {} is longer than check.interval {}",
                    spec.check.timeout, spec.check.interval
                ),
                "lower spec.check.timeout or raise spec.check.interval so that timeout <= interval",
            ));
        }
    }
    (interval, timeout)
}

/// `spec.models`: the refresh time and zone, the sample size and the large-catalog threshold.
fn models(
    spec: &KafkaConnectionSpec,
    problems: &mut Vec<Problem>,
) -> (Option<(u8, u8)>, Option<Tz>) {
    let m = &spec.models;
    let refresh_at =
        match parse_hh_mm(&m.refresh_at) {
            Some(t) => Some(t),
            None => {
                problems.push(Problem::new(
                "spec.models.refreshAt",
                Reason::InvalidRefreshAt,
                format!("{:?} is not a time of day as HH:MM (00:00 to 23:59)", m.refresh_at),
                "write the daily refresh time on a 24-hour clock, e.g. \"02:00\" (quoted in YAML)",
            ));
                None
            }
        };
    let time_zone = match Tz::from_str(&m.time_zone) {
        Ok(tz) => Some(tz),
        Err(_) => {
            problems.push(Problem::new(
                "spec.models.timeZone",
                Reason::UnknownTimeZone,
                format!("{:?} is not an IANA time zone", m.time_zone),
                "use a name from the IANA database such as UTC, Europe/Berlin or America/New_York",
            ));
            None
        }
    };
    if m.sample_messages > 1000 {
        problems.push(Problem::new(
            "spec.models.sampleMessages",
            Reason::OutOfRange,
            format!("sampleMessages is {}; the limit is 1000", m.sample_messages),
            "sample 1 to 1000 messages per topic (10 is usually enough)",
        ));
    }
    if m.large_catalog_threshold == 0 {
        problems.push(Problem::new(
            "spec.models.largeCatalogThreshold",
            Reason::OutOfRange,
            "largeCatalogThreshold is 0",
            "set at least 1 (the default is 10000)",
        ));
    }
    (refresh_at, time_zone)
}

fn host_port_hint(e: &HostPortError) -> String {
    match e {
        HostPortError::MissingPort(v) => format!("add the listener's port, e.g. {v}:9092"),
        HostPortError::UnbalancedBracket(_) | HostPortError::UnbracketedIpv6(_) => {
            "write IPv6 addresses in brackets followed by the port, e.g. [fd00::1]:9092".into()
        }
        HostPortError::PortOutOfRange { .. } | HostPortError::PortNotANumber { .. } => {
            "use the listener's port, a number from 1 to 65535 (Kafka's default is 9092)".into()
        }
        _ => "write host:port, e.g. kafka-0.kafka.svc:9092 or 10.0.0.5:9092".into(),
    }
}

fn secret_name(problems: &mut Vec<Problem>, field: &str, name: &str) {
    if !is_dns_subdomain(name) {
        problems.push(Problem::new(
            field,
            Reason::InvalidSecretRef,
            format!("{name:?} is not a valid Secret name"),
            "name a Secret in the connection's namespace (lower-case letters, digits, '-' and '.')",
        ));
    }
}

fn secret_key(problems: &mut Vec<Problem>, field: &str, key: &str) {
    if !is_secret_key(key) {
        problems.push(Problem::new(
            field,
            Reason::InvalidSecretRef,
            format!("{key:?} is not a valid Secret key"),
            "name a key of the Secret's data (letters, digits, '-', '_' and '.')",
        ));
    }
}

fn duration(
    problems: &mut Vec<Problem>,
    field: &str,
    value: &str,
    example: &str,
) -> Option<Duration> {
    let hint = format!("write a positive Go duration such as {example}, 90s or 1h30m");
    match kube::core::Duration::from_str(value) {
        Ok(d) if d.is_negative() => {
            problems.push(Problem::new(
                field,
                Reason::InvalidDuration,
                format!("{value:?} is negative"),
                hint,
            ));
            None
        }
        Ok(d) => {
            let d: Duration = d.into();
            if d.is_zero() {
                problems.push(Problem::new(
                    field,
                    Reason::InvalidDuration,
                    format!("{value:?} is zero"),
                    hint,
                ));
                None
            } else {
                Some(d)
            }
        }
        Err(_) => {
            problems.push(Problem::new(
                field,
                Reason::InvalidDuration,
                format!("{value:?} is not a duration"),
                hint,
            ));
            None
        }
    }
}

/// Parses `HH:MM` on a 24-hour clock.
pub fn parse_hh_mm(s: &str) -> Option<(u8, u8)> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::KafkaConnection;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "kconn.dev/v1alpha1", "kind": "KafkaConnection",
            "metadata": {"name": "orders", "namespace": "team-a"},
            "spec": {"bootstrapServers": ["b1.kafka:9092"], "topics": {"expression": "orders\\..*"}}
        })
    }

    fn spec_with(patch: impl FnOnce(&mut serde_json::Value)) -> KafkaConnectionSpec {
        let mut v = base();
        patch(&mut v["spec"]);
        serde_json::from_value::<KafkaConnection>(v)
            .expect("fixture deserializes")
            .spec
    }

    /// Each case: a change to a valid spec, the field path and the reason the validator must report.
    #[test]
    fn every_bad_input_names_its_field_and_reason() {
        let cases = bad_inputs();
        assert_eq!(cases.len(), 40);
        for case in cases {
            let spec = spec_with(|s| merge(s, &case.patch));
            let problems = validate(&spec).expect_err(case.what);
            assert!(
                problems
                    .iter()
                    .any(|p| p.field == case.field && p.reason == case.reason),
                "{}: want {} {}, got {problems:#?}",
                case.what,
                case.field,
                case.reason
            );
            for p in &problems {
                assert!(
                    !p.hint.is_empty() && !p.message.is_empty(),
                    "{}: {p:?}",
                    case.what
                );
            }
        }
    }

    #[test]
    fn a_valid_spec_yields_what_validation_computed() {
        let spec = spec_with(|s| {
            s["bootstrapServers"] =
                serde_json::json!(["b1.kafka:9092", "[fd00::1]:9093", "10.0.0.5:19092"]);
            s["models"] = serde_json::json!({"refreshAt": "23:59", "timeZone": "Europe/Berlin"});
            s["check"] = serde_json::json!({"interval": "1h", "timeout": "1h"});
        });
        let v = validate(&spec).expect("valid");
        assert_eq!(
            v.bootstrap[1],
            HostPort {
                host: "fd00::1".into(),
                port: 9093
            }
        );
        assert_eq!(v.bootstrap[1].to_string(), "[fd00::1]:9093");
        assert_eq!(v.refresh_at, (23, 59));
        assert_eq!(v.time_zone, chrono_tz::Europe::Berlin);
        assert_eq!(v.interval, Duration::from_secs(3600));
        assert!(v.topics.matches("orders.eu"));
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let spec = spec_with(|s| {
            s["bootstrapServers"] = serde_json::json!(["a", "b:0"]);
            s["models"] = serde_json::json!({"refreshAt": "7:00"});
        });
        let fields: Vec<_> = validate(&spec)
            .unwrap_err()
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.bootstrapServers[0]",
                "spec.bootstrapServers[1]",
                "spec.models.refreshAt"
            ]
        );
    }

    #[test]
    fn host_port_table() {
        let ok = [
            ("kafka:9092", "kafka", 9092),
            ("10.1.2.3:1", "10.1.2.3", 1),
            ("[::1]:65535", "::1", 65535),
            ("b_1.svc:9092", "b_1.svc", 9092),
        ];
        for (input, host, port) in ok {
            assert_eq!(
                parse_host_port(input),
                Ok(HostPort {
                    host: host.into(),
                    port
                }),
                "{input}"
            );
        }
        type Expect = fn(&HostPortError) -> bool;
        let bad: [(&str, Expect); 13] = [
            ("", |e| matches!(e, HostPortError::Empty)),
            ("kafka", |e| matches!(e, HostPortError::MissingPort(_))),
            ("kafka:", |e| matches!(e, HostPortError::MissingPort(_))),
            ("kafka:0", |e| {
                matches!(e, HostPortError::PortOutOfRange { port: 0, .. })
            }),
            ("kafka:65536", |e| {
                matches!(e, HostPortError::PortOutOfRange { port: 65536, .. })
            }),
            ("kafka:99999999999999999999", |e| {
                matches!(e, HostPortError::PortOutOfRange { .. })
            }),
            ("kafka:http", |e| {
                matches!(e, HostPortError::PortNotANumber { .. })
            }),
            ("[::1", |e| matches!(e, HostPortError::UnbalancedBracket(_))),
            ("::1:9092", |e| {
                matches!(e, HostPortError::UnbracketedIpv6(_))
            }),
            ("bad host:9092", |e| {
                matches!(e, HostPortError::InvalidHost { .. })
            }),
            // Refused by the CRD's pattern too (found by tests/fuzz.rs).
            ("kafka:09092", |e| {
                matches!(e, HostPortError::PortNotANumber { .. })
            }),
            ("kafka_:9092", |e| {
                matches!(e, HostPortError::InvalidHost { .. })
            }),
            ("_kafka._tcp.example:9092", |e| {
                matches!(e, HostPortError::InvalidHost { .. })
            }),
        ];
        for (input, want) in bad {
            let err = parse_host_port(input).expect_err(input);
            assert!(want(&err), "{input}: {err:?}");
        }
        assert!(matches!(
            parse_host_port(&format!("{}:1", "a".repeat(300))),
            Err(HostPortError::TooLong(302))
        ));
        assert!(matches!(
            parse_host_port("[nothex]:1"),
            Err(HostPortError::InvalidHost { .. })
        ));
    }

    #[test]
    fn hh_mm() {
        assert_eq!(parse_hh_mm("00:00"), Some((0, 0)));
        assert_eq!(parse_hh_mm("23:59"), Some((23, 59)));
        for bad in ["24:00", "25:00", "7:00", "07:60", "0700", "07:0a", ""] {
            assert_eq!(parse_hh_mm(bad), None, "{bad}");
        }
    }

    #[test]
    fn principals() {
        for ok in [
            "pipeline@EXAMPLE.COM",
            "pipeline/host.example.com@EXAMPLE.COM",
            "pipeline",
        ] {
            assert!(check_principal(ok, Realm::Optional).is_ok(), "{ok}");
        }
        for bad in ["", "a b@R", "@R", "p@", "a//b@R", "a@b@R", "p$(id)@R"] {
            assert!(check_principal(bad, Realm::Optional).is_err(), "{bad}");
        }
    }
}
