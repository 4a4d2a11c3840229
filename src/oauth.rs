//! OAuth 2.0 client credentials for SASL OAUTHBEARER: the token endpoint as kconn and librdkafka reach
//! it, one real token request (the TokenAcquired check), and the claims of the token that matter, read
//! without ever showing the token.
//!
//! The request is what librdkafka's own OIDC flow sends, so that a token kconn gets is one librdkafka
//! gets: `POST` with `Authorization: Basic base64(id:secret)` (the id and secret as they are) and the
//! form `grant_type=client_credentials[&scope=...]`; the audience rides in the token URL's query.
//! Everything read from the endpoint is bounded: the answer (64 KiB), the time (the caller's budget),
//! and the texts shown (clipped, printable only).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;

use crate::checks::tls::{self, TlsError};
use crate::kafka::TlsMaterial;
use crate::secrets::{Redactor, SecretBytes};

/// The largest answer read from a token endpoint (a token with its JSON is a few KiB).
pub const MAX_ANSWER: usize = 64 * 1024;

/// The longest text of the provider's (an error description, a claim) shown in a message.
const MAX_SHOWN: usize = 200;

/// A token endpoint, parsed: `https://host[:port]/path?query` (http only on loopback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEndpoint {
    /// `https` (else plain http, on loopback only).
    pub https: bool,
    /// The host, without brackets for IPv6.
    pub host: String,
    /// The port (443 or 80 when the URL names none).
    pub port: u16,
    /// The path and query, starting with `/`, with `audience=` added when the spec names one.
    pub target: String,
}

impl TokenEndpoint {
    /// Parses `url` (the spec's `tokenEndpoint`) and adds `audience` to its query. `Err` says what is
    /// wrong, for the field's message.
    pub fn parse(url: &str, audience: Option<&str>) -> Result<Self, String> {
        if url.len() > 2048 {
            return Err(format!("{} characters; at most 2048", url.len()));
        }
        if let Some(c) = url.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(format!(
                "{c:?} is not allowed in a URL (spaces, control and non-ASCII characters must be percent-encoded)"
            ));
        }
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("it must start with https:// (http:// only on loopback)".into());
        };
        if url.contains('#') {
            return Err("a fragment (#...) has no place in a token endpoint".into());
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        if authority.contains('@') {
            return Err("user info (user@host) is not allowed: the client id and secret come from clientSecretRef".into());
        }
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            Some(p) => p,
            None if https => 443,
            None => 80,
        };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !https && !loopback {
            return Err(format!(
                "http:// sends the client secret in clear text: use https:// (http:// is accepted only on loopback, for tests), not {host:?}"
            ));
        }
        let mut target = match target.strip_prefix('?') {
            Some(query) => format!("/?{query}"),
            None if target.is_empty() => "/".to_string(),
            None => target.to_string(),
        };
        if let Some(audience) = audience {
            let sep = if target.contains('?') { '&' } else { '?' };
            target.push(sep);
            target.push_str("audience=");
            target.push_str(&form_encode(audience));
        }
        Ok(Self {
            https,
            host: host.to_string(),
            port,
            target,
        })
    }

    /// The URL librdkafka (and a client of the binding Secret) asks: the spec's, with the audience.
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let scheme = if self.https { "https" } else { "http" };
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            format!("{scheme}://{host}{}", self.target)
        } else {
            format!("{scheme}://{host}:{}{}", self.port, self.target)
        }
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address needs its closing ]")?;
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("[{ip}] is not an IPv6 address"));
        }
        match after.strip_prefix(':') {
            Some(p) => (ip, Some(p)),
            None if after.is_empty() => (ip, None),
            None => return Err(format!("unexpected {after:?} after the IPv6 address")),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the URL names no host".into());
    }
    if !host.contains(':')
        && !crate::validate::is_dns_name(host)
        && host.parse::<std::net::Ipv4Addr>().is_err()
    {
        return Err(format!("{host:?} is not a host name or IP address"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.len() <= 5 => Some(n),
            _ => return Err(format!("port {p:?} is not a number from 1 to 65535")),
        },
    };
    Ok((host, port))
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The OAuth client: its id and secret (from the Secret) and the scope to ask for.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    /// The client id.
    pub id: SecretBytes,
    /// The client secret.
    pub secret: SecretBytes,
    /// `scope` of the request.
    pub scope: Option<String>,
}

