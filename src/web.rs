//! A small HTTP/1.1 client for the endpoints a spec names besides the brokers: an OAuth token endpoint,
//! a schema registry. Everything it reads is bounded: the answer ([`MAX_ANSWER`]), the time (the
//! caller's budget, per read and write), and the texts shown from it ([`printable`]). TLS goes through
//! the same verified connection as the TLS check ([`crate::checks::tls::connect`]): the chain against the
//! spec's CA or the system roots, the host name, and a client certificate when the spec has one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine;

use crate::checks::tls::{self, TlsError};
use crate::kafka::TlsMaterial;
use crate::secrets::SecretBytes;

/// The largest answer any request reads (a request may set a lower [`Request::limit`]).
pub const MAX_ANSWER: usize = 1 << 20;

/// The longest text of an endpoint's (an error description, a claim) shown in a message.
pub const MAX_SHOWN: usize = 200;

/// An http or https URL, parsed: `scheme://host[:port]/path?query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https` (else plain http).
    pub https: bool,
    /// The host, without brackets for IPv6.
    pub host: String,
    /// The port (443 or 80 when the URL names none).
    pub port: u16,
    /// The path and query, starting with `/`.
    pub target: String,
}

impl Url {
    /// Parses an http or https URL without user info or fragment, of printable ASCII (at most 2048
    /// characters). `Err` says what is wrong, for the field's message.
    pub fn parse(url: &str) -> Result<Self, String> {
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
            return Err("it must start with https:// or http://".into());
        };
        if url.contains('#') {
            return Err("a fragment (#...) has no place here".into());
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        if authority.contains('@') {
            return Err(
                "user info (user@host) is not allowed: credentials come from a Secret".into(),
            );
        }
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            Some(p) => p,
            None if https => 443,
            None => 80,
        };
        let target = match target.strip_prefix('?') {
            Some(query) => format!("/?{query}"),
            None if target.is_empty() => "/".to_string(),
            None => target.to_string(),
        };
        Ok(Self {
            https,
            host: host.to_string(),
            port,
            target,
        })
    }

    /// Whether the host is this machine (127.0.0.0/8, `localhost`, `::1`).
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// This URL with `key=value` (form-encoded) added to its query.
    pub fn with_query(mut self, key: &str, value: &str) -> Self {
        let sep = if self.target.contains('?') { '&' } else { '?' };
        self.target.push(sep);
        self.target.push_str(key);
        self.target.push('=');
        self.target.push_str(&form_encode(value));
        self
    }

    /// `path` (starting with `/`) under this URL's path, without its query: `/apis/ccompat/v7` joined
    /// with `/subjects` is `/apis/ccompat/v7/subjects`.
    pub fn join(&self, path: &str) -> Self {
        let base = self.target.split('?').next().unwrap_or("/");
        Self {
            target: format!("{}{path}", base.trim_end_matches('/')),
            ..self.clone()
        }
    }

    /// The URL as text.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority(), self.target)
    }

    /// `host[:port]` as the Host header and the URL carry it (the port only when not the default).
    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
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

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebError {
    /// No TCP connection (refused, timed out).
    #[error("{0}")]
    Connect(String),
    /// The TLS handshake failed.
    #[error("{0}")]
    Tls(TlsError),
    /// The answer broke HTTP, or was too large or too slow.
    #[error("{0}")]
    Protocol(String),
}

/// One request. It may hold credentials (HTTP Basic), so its bytes are a [`SecretBytes`].
pub struct Request<'a> {
    /// `GET`, `POST`.
    pub method: &'a str,
    /// Where to.
    pub url: &'a Url,
    /// HTTP Basic credentials, as they are (librdkafka sends an OAuth client's id and secret so).
    pub basic: Option<(&'a SecretBytes, &'a SecretBytes)>,
    /// `Content-Type` of the body, when there is one.
    pub content_type: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
    /// The largest answer read, at most [`MAX_ANSWER`].
    pub limit: usize,
}

