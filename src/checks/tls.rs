//! TLS on its own: a real handshake with every reachable bootstrap server (in parallel), chain and
//! hostname verification against the CA from the spec (or the system roots), the server certificate's
//! expiry; and the PEM checks CredentialsResolved uses (certificate expiry, key matches certificate).

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{Ssl, SslContext, SslMethod, SslStream, SslVerifyMode};
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::{X509VerifyResult, X509};

use tokio::time::timeout_at;

use super::engine::{skipped, Test};
use super::row;
use crate::api::{Check, CheckReport, CheckResult, Reason};
use crate::kafka::{Kafka, TlsMaterial};

/// Certificates expiring sooner than this are a Warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// What one handshake established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Negotiated protocol, e.g. `TLSv1.3`.
    pub version: String,
    /// Seconds from `now` until the server certificate's notAfter (negative: expired).
    pub expires_in_secs: i64,
    /// The server certificate's subject CN, when it has one.
    pub subject: String,
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The TCP connection did not open.
    #[error("{0}")]
    Connect(String),
    /// The chain did not verify against the trusted CAs.
    #[error("certificate verify failed: {0}")]
    Untrusted(String),
    /// The certificate does not name the host (or `serverName`): the names looked for, quoted.
    #[error("the certificate does not name {0}")]
    HostnameMismatch(String),
    /// The certificate has expired (or is not yet valid).
    #[error("the certificate is outside its validity period: {0}")]
    Expired(String),
    /// The peer does not speak TLS or aborted the handshake.
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    /// Our own TLS material could not be loaded.
    #[error("the TLS material cannot be used: {0}")]
    Material(String),
}

/// Performs one handshake with `addr`, verifying the chain and `name`, bounded by `timeout`.
pub fn handshake(
    addr: SocketAddr,
    name: &str,
    material: &TlsMaterial,
    timeout: Duration,
    now: SystemTime,
) -> Result<Handshake, TlsError> {
    let tls = connect_broker(addr, name, material, timeout)?;
    let ssl = tls.ssl();
    let cert = ssl
        .peer_certificate()
        .ok_or_else(|| TlsError::Handshake("the server sent no certificate".into()))?;
    Ok(Handshake {
        version: ssl.version_str().to_string(),
        expires_in_secs: seconds_until(cert.not_after(), now),
        subject: common_name(&cert),
    })
}

/// [`connect`] to a broker: after its place in the broker's budget (not counted in `timeout`).
pub fn connect_broker(
    addr: SocketAddr,
    name: &str,
    material: &TlsMaterial,
    timeout: Duration,
) -> Result<SslStream<TcpStream>, TlsError> {
    crate::budget::global().wait_blocking(addr);
    connect(addr, name, material, timeout)
}