/// What the token says about itself (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claims {
    /// `iss`.
    pub issuer: Option<String>,
    /// `sub`: the principal the brokers see (`User:<sub>`).
    pub subject: String,
    /// `aud`, one or more.
    pub audience: Vec<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// `scope` (or `scp`), split at spaces.
    pub scopes: Vec<String>,
}

impl Claims {
    /// One line for the check's message, e.g. `subject pipeline, issuer https://idp, audience kafka,
    /// scopes kafka, expires in 59m 58s`.
    pub fn describe(&self, now: SystemTime) -> String {
        let left = self.expires_at - unix(now);
        let mut parts = vec![format!("subject {}", self.subject)];
        if let Some(iss) = &self.issuer {
            parts.push(format!("issuer {iss}"));
        }
        parts.push(match self.audience.as_slice() {
            [] => "no audience".to_string(),
            many => format!("audience {}", many.join(" ")),
        });
        if !self.scopes.is_empty() {
            parts.push(format!("scopes {}", self.scopes.join(" ")));
        }
        parts.push(format!(
            "expires in {}",
            crate::checks::network::human(Duration::from_secs(left.max(0) as u64))
        ));
        parts.join(", ")
    }
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Why a token request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No TCP connection (refused, timed out).
    #[error("{0}")]
    Connect(String),
    /// The TLS handshake with the endpoint failed.
    #[error("{0}")]
    Tls(TlsError),
    /// The provider answered with an OAuth error (RFC 6749 5.2).
    #[error("HTTP {status}: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// The HTTP status.
        status: u16,
        /// `error`, e.g. `invalid_client`.
        error: String,
        /// `error_description`, if any.
        description: Option<String>,
    },
    /// An answer that is not a token response (a web page, a proxy's error, a server error).
    #[error("HTTP {status}: {text}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The start of the body, printable characters only.
        text: String,
    },
    /// The answer broke HTTP, or was too large or too slow.
    #[error("{0}")]
    Protocol(String),
    /// A token came, but librdkafka could not use it (not a JWT, no `sub` or `exp`, expired).
    #[error("{0}")]
    Unusable(String),
}

/// Asks `endpoint` (at `addr`) for a token with the client-credentials grant and reads its claims. The
/// token itself is dropped here. Blocking; bounded by `timeout` per read and write.
pub fn request_token(
    endpoint: &TokenEndpoint,
    addr: SocketAddr,
    client: &OAuthClient,
    ca_pem: Option<&str>,
    timeout: Duration,
    now: SystemTime,
) -> Result<Claims, TokenError> {
    let request = http_request(endpoint, client);
    let answer = if endpoint.https {
        let material = TlsMaterial {
            ca_pem: ca_pem.map(str::to_string),
            ..TlsMaterial::default()
        };
        let mut stream =
            tls::connect(addr, &endpoint.host, &material, timeout).map_err(|e| match e {
                TlsError::Connect(why) => TokenError::Connect(why),
                other => TokenError::Tls(other),
            })?;
        exchange(&mut stream, request.expose())?
    } else {
        let mut stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| TokenError::Connect(e.to_string()))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|_| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| TokenError::Connect(e.to_string()))?;
        exchange(&mut stream, request.expose())?
    };
    let redactor = client.redactor();
    let (status, body) = parse_response(&answer)?;
    token_answer(status, &body, &redactor, now)
}

impl OAuthClient {
    /// A redactor that knows the client secret.
    pub fn redactor(&self) -> Redactor {
        let mut r = Redactor::default();
        r.add(&self.secret);
        r
    }
}

/// The HTTP request: it holds the client secret, so it is a [`SecretBytes`].
fn http_request(endpoint: &TokenEndpoint, client: &OAuthClient) -> SecretBytes {
    let mut basic = Vec::with_capacity(client.id.len() + client.secret.len() + 1);
    basic.extend_from_slice(client.id.expose());
    basic.push(b':');
    basic.extend_from_slice(client.secret.expose());
    let basic = SecretBytes::new(basic);
    let mut body = "grant_type=client_credentials".to_string();
    if let Some(scope) = client.scope.as_deref().filter(|s| !s.is_empty()) {
        body.push_str("&scope=");
        body.push_str(&form_encode(scope));
    }
    let default = if endpoint.https { 443 } else { 80 };
    let host = if endpoint.host.contains(':') {
        format!("[{}]", endpoint.host)
    } else {
        endpoint.host.clone()
    };
    let host = if endpoint.port == default {
        host
    } else {
        format!("{host}:{}", endpoint.port)
    };
    let mut text = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kconn\r\nAccept: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\nAuthorization: Basic ",
        endpoint.target,
        body.len()
    );
    text.push_str(&base64::engine::general_purpose::STANDARD.encode(basic.expose()));
    text.push_str("\r\n\r\n");
    text.push_str(&body);
    SecretBytes::new(text.into_bytes())
}

