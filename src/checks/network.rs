//! DNS and TCP: BootstrapResolved, BrokersReachable and the reachability of advertised brokers. Every
//! address is worked on in parallel, each bounded by its own timeout.

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;
use futures::StreamExt;
use tokio::net::TcpStream;

use crate::kafka::{api_versions, TlsMaterial};

/// What DNS said about one `host:port`.
pub type Resolution = Result<Vec<SocketAddr>, String>;

/// Resolves every `(host, port)` in parallel, each within `timeout`.
pub async fn resolve_all(targets: &[(String, u16)], timeout: Duration) -> Vec<Resolution> {
    join_all(
        targets
            .iter()
            .map(|(host, port)| resolve(host, *port, timeout)),
    )
    .await
}

async fn resolve(host: &str, port: u16, timeout: Duration) -> Resolution {
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err("no addresses".into())
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(e)) => Err(dns_error_text(&e)),
        Err(_) => Err(format!("no DNS answer within {}", human(timeout))),
    }
}

fn dns_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("Name or service not known")
        || text.contains("nodename nor servname")
        || text.contains("No address associated")
    {
        "no such host".into()
    } else if text.contains("Temporary failure in name resolution") {
        "DNS is not answering (temporary failure in name resolution)".into()
    } else {
        text
    }
}

/// Opens a TCP connection to any of `addrs` (in order) within `timeout` each; the first success wins.
pub async fn connect_any(addrs: &[SocketAddr], timeout: Duration) -> Result<SocketAddr, String> {
    let mut last = "no address to connect to".to_string();
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(*addr),
            Ok(Err(e)) => last = tcp_error_text(&e),
            Err(_) => {
                last = format!(
                    "no answer within {} (a firewall dropping packets, or the wrong address)",
                    human(timeout)
                )
            }
        }
    }
    Err(last)
}

fn tcp_error_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            "connection refused (nothing listens on that port)".into()
        }
        std::io::ErrorKind::TimedOut => "connection timed out".into(),
        _ => {
            let text = e.to_string();
            text.split(" (os error")
                .next()
                .unwrap_or(&text)
                .to_lowercase()
        }
    }
}

/// Resolves and connects each target in parallel: `Ok(address)` or `Err(why)` per target.
pub async fn reach_all(
    targets: &[(String, u16)],
    timeout: Duration,
) -> Vec<Result<SocketAddr, String>> {
    // At most REACH_CONCURRENCY at once: resolving runs on the blocking pool, which every
    // connection shares, and a cluster decides how many brokers it advertises.
    let each: Vec<_> = targets
        .iter()
        .map(|(host, port)| reach(host.clone(), *port, timeout))
        .collect();
    futures::stream::iter(each)
        .buffered(REACH_CONCURRENCY)
        .collect()
        .await
}

async fn reach(host: String, port: u16, timeout: Duration) -> Result<SocketAddr, String> {
    let addrs = resolve(&host, port, timeout).await?;
    connect_any(&addrs, timeout).await
}

/// How many addresses one test resolves and connects to at once.
const REACH_CONCURRENCY: usize = 32;

/// The highest Produce API version the first reachable bootstrap server supports (raw ApiVersions,
/// over TLS when `tls` is set).
pub async fn produce_max_version(
    reached: &[(String, SocketAddr)],
    tls: Option<TlsMaterial>,
    timeout: Duration,
) -> Result<i16, String> {
    let Some((host, addr)) = reached.first().cloned() else {
        return Err("no reachable bootstrap server".into());
    };
    let task = tokio::task::spawn_blocking(move || {
        let versions = match &tls {
            Some(material) => {
                let name = material.server_name.clone().unwrap_or(host);
                let mut stream = super::tls::connect(addr, &name, material, timeout)
                    .map_err(|e| e.to_string())?;
                api_versions::exchange(&mut stream)?
            }
            None => {
                let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
                    .map_err(|e| e.to_string())?;
                stream
                    .set_read_timeout(Some(timeout))
                    .map_err(|e| e.to_string())?;
                api_versions::exchange(&mut stream)?
            }
        };
        versions
            .get(&api_versions::PRODUCE)
            .map(|(_, max)| *max)
            .ok_or_else(|| "the brokers list no Produce API".to_string())
    });
    task.await
        .unwrap_or_else(|e| Err(format!("the ApiVersions task failed: {e}")))
}

/// `1.5s`, `250ms`, `2m`.
pub fn human(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else if d.as_secs() < 120 {
        let s = d.as_secs_f64();
        if s.fract() == 0.0 {
            format!("{}s", s as u64)
        } else {
            format!("{s:.1}s")
        }
    } else {
        format!("{}m", d.as_secs() / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_and_accepted_connections() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        // A port that was free a moment ago: bind, read the port, drop.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(connect_any(&[open], Duration::from_secs(2)).await, Ok(open));
        let err = connect_any(&[closed], Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(err.contains("connection refused"), "{err}");
        assert_eq!(
            connect_any(&[closed, open], Duration::from_secs(2)).await,
            Ok(open),
            "falls through to the next address"
        );
    }

    #[tokio::test]
    async fn unresolvable_hosts() {
        let r = resolve_all(
            &[
                ("kconn-no-such-host.invalid".into(), 9092),
                ("127.0.0.1".into(), 1),
            ],
            Duration::from_secs(5),
        )
        .await;
        assert!(r[0].is_err(), "{r:?}");
        assert_eq!(r[1].as_ref().unwrap()[0].port(), 1);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_secs(30)), "30s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_secs(300)), "5m");
    }
}