impl Request<'_> {
    fn bytes(&self) -> SecretBytes {
        let mut text = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kconn\r\nAccept: application/json\r\nConnection: close\r\n",
            self.method,
            self.url.target,
            self.url.authority()
        );
        if let Some(ct) = self.content_type {
            text.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        if !self.body.is_empty() || self.method == "POST" {
            text.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        if let Some((user, password)) = self.basic {
            let mut pair = Vec::with_capacity(user.len() + password.len() + 1);
            pair.extend_from_slice(user.expose());
            pair.push(b':');
            pair.extend_from_slice(password.expose());
            let pair = SecretBytes::new(pair);
            text.push_str("Authorization: Basic ");
            text.push_str(&base64::engine::general_purpose::STANDARD.encode(pair.expose()));
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(self.body);
        SecretBytes::new(bytes)
    }
}

/// An answer: the status and the body (de-chunked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The body, at most the request's limit.
    pub body: Vec<u8>,
}

/// Sends `request` to `addr` (TLS with `tls` for https) and reads the answer, each read and write
/// bounded by `timeout`. Blocking.
pub fn call(
    request: &Request<'_>,
    addr: SocketAddr,
    tls: &TlsMaterial,
    timeout: Duration,
) -> Result<Response, WebError> {
    let bytes = request.bytes();
    let answer = if request.url.https {
        let mut stream =
            tls::connect(addr, &request.url.host, tls, timeout).map_err(|e| match e {
                TlsError::Connect(why) => WebError::Connect(why),
                other => WebError::Tls(other),
            })?;
        exchange(&mut stream, bytes.expose(), request.limit)?
    } else {
        let mut stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| WebError::Connect(tcp_error_text(&e)))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|_| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| WebError::Connect(e.to_string()))?;
        exchange(&mut stream, bytes.expose(), request.limit)?
    };
    parse_response(&answer)
}

/// [`call`] at the first of `addrs` (at most 8) that accepts TCP: the address that answered, and the
/// answer.
pub fn call_any(
    request: &Request<'_>,
    addrs: &[SocketAddr],
    tls: &TlsMaterial,
    timeout: Duration,
) -> Result<(SocketAddr, Response), WebError> {
    let mut last = WebError::Connect("no address".into());
    for addr in addrs.iter().take(8) {
        match call(request, *addr, tls, timeout) {
            Err(WebError::Connect(why)) => last = WebError::Connect(format!("{addr}: {why}")),
            other => return other.map(|answer| (*addr, answer)),
        }
    }
    Err(last)
}

fn tcp_error_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            "connection refused (nothing listens on that port)".into()
        }
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "no answer in time".into(),
        _ => e.to_string(),
    }
}