/// Opens a verified TLS connection to `addr` (chain and `name`), with the client certificate if any.
pub fn connect(
    addr: SocketAddr,
    name: &str,
    material: &TlsMaterial,
    timeout: Duration,
) -> Result<SslStream<TcpStream>, TlsError> {
    // A plain context rather than SslConnector, which always loads the system CA bundle (about 20 ms):
    // the system roots are loaded only when the spec names no CA of its own.
    let mut builder = SslContext::builder(SslMethod::tls_client())
        .map_err(|e| TlsError::Material(e.to_string()))?;
    builder.set_verify(SslVerifyMode::PEER);
    builder
        .set_min_proto_version(Some(openssl::ssl::SslVersion::TLS1_2))
        .map_err(|e| TlsError::Material(e.to_string()))?;
    if material.ca_pem.is_none() {
        builder
            .set_default_verify_paths()
            .map_err(|e| TlsError::Material(format!("system CA roots: {e}")))?;
    }
    if let Some(ca) = &material.ca_pem {
        let certs = X509::stack_from_pem(ca.as_bytes())
            .map_err(|e| TlsError::Material(format!("CA bundle: {e}")))?;
        let store = builder.cert_store_mut();
        for cert in certs {
            store
                .add_cert(cert)
                .map_err(|e| TlsError::Material(format!("CA bundle: {e}")))?;
        }
    }
    if let Some((cert, key)) = &material.client {
        let chain = X509::stack_from_pem(cert.as_bytes())
            .map_err(|e| TlsError::Material(format!("client certificate: {e}")))?;
        let key = private_key(key.expose())
            .map_err(|_| TlsError::Material("client key: not a PEM private key".into()))?;
        let mut chain = chain.into_iter();
        if let Some(leaf) = chain.next() {
            builder
                .set_certificate(&leaf)
                .map_err(|e| TlsError::Material(e.to_string()))?;
        }
        for extra in chain {
            builder
                .add_extra_chain_cert(extra)
                .map_err(|e| TlsError::Material(e.to_string()))?;
        }
        builder
            .set_private_key(&key)
            .map_err(|e| TlsError::Material(e.to_string()))?;
    }
    let context = builder.build();
    let mut ssl = Ssl::new(&context).map_err(|e| TlsError::Material(e.to_string()))?;
    let param = ssl.param_mut();
    param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => param
            .set_ip(ip)
            .map_err(|e| TlsError::Material(e.to_string()))?,
        Err(_) => {
            param
                .set_host(name)
                .map_err(|e| TlsError::Material(e.to_string()))?;
            ssl.set_hostname(name)
                .map_err(|e| TlsError::Material(e.to_string()))?;
        }
    }
    let stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| TlsError::Connect(e.to_string()))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| TlsError::Connect(e.to_string()))?;
    match ssl.connect(stream) {
        Ok(tls) => Ok(tls),
        Err(openssl::ssl::HandshakeError::Failure(mid)) => {
            let verify = mid.ssl().verify_result();
            Err(classify(verify, name, &mid.error().to_string()))
        }
        Err(openssl::ssl::HandshakeError::SetupFailure(e)) => {
            Err(TlsError::Material(e.to_string()))
        }
        Err(openssl::ssl::HandshakeError::WouldBlock(_)) => {
            Err(TlsError::Handshake(format!("no answer within {timeout:?}")))
        }
    }
}

fn classify(verify: X509VerifyResult, name: &str, io_error: &str) -> TlsError {
    // X509_V_ERR_HOSTNAME_MISMATCH = 62, IP_ADDRESS_MISMATCH = 64, CERT_HAS_EXPIRED = 10, CERT_NOT_YET_VALID = 9
    match verify.as_raw() {
        0 => TlsError::Handshake(tidy_io(io_error)),
        62 | 64 => TlsError::HostnameMismatch(format!("{name:?}")),
        9 | 10 => TlsError::Expired(verify.error_string().to_string()),
        _ => TlsError::Untrusted(verify.error_string().to_string()),
    }
}

fn tidy_io(e: &str) -> String {
    if e.contains("wrong version number")
        || e.contains("packet length too long")
        || e.contains("record layer failure")
    {
        "the server does not speak TLS on this port (a PLAINTEXT listener?)".into()
    } else if e.contains("unexpected EOF") || e.contains("Connection reset") {
        "the server closed the connection during the handshake".into()
    } else {
        e.to_string()
    }
}

fn seconds_until(t: &openssl::asn1::Asn1TimeRef, now: SystemTime) -> i64 {
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match Asn1Time::from_unix(now_secs).and_then(|n| n.diff(t)) {
        Ok(diff) => i64::from(diff.days) * 86_400 + i64::from(diff.secs),
        Err(_) => 0,
    }
}

fn common_name(cert: &X509) -> String {
    cert.subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
        .unwrap_or_default()
}

/// Facts about a PEM certificate (chain: the first one) that CredentialsResolved reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject CN.
    pub subject: String,
    /// Seconds from `now` until notAfter (negative: expired).
    pub expires_in_secs: i64,
}