/// Writes the request and reads the answer: to its end (Content-Length, the last chunk, or the
/// connection's close), at most [`MAX_ANSWER`] bytes.
fn exchange(stream: &mut (impl Read + Write), request: &[u8]) -> Result<Vec<u8>, TokenError> {
    stream
        .write_all(request)
        .and_then(|_| stream.flush())
        .map_err(|e| TokenError::Protocol(format!("sending the request failed: {e}")))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if answer_complete(&answer) {
            return Ok(answer);
        }
        match stream.read(&mut buf) {
            Ok(0) => return Ok(answer),
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.len() > MAX_ANSWER {
                    return Err(TokenError::Protocol(format!(
                        "the answer is larger than {} KiB; a token response is a few KiB",
                        MAX_ANSWER / 1024
                    )));
                }
            }
            Err(e) if answer.is_empty() => {
                return Err(TokenError::Protocol(format!("no answer: {e}")))
            }
            Err(e) => return Err(TokenError::Protocol(format!("the answer stopped: {e}"))),
        }
    }
}

fn header_end(answer: &[u8]) -> Option<usize> {
    answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

fn answer_complete(answer: &[u8]) -> bool {
    let Some(end) = header_end(answer) else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    if let Some(len) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        return answer.len() >= end + len;
    }
    if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return answer.ends_with(b"0\r\n\r\n");
    }
    false
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// The status and the body (de-chunked) of an HTTP/1.x answer.
fn parse_response(answer: &[u8]) -> Result<(u16, Vec<u8>), TokenError> {
    let Some(end) = header_end(answer) else {
        return Err(TokenError::Protocol(if answer.is_empty() {
            "the endpoint closed the connection without an answer".into()
        } else {
            format!(
                "not an HTTP answer: {:?}",
                printable(&String::from_utf8_lossy(&answer[..answer.len().min(60)]))
            )
        }));
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let status_line = head.lines().next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            TokenError::Protocol(format!(
                "not an HTTP status line: {:?}",
                printable(status_line)
            ))
        })?;
    let lower = head.to_ascii_lowercase();
    let body = &answer[end..];
    let body = if header(&lower, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(body)?
    } else if let Some(len) = header(&lower, "content-length").and_then(|v| v.parse::<usize>().ok())
    {
        body[..len.min(body.len())].to_vec()
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, TokenError> {
    let bad = || TokenError::Protocol("a malformed chunked answer".into());
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| bad())?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err(bad());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// Reads a token endpoint's answer: the token's claims, or why there is none.
pub fn token_answer(
    status: u16,
    body: &[u8],
    redactor: &Redactor,
    now: SystemTime,
) -> Result<Claims, TokenError> {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let text = |v: &serde_json::Value| {
        redactor.apply(&printable(
            &v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string()),
        ))
    };
    if !(200..300).contains(&status) {
        if let Some(error) = json.as_ref().and_then(|j| j.get("error")) {
            return Err(TokenError::Refused {
                status,
                error: text(error),
                description: json
                    .as_ref()
                    .and_then(|j| j.get("error_description"))
                    .map(text),
            });
        }
        return Err(TokenError::Http {
            status,
            text: redactor.apply(&printable(&String::from_utf8_lossy(
                &body[..body.len().min(MAX_SHOWN)],
            ))),
        });
    }
    let Some(json) = json else {
        return Err(TokenError::Http {
            status,
            text: format!(
                "not a JSON token response: {}",
                redactor.apply(&printable(&String::from_utf8_lossy(
                    &body[..body.len().min(60)]
                )))
            ),
        });
    };
    let Some(token) = json.get("access_token").and_then(|t| t.as_str()) else {
        return Err(TokenError::Unusable(
            "the answer has no access_token".into(),
        ));
    };
    claims(token, now)
}