/// Writes the request and reads the answer: to its end (Content-Length, the last chunk, or the
/// connection's close), at most `limit` bytes (and [`MAX_ANSWER`]).
fn exchange(
    stream: &mut (impl Read + Write),
    request: &[u8],
    limit: usize,
) -> Result<Vec<u8>, WebError> {
    let limit = limit.min(MAX_ANSWER);
    stream
        .write_all(request)
        .and_then(|_| stream.flush())
        .map_err(|e| WebError::Protocol(format!("sending the request failed: {e}")))?;
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
                if answer.len() > limit {
                    return Err(WebError::Protocol(format!(
                        "the answer is larger than {} KiB",
                        limit / 1024
                    )));
                }
            }
            Err(e) if answer.is_empty() => {
                return Err(WebError::Protocol(format!("no answer: {e}")))
            }
            Err(e) => return Err(WebError::Protocol(format!("the answer stopped: {e}"))),
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
fn parse_response(answer: &[u8]) -> Result<Response, WebError> {
    let Some(end) = header_end(answer) else {
        return Err(WebError::Protocol(if answer.is_empty() {
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
            WebError::Protocol(format!(
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
    Ok(Response { status, body })
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, WebError> {
    let bad = || WebError::Protocol("a malformed chunked answer".into());
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

/// A text from an endpoint, as it may be shown: control characters as spaces, at most [`MAX_SHOWN`]
/// characters.
pub fn printable(s: &str) -> String {
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

    #[test]
    fn urls_parse_or_say_why() {
        let u = Url::parse("https://idp.example.com/oauth2/token").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.https, u.target.as_str()),
            ("idp.example.com", 443, true, "/oauth2/token")
        );
        let u = u.with_query("audience", "kafka broker");
        assert_eq!(
            u.url(),
            "https://idp.example.com/oauth2/token?audience=kafka+broker"
        );
        let u = Url::parse("http://127.0.0.1:8080/token?x=1")
            .unwrap()
            .with_query("audience", "a&b");
        assert_eq!(u.url(), "http://127.0.0.1:8080/token?x=1&audience=a%26b");
        assert!(u.is_loopback());
        let u = Url::parse("https://[::1]:8443").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("::1", 8443, "/")
        );
        assert_eq!(u.url(), "https://[::1]:8443/");
        assert!(u.is_loopback());
        let registry = Url::parse("http://sr:8081/apis/ccompat/v7/").unwrap();
        assert_eq!(
            registry.join("/subjects").url(),
            "http://sr:8081/apis/ccompat/v7/subjects"
        );
        assert!(!registry.is_loopback());
        for (bad, says) in [
            ("ftp://idp/token", "https:// or http://"),
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
            let why = Url::parse(bad).unwrap_err();
            assert!(why.contains(says), "{bad}: {why}");
        }
    }

    #[test]
    fn a_request_carries_basic_credentials_as_they_are() {
        let url = Url::parse("http://localhost:9/t").unwrap();
        let (id, secret) = (
            SecretBytes::new(b"my-client".to_vec()),
            SecretBytes::new(b"s3cr:et".to_vec()),
        );
        let req = Request {
            method: "POST",
            url: &url,
            basic: Some((&id, &secret)),
            content_type: Some("application/x-www-form-urlencoded"),
            body: b"grant_type=client_credentials",
            limit: MAX_ANSWER,
        };
        let text = String::from_utf8(req.bytes().expose().to_vec()).unwrap();
        assert!(
            text.starts_with("POST /t HTTP/1.1\r\nHost: localhost:9\r\n"),
            "{text}"
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode("my-client:s3cr:et");
        assert!(text.contains(&format!("\r\nAuthorization: Basic {b64}\r\n")));
        assert!(text.contains("Content-Length: 29\r\n"));
        assert!(text.ends_with("\r\n\r\ngrant_type=client_credentials"));
        let get = Request {
            method: "GET",
            url: &url,
            basic: None,
            content_type: None,
            body: b"",
            limit: MAX_ANSWER,
        };
        let text = String::from_utf8(get.bytes().expose().to_vec()).unwrap();
        assert!(!text.contains("Content-Length") && !text.contains("Authorization"));
    }

    #[test]
    fn answers_are_read_to_their_end() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        assert!(answer_complete(chunked));
        assert_eq!(
            parse_response(chunked).unwrap(),
            Response {
                status: 200,
                body: b"hello world".to_vec()
            }
        );
        let sized = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}";
        assert!(answer_complete(sized));
        assert!(!answer_complete(&sized[..sized.len() - 1]));
        assert_eq!(parse_response(sized).unwrap().status, 401);
        let closed = b"HTTP/1.0 200 OK\r\n\r\n{\"a\":1}";
        assert!(!answer_complete(closed));
        assert_eq!(parse_response(closed).unwrap().body, b"{\"a\":1}".to_vec());
        assert!(
            matches!(parse_response(b""), Err(WebError::Protocol(m)) if m.contains("without an answer"))
        );
        assert!(
            matches!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"), Err(WebError::Protocol(m)) if m.contains("status line"))
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
        let err = exchange(&mut Endless, b"GET / HTTP/1.1\r\n\r\n", 64 * 1024).unwrap_err();
        assert!(matches!(err, WebError::Protocol(m) if m.contains("64 KiB")));
    }

    #[test]
    fn texts_from_an_endpoint_are_clipped_and_printable() {
        assert_eq!(printable("a\nb\u{7}c"), "a b c");
        let long = "x".repeat(500);
        assert_eq!(printable(&long).chars().count(), MAX_SHOWN + 1);
    }
}