/// Parses the first certificate of a PEM chain.
pub fn cert_info(pem: &str, now: SystemTime) -> Result<CertInfo, String> {
    let cert = X509::from_pem(pem.as_bytes())
        .map_err(|_| "not a parseable PEM certificate".to_string())?;
    Ok(CertInfo {
        subject: common_name(&cert),
        expires_in_secs: seconds_until(cert.not_after(), now),
    })
}

/// Parses an unencrypted PEM private key. An encrypted one fails at once: OpenSSL's default would
/// ask for its passphrase on the terminal, and `kconn check` would wait there for ever.
fn private_key(pem: &[u8]) -> Result<PKey<Private>, openssl::error::ErrorStack> {
    PKey::private_key_from_pem_callback(pem, |_passphrase| Ok(0))
}

/// Whether the private key (PEM) belongs to the certificate (PEM). `Err` when the key does not parse;
/// the message never contains key material.
pub fn key_matches(cert_pem: &str, key_pem: &[u8]) -> Result<bool, String> {
    let cert = X509::from_pem(cert_pem.as_bytes())
        .map_err(|_| "the certificate does not parse".to_string())?;
    let key: PKey<Private> = private_key(key_pem)
        .map_err(|_| "the private key does not parse (PEM, unencrypted)".to_string())?;
    let public = cert
        .public_key()
        .map_err(|_| "the certificate's public key does not parse".to_string())?;
    Ok(public.public_eq(&key))
}

/// `3 days`, `5 hours`, `expired 2 days ago`.
pub fn describe_expiry(secs: i64) -> String {
    let (past, s) = (secs < 0, secs.unsigned_abs());
    let span = if s >= 2 * 86_400 {
        format!("{} days", s / 86_400)
    } else if s >= 2 * 3600 {
        format!("{} hours", s / 3600)
    } else {
        format!("{} minutes", s / 60)
    };
    if past {
        format!("expired {span} ago")
    } else {
        format!("expires in {span}")
    }
}

/// How many handshakes run at once (each holds a blocking thread while it waits).
const PARALLEL_HANDSHAKES: usize = 32;

/// Runs `each` on a blocking thread for every `(host, addr)`, at most [`PARALLEL_HANDSHAKES`] at
/// once, the results in the order of the targets.
async fn on_blocking_threads<T: Send + 'static>(
    targets: Vec<(String, SocketAddr)>,
    each: impl Fn(String, SocketAddr) -> Result<T, TlsError> + Clone + Send + 'static,
) -> Vec<Result<T, TlsError>> {
    use futures::StreamExt;
    let tasks: Vec<_> = targets
        .into_iter()
        .map(|(host, addr)| {
            let each = each.clone();
            tokio::task::spawn_blocking(move || each(host, addr))
        })
        .collect();
    futures::stream::iter(tasks)
        .buffered(PARALLEL_HANDSHAKES)
        .map(|r| {
            r.unwrap_or_else(|e| {
                Err(TlsError::Handshake(format!(
                    "the handshake task failed: {e}"
                )))
            })
        })
        .collect()
        .await
}

/// Runs handshakes with every `(host, addr)`, verifying `server_name` or else the host.
pub async fn handshake_all(
    targets: Vec<(String, SocketAddr)>,
    server_name: Option<String>,
    material: TlsMaterial,
    timeout: Duration,
    now: SystemTime,
) -> Vec<Result<Handshake, TlsError>> {
    on_blocking_threads(targets, move |host, addr| {
        let name = server_name.clone().unwrap_or(host);
        handshake(addr, &name, &material, timeout, now)
    })
    .await
}

/// Verifies the certificate of each advertised broker `(host, address)` as a client of this connection
/// would: the chain against the trusted CAs, the name against `tls.serverName` or else the host the
/// broker advertises (kconn's librdkafka sessions accept either).
pub async fn verify_all(
    targets: Vec<(String, SocketAddr)>,
    material: TlsMaterial,
    timeout: Duration,
    now: SystemTime,
) -> Vec<Result<(), TlsError>> {
    on_blocking_threads(targets, move |host, addr| {
        let first = material.server_name.clone().unwrap_or_else(|| host.clone());
        match handshake(addr, &first, &material, timeout, now) {
            Err(TlsError::HostnameMismatch(_)) if first != host => {
                handshake(addr, &host, &material, timeout, now).map_err(|e| match e {
                    TlsError::HostnameMismatch(_) => {
                        TlsError::HostnameMismatch(format!("{first:?} or {host:?}"))
                    }
                    other => other,
                })
            }
            other => other,
        }
        .map(|_| ())
    })
    .await
}