/// The claims librdkafka needs (`sub`, `exp`) and those worth showing, from a JWT's payload. The
/// signature is the brokers' to check, not kconn's.
pub fn claims(token: &str, now: SystemTime) -> Result<Claims, TokenError> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(TokenError::Unusable(
            "the access token is not a JWT (three dot-separated parts); librdkafka's OAUTHBEARER needs one: configure the provider to issue JWT access tokens".into(),
        ));
    }
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .map_err(|_| TokenError::Unusable("the JWT's payload is not base64url".into()))?;
    let payload: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&payload)
        .map_err(|_| TokenError::Unusable("the JWT's payload is not a JSON object".into()))?;
    let string = |v: &serde_json::Value| v.as_str().map(printable);
    let subject = payload.get("sub").and_then(string).filter(|s| !s.is_empty()).ok_or_else(|| {
        TokenError::Unusable("the token has no sub claim; librdkafka needs it (the brokers' principal is User:<sub>): configure the provider to set sub for this client".into())
    })?;
    let expires_at = payload.get("exp").and_then(|v| v.as_f64()).ok_or_else(|| {
        TokenError::Unusable(
            "the token has no exp claim; librdkafka needs it to refresh the token".into(),
        )
    })? as i64;
    if expires_at <= unix(now) {
        return Err(TokenError::Unusable(format!(
            "the token expired {} ago, as it was issued (check the provider's clock and token lifetime)",
            crate::checks::network::human(Duration::from_secs((unix(now) - expires_at) as u64))
        )));
    }
    let audience = match payload.get("aud") {
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(string).take(5).collect(),
        Some(v) => string(v).into_iter().collect(),
        None => Vec::new(),
    };
    let scopes = match payload.get("scope").or_else(|| payload.get("scp")) {
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(string).collect(),
        Some(v) => string(v)
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Claims {
        issuer: payload.get("iss").and_then(string),
        subject,
        audience,
        expires_at,
        scopes: scopes.into_iter().take(10).collect(),
    })
}

