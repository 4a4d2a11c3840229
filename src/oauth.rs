//! OAuth 2.0 client credentials for SASL OAUTHBEARER: the token endpoint as kconn and librdkafka reach
//! it, one real token request (the TokenAcquired check), and the claims of the token that matter, read
//! without ever showing the token.
//!
//! The request is what librdkafka's own OIDC flow sends, so that a token kconn gets is one librdkafka
//! gets: `POST` with `Authorization: Basic base64(id:secret)` (the id and secret as they are) and the
//! form `grant_type=client_credentials[&scope=...]`; the audience rides in the token URL's query. It
//! goes through [`crate::web`]: the answer is read to at most 64 KiB, within the caller's time, and
//! the texts shown from it are clipped and printable.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;

use crate::checks::tls::TlsError;
use crate::kafka::TlsMaterial;
use crate::secrets::{Redactor, SecretBytes};
use crate::web::{self, form_encode, printable, Request, Url, WebError, MAX_SHOWN};

/// The largest answer read from a token endpoint (a token with its JSON is a few KiB).
pub const MAX_ANSWER: usize = 64 * 1024;

/// The token endpoint of a spec: `url` parsed, https (http only on loopback), with `audience=` added
/// to its query when the spec names one. `Err` says what is wrong, for the field's message.
pub fn token_endpoint(url: &str, audience: Option<&str>) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|why| {
        if url.starts_with("http") {
            why
        } else {
            "it must start with https:// (http:// only on loopback)".into()
        }
    })?;
    if !parsed.https && !parsed.is_loopback() {
        return Err(format!(
            "http:// sends the client secret in clear text: use https:// (http:// is accepted only on loopback, for tests), not {:?}",
            parsed.host
        ));
    }
    Ok(match audience {
        Some(audience) => parsed.with_query("audience", audience),
        None => parsed,
    })
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

/// Asks `endpoint` (at the first of `addrs` that accepts TCP) for a token with the client-credentials
/// grant, as librdkafka does, and reads its claims; the token itself is dropped here. Blocking; each read
/// and write bounded by `timeout`.
pub fn request_token(
    endpoint: &Url,
    addrs: &[SocketAddr],
    client: &OAuthClient,
    ca_pem: Option<&str>,
    timeout: Duration,
    now: SystemTime,
) -> Result<(SocketAddr, Claims), TokenError> {
    let mut body = "grant_type=client_credentials".to_string();
    if let Some(scope) = client.scope.as_deref().filter(|s| !s.is_empty()) {
        body.push_str("&scope=");
        body.push_str(&form_encode(scope));
    }
    let request = Request {
        method: "POST",
        url: endpoint,
        basic: Some((&client.id, &client.secret)),
        content_type: Some("application/x-www-form-urlencoded"),
        body: body.as_bytes(),
        limit: MAX_ANSWER,
    };
    let tls = TlsMaterial {
        ca_pem: ca_pem.map(str::to_string),
        ..TlsMaterial::default()
    };
    let (addr, answer) = web::call_any(&request, addrs, &tls, timeout)?;
    token_answer(answer.status, &answer.body, &client.redactor(), now).map(|c| (addr, c))
}

impl OAuthClient {
    /// A redactor that knows the client secret.
    pub fn redactor(&self) -> Redactor {
        let mut r = Redactor::default();
        r.add(&self.secret);
        r
    }
}

impl From<WebError> for TokenError {
    fn from(e: WebError) -> Self {
        match e {
            WebError::Connect(why) => TokenError::Connect(why),
            WebError::Tls(e) => TokenError::Tls(e),
            WebError::Protocol(why) => TokenError::Protocol(why),
        }
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
    fn token_endpoints_are_https_or_loopback_and_carry_the_audience() {
        let e =
            token_endpoint("https://idp.example.com/oauth2/token", Some("kafka broker")).unwrap();
        assert_eq!(
            e.url(),
            "https://idp.example.com/oauth2/token?audience=kafka+broker"
        );
        let e = token_endpoint("http://127.0.0.1:8080/token?x=1", Some("a&b")).unwrap();
        assert_eq!(e.url(), "http://127.0.0.1:8080/token?x=1&audience=a%26b");
        assert_eq!(
            token_endpoint("http://localhost/t", None).unwrap().url(),
            "http://localhost/t"
        );
        assert!(token_endpoint("http://[::1]:9/t", None).is_ok());
        for (bad, says) in [
            ("ftp://idp/token", "https://"),
            ("idp.example.com/token", "https://"),
            ("http://idp.example.com/token", "clear text"),
            ("http://10.0.0.1/token", "clear text"),
            ("https://user:pw@idp/token", "user info"),
            ("https://idp:99999/token", "port"),
        ] {
            let why = token_endpoint(bad, None).unwrap_err();
            assert!(why.contains(says), "{bad}: {why}");
        }
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