/// Test support: a self-signed certificate valid from `from_days` to `to_days` around now, with its key.
#[cfg(test)]
pub(crate) fn self_signed(cn: &str, from_days: i64, to_days: i64) -> (String, String) {
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::x509::X509NameBuilder;
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(now + from_days * 86_400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + to_days * 86_400).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = String::from_utf8(b.build().to_pem().unwrap()).unwrap();
    let key = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (cert, key)
}

/// The TlsHandshake step: a handshake with each reachable bootstrap server, verifying the chain and
/// the name (`tls.serverName`, or else the host).
pub(super) async fn tls_handshake<K: Kafka>(t: &mut Test<'_, K>) -> CheckReport {
    let Some(material) = t.settings.as_ref().and_then(|s| s.tls.clone()) else {
        return skipped(
            Check::TlsHandshake,
            Reason::DependencyFailed,
            "CredentialsResolved failed",
        );
    };
    let server_name = material.server_name.clone();
    let hosts: Vec<String> = t.reached.iter().map(|(h, _)| h.clone()).collect();
    let handshakes = handshake_all(
        t.reached.clone(),
        server_name.clone(),
        material,
        t.per_address,
        t.input.now,
    );
    match timeout_at(t.deadline, handshakes).await {
        Ok(results) => handshake_row(&hosts, server_name.as_deref(), &results),
        Err(_) => t.timed_out(Check::TlsHandshake),
    }
}

/// The reason, field and hint for a failed handshake.
pub(super) fn failure_kind(e: &TlsError) -> (Reason, &'static str, &'static str) {
    match e {
        TlsError::Untrusted(_) => (
            Reason::CertificateUntrusted,
            "spec.tls.caSecretRef",
            "put the CA that signed the brokers' certificates into the Secret named by spec.tls.caSecretRef (without it, the system roots are trusted)",
        ),
        TlsError::HostnameMismatch(_) => (
            Reason::HostnameMismatch,
            "spec.tls.serverName",
            "connect by a name the certificate lists (its subjectAltName), or set spec.tls.serverName to one of them",
        ),
        TlsError::Expired(_) => {
            (Reason::CertificateExpired, "spec.bootstrapServers", "the brokers' certificates must be renewed on the brokers")
        }
        TlsError::Material(_) => (Reason::InvalidSecretValue, "spec.tls", "fix the PEM material in the TLS Secrets"),
        TlsError::Connect(_) | TlsError::Handshake(_) => (
            Reason::TlsHandshakeFailed,
            "spec.tls",
            "check that the bootstrap servers are TLS listeners (SSL or SASL_SSL); remove spec.tls for a PLAINTEXT listener",
        ),
    }
}

/// The reason, field and hint for a failed handshake with an endpoint the spec names besides the
/// brokers: `what` says which ("the token endpoint"), `ca_field` is its caSecretRef and `url_field`
/// the field holding its URL.
pub(super) fn endpoint_failure_kind(
    e: &TlsError,
    what: &str,
    ca_field: &'static str,
    url_field: &'static str,
) -> (Reason, &'static str, String) {
    match e {
        TlsError::Untrusted(_) => (
            Reason::CertificateUntrusted,
            ca_field,
            format!("put the CA that signed {what}'s certificate into the Secret named by {ca_field} (without it, the system roots are trusted)"),
        ),
        TlsError::HostnameMismatch(_) => (
            Reason::HostnameMismatch,
            url_field,
            format!("use a host name {what}'s certificate lists (its subjectAltName) in {url_field}"),
        ),
        TlsError::Expired(_) => (
            Reason::CertificateExpired,
            url_field,
            format!("{what}'s certificate must be renewed where it is served"),
        ),
        TlsError::Material(_) => (
            Reason::InvalidSecretValue,
            ca_field,
            format!("fix the PEM CA bundle in the Secret named by {ca_field}"),
        ),
        TlsError::Connect(_) | TlsError::Handshake(_) => (
            Reason::TlsHandshakeFailed,
            url_field,
            format!("check that {what} speaks https on that port ({url_field})"),
        ),
    }
}