/// A text from the endpoint, as it may be shown: printable characters, at most [`MAX_SHOWN`].
fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_SHOWN)
        .collect();
    if s.chars().count() > MAX_SHOWN {
        out.push('…');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: serde_json::Value) -> String {
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.{}",
            enc.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            enc.encode(payload.to_string()),
            enc.encode(b"signature")
        )
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn endpoints_parse_or_say_why() {
        let e = TokenEndpoint::parse("https://idp.example.com/oauth2/token", Some("kafka broker"))
            .unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.https),
            ("idp.example.com", 443, true)
        );
        assert_eq!(e.target, "/oauth2/token?audience=kafka+broker");
        assert_eq!(
            e.url(),
            "https://idp.example.com/oauth2/token?audience=kafka+broker"
        );
        let e = TokenEndpoint::parse("http://127.0.0.1:8080/token?x=1", Some("a&b")).unwrap();
        assert_eq!(e.url(), "http://127.0.0.1:8080/token?x=1&audience=a%26b");
        let e = TokenEndpoint::parse("https://[::1]:8443", None).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.target.as_str()),
            ("::1", 8443, "/")
        );
        assert_eq!(e.url(), "https://[::1]:8443/");
        for (bad, says) in [
            ("ftp://idp/token", "https://"),
            ("http://idp.example.com/token", "clear text"),
            ("http://10.0.0.1/token", "clear text"),
            ("https://user:pw@idp/token", "user info"),
            ("https://idp/token#frag", "fragment"),
            ("https://idp:0/token", "port"),
            ("https://idp:99999/token", "port"),
            ("https:///token", "no host"),
            ("https://idp/to ken", "not allowed"),
            ("https://idp/tökén", "not allowed"),
            ("https://[::1/token", "closing ]"),
            ("https://-bad-/token", "not a host"),
        ] {
            let why = TokenEndpoint::parse(bad, None).unwrap_err();
            assert!(why.contains(says), "{bad}: {why}");
        }
    }

    #[test]
    fn the_request_is_what_librdkafka_sends() {
        let e = TokenEndpoint::parse("http://localhost:9/t", Some("kafka")).unwrap();
        let client = OAuthClient {
            id: SecretBytes::new(b"my-client".to_vec()),
            secret: SecretBytes::new(b"s3cr:et".to_vec()),
            scope: Some("kafka read".into()),
        };
        let req = http_request(&e, &client);
        let text = String::from_utf8(req.expose().to_vec()).unwrap();
        assert!(
            text.starts_with("POST /t?audience=kafka HTTP/1.1\r\nHost: localhost:9\r\n"),
            "{text}"
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode("my-client:s3cr:et");
        assert!(text.contains(&format!("\r\nAuthorization: Basic {b64}\r\n")));
        assert!(text.ends_with("\r\n\r\ngrant_type=client_credentials&scope=kafka+read"));
        assert!(text.contains("Content-Length: 46\r\n"));
    }

    #[test]
    fn answers_are_read_to_their_end() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        assert!(answer_complete(chunked));
        assert_eq!(
            parse_response(chunked).unwrap(),
            (200, b"hello world".to_vec())
        );
        let sized = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}";
        assert!(answer_complete(sized));
        assert!(!answer_complete(&sized[..sized.len() - 1]));
        assert_eq!(parse_response(sized).unwrap(), (401, b"{}".to_vec()));
        let closed = b"HTTP/1.0 200 OK\r\n\r\n{\"a\":1}";
        assert!(!answer_complete(closed));
        assert_eq!(parse_response(closed).unwrap().1, b"{\"a\":1}".to_vec());
        assert!(
            matches!(parse_response(b""), Err(TokenError::Protocol(m)) if m.contains("without an answer"))
        );
        assert!(
            matches!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"), Err(TokenError::Protocol(m)) if m.contains("status line"))
        );
        assert!(dechunk(b"zz\r\nhello").is_err());
        assert!(dechunk(b"ff\r\nshort\r\n").is_err());
    }

    #[test]
    fn an_answer_larger_than_the_bound_is_refused() {
        struct Endless;
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                buf.fill(b'x');
                Ok(buf.len())
            }
        }
        impl Write for Endless {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let err = exchange(&mut Endless, b"POST / HTTP/1.1\r\n\r\n").unwrap_err();
        assert!(matches!(err, TokenError::Protocol(m) if m.contains("64 KiB")));
    }

    #[test]
    fn provider_errors_and_claims_are_read_never_the_token() {
        let mut r = Redactor::default();
        r.add(&SecretBytes::new(b"topsecret".to_vec()));
        let now = at(1_000_000);
        let refused = token_answer(
            401,
            br#"{"error":"invalid_client","error_description":"bad secret topsecret\n"}"#,
            &r,
            now,
        )
        .unwrap_err();
        assert_eq!(
            refused,
            TokenError::Refused {
                status: 401,
                error: "invalid_client".into(),
                description: Some("bad secret ***".into())
            }
        );
        assert_eq!(
            refused.to_string(),
            "HTTP 401: invalid_client (bad secret ***)"
        );
        let page = token_answer(404, b"<html>not found</html>", &r, now).unwrap_err();
        assert_eq!(
            page,
            TokenError::Http {
                status: 404,
                text: "<html>not found</html>".into()
            }
        );
        let token = jwt(serde_json::json!({"iss": "https://idp", "sub": "pipeline",
            "aud": ["kafka", "other"], "exp": 1_003_600, "scope": "kafka read"}));
        let body =
            serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600});
        let claims = token_answer(200, body.to_string().as_bytes(), &r, now).unwrap();
        assert_eq!(
            claims.describe(now),
            "subject pipeline, issuer https://idp, audience kafka other, scopes kafka read, expires in 60m"
        );
        assert!(!claims.describe(now).contains(&token));
    }

    #[test]
    fn tokens_librdkafka_cannot_use_are_named() {
        let now = at(1_000_000);
        for (token, says) in [
            ("opaque-token".to_string(), "not a JWT"),
            ("a.!!!.c".to_string(), "base64url"),
            (jwt(serde_json::json!(["x"])), "JSON object"),
            (jwt(serde_json::json!({"exp": 1_000_100})), "no sub"),
            (jwt(serde_json::json!({"sub": "x"})), "no exp"),
            (
                jwt(serde_json::json!({"sub": "x", "exp": 999_000})),
                "expired 16m ago",
            ),
        ] {
            let err = claims(&token, now).unwrap_err();
            assert!(
                matches!(&err, TokenError::Unusable(m) if m.contains(says)),
                "{err}"
            );
        }
        let r = Redactor::default();
        assert!(
            matches!(token_answer(200, b"{}", &r, now), Err(TokenError::Unusable(m)) if m.contains("access_token"))
        );
        assert!(matches!(
            token_answer(200, b"<html>", &r, now),
            Err(TokenError::Http { .. })
        ));
    }
}