fn handshake_row(
    hosts: &[String],
    server_name: Option<&str>,
    results: &[Result<Handshake, TlsError>],
) -> CheckReport {
    let failures: Vec<(&str, &TlsError)> = hosts
        .iter()
        .zip(results)
        .filter_map(|(h, r)| r.as_ref().err().map(|e| (h.as_str(), e)))
        .collect();
    if let Some(&(_, first)) = failures.first() {
        let (why, field, hint) = failure_kind(first);
        let detail = failures
            .iter()
            .map(|(h, e)| format!("{h}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        return row(
            Check::TlsHandshake,
            CheckResult::Failed,
            why,
            detail,
            Some(hint.into()),
            Some(field.into()),
        );
    }
    let done: Vec<&Handshake> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let Some(soonest) = done.iter().min_by_key(|h| h.expires_in_secs) else {
        return skipped(
            Check::TlsHandshake,
            Reason::DependencyFailed,
            "no reachable bootstrap server to shake hands with",
        );
    };
    let versions: std::collections::BTreeSet<&str> =
        done.iter().map(|h| h.version.as_str()).collect();
    let verified_as = server_name
        .map(|n| format!(" (verified as {n})"))
        .unwrap_or_default();
    let message = format!(
        "{} with {} of {} servers{verified_as}; certificate {:?} {}",
        versions.into_iter().collect::<Vec<_>>().join("/"),
        done.len(),
        hosts.len(),
        soonest.subject,
        describe_expiry(soonest.expires_in_secs)
    );
    if soonest.expires_in_secs < EXPIRY_WARNING.as_secs() as i64 {
        let hint = Some("renew the brokers' certificates before they expire".to_string());
        row(
            Check::TlsHandshake,
            CheckResult::Warning,
            Reason::CertificateExpiringSoon,
            message,
            hint,
            Some("spec.bootstrapServers".into()),
        )
    } else {
        row(
            Check::TlsHandshake,
            CheckResult::Passed,
            Reason::TlsVerified,
            message,
            None,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encrypted_key_fails_without_asking_for_a_passphrase() {
        let (cert, key) = self_signed("client", -1, 30);
        let key = PKey::private_key_from_pem(key.as_bytes()).unwrap();
        let encrypted = key
            .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"pw")
            .unwrap();
        // With a terminal, OpenSSL's default callback would prompt here; this one refuses.
        assert!(key_matches(&cert, &encrypted).is_err());
        assert!(private_key(&encrypted).is_err());
    }

    #[test]
    fn certificate_facts() {
        let (cert, key) = self_signed("broker", -1, 30);
        let info = cert_info(&cert, SystemTime::now()).unwrap();
        assert_eq!(info.subject, "broker");
        assert!(
            (29 * 86_400..=30 * 86_400).contains(&info.expires_in_secs),
            "{info:?}"
        );
        assert_eq!(key_matches(&cert, key.as_bytes()), Ok(true));
        let (_, other_key) = self_signed("other", -1, 30);
        assert_eq!(key_matches(&cert, other_key.as_bytes()), Ok(false));
        assert!(key_matches(&cert, b"garbage").is_err());
        assert!(cert_info("not pem", SystemTime::now()).is_err());
    }

    #[test]
    fn expiry_wording() {
        assert_eq!(describe_expiry(20 * 86_400), "expires in 20 days");
        assert_eq!(describe_expiry(5 * 3600), "expires in 5 hours");
        assert_eq!(describe_expiry(-3 * 86_400), "expired 3 days ago");
    }
}
