//! DNS and TCP: BootstrapResolved, BrokersReachable and the reachability of advertised brokers. Every
//! address is worked on in parallel, each bounded by its own timeout.

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;
use futures::StreamExt;
use tokio::net::TcpStream;

use tokio::time::timeout_at;

use super::engine::{skipped, Test};
use super::{bounded_list, row, session, tls, MAX_NAMED};
use crate::api::{Check, CheckReport, CheckResult, Reason};
use crate::kafka::{api_versions, ClusterView, Kafka, TlsMaterial};
use crate::validate;

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

/// Resolves one `(host, port)` within `timeout`; `Err` says why it has no address.
pub async fn resolve(host: &str, port: u16, timeout: Duration) -> Resolution {
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
/// Each waits for its place in the broker's budget first (not counted in `timeout`).
pub async fn connect_any(addrs: &[SocketAddr], timeout: Duration) -> Result<SocketAddr, String> {
    open_any(addrs, timeout).await.map(|(addr, _)| addr)
}

/// [`connect_any`], keeping the connection.
async fn open_any(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(SocketAddr, TcpStream), String> {
    let mut last = "no address to connect to".to_string();
    for addr in addrs {
        crate::budget::global().wait(*addr).await;
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok((*addr, stream)),
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

/// The ApiVersions answer of the first reachable bootstrap server (over TLS when the listener is
/// encrypted): which requests the brokers serve, API key to (min, max) version. A plain listener is
/// asked over `open`, the connection BrokersReachable kept, when there is one: a broker is not asked
/// for a new connection it was just given.
pub async fn api_versions(
    reached: &[(String, SocketAddr)],
    tls: Option<TlsMaterial>,
    open: Option<std::net::TcpStream>,
    timeout: Duration,
) -> Result<crate::kafka::api_versions::Versions, String> {
    let Some((host, addr)) = reached.first().cloned() else {
        return Err("no reachable bootstrap server".into());
    };
    let task = tokio::task::spawn_blocking(move || match &tls {
        Some(material) => {
            let name = material.server_name.clone().unwrap_or(host);
            let mut stream = super::tls::connect_broker(addr, &name, material, timeout)
                .map_err(|e| e.to_string())?;
            api_versions::exchange(&mut stream)
        }
        None => {
            let mut stream = match open.filter(|s| s.peer_addr().ok() == Some(addr)) {
                Some(stream) => {
                    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
                    stream
                }
                None => {
                    crate::budget::global().wait_blocking(addr);
                    std::net::TcpStream::connect_timeout(&addr, timeout)
                        .map_err(|e| e.to_string())?
                }
            };
            stream
                .set_read_timeout(Some(timeout))
                .and_then(|_| stream.set_write_timeout(Some(timeout)))
                .map_err(|e| e.to_string())?;
            api_versions::exchange(&mut stream)
        }
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

/// The BootstrapResolved step: DNS for each bootstrap host.
pub(super) async fn bootstrap_resolved<K: Kafka>(t: &mut Test<'_, K>) -> CheckReport {
    let valid = t.valid();
    let targets: Vec<(String, u16)> = valid
        .bootstrap
        .iter()
        .map(|hp| (hp.host.clone(), hp.port))
        .collect();
    let resolved = match timeout_at(t.deadline, resolve_all(&targets, t.per_address)).await {
        Ok(r) => r,
        Err(_) => targets
            .iter()
            .map(|_| Err("the test ran out of time".to_string()))
            .collect(),
    };
    let row = bootstrap_row(&valid.bootstrap, &resolved);
    t.resolved = resolved;
    row
}

/// The BrokersReachable step: TCP to each bootstrap server that resolved.
pub(super) async fn brokers_reachable<K: Kafka>(t: &mut Test<'_, K>) -> CheckReport {
    let per_address = t.per_address;
    let attempts = join_all(t.resolved.iter().map(|r| async move {
        match r {
            Ok(addrs) => open_any(addrs, per_address).await,
            Err(_) => Err("not resolved".to_string()),
        }
    }));
    match timeout_at(t.deadline, attempts).await {
        Ok(opened) => {
            // The first connection stays open for the ApiVersions request, the others close.
            let mut results = Vec::with_capacity(opened.len());
            for r in opened {
                results.push(match r {
                    Ok((addr, stream)) => {
                        if t.kept.is_none() {
                            t.kept = stream.into_std().ok();
                        }
                        Ok(addr)
                    }
                    Err(e) => Err(e),
                });
            }
            let bootstrap = &t.valid().bootstrap;
            t.reached = bootstrap
                .iter()
                .zip(&results)
                .filter_map(|(hp, r)| r.as_ref().ok().map(|a| (hp.host.clone(), *a)))
                .collect();
            reach_row(bootstrap, &results)
        }
        Err(_) => t.timed_out(Check::BrokersReachable),
    }
}

/// The AdvertisedListeners step: every broker the cluster advertises accepts TCP from here and, over
/// TLS, presents a certificate every client will accept (`tls.serverName`, or else its own host).
pub(super) async fn advertised_listeners<K: Kafka>(t: &mut Test<'_, K>) -> CheckReport {
    if let Some(brokers) = &t.advertised_failure {
        return session::advertised_unreachable(
            Check::AdvertisedListeners,
            brokers,
            "clients fail after their first metadata request",
        );
    }
    let Some(view) = &t.view else {
        return skipped(
            Check::AdvertisedListeners,
            Reason::DependencyFailed,
            "Authenticated did not pass",
        );
    };
    // A cluster may advertise up to 10,000 brokers: the first MAX_ADVERTISED are tried.
    let targets: Vec<(String, u16)> = view
        .brokers
        .iter()
        .take(MAX_ADVERTISED)
        .map(|b| (b.host.clone(), b.port))
        .collect();
    let material = t.settings.as_ref().and_then(|s| s.tls.clone());
    let (per_address, now) = (t.per_address, t.input.now);
    // An advertised broker that is a bootstrap server BrokersReachable reached moments ago is not
    // dialled again (the brokers of managed clusters are often their own bootstrap servers).
    let known: Vec<Option<SocketAddr>> = targets
        .iter()
        .map(|(host, port)| {
            t.reached
                .iter()
                .find(|(h, a)| h.eq_ignore_ascii_case(host) && a.port() == *port)
                .map(|(_, a)| *a)
        })
        .collect();
    let reach = async {
        let unknown: Vec<(String, u16)> = targets
            .iter()
            .zip(&known)
            .filter(|(_, k)| k.is_none())
            .map(|(t, _)| t.clone())
            .collect();
        let mut dialled = reach_all(&unknown, per_address).await.into_iter();
        let results: Vec<Result<SocketAddr, String>> = known
            .iter()
            .map(|k| match k {
                Some(addr) => Ok(*addr),
                None => dialled
                    .next()
                    .unwrap_or_else(|| Err("not dialled".to_string())),
            })
            .collect();
        let Some(material) = material else {
            return (results, Vec::new());
        };
        let reached: Vec<(String, SocketAddr)> = targets
            .iter()
            .zip(&results)
            .filter_map(|((host, _), r)| r.as_ref().ok().map(|a| (host.clone(), *a)))
            .collect();
        let verified = tls::verify_all(reached.clone(), material, per_address, now).await;
        let failures = reached
            .into_iter()
            .zip(verified)
            .filter_map(|((_, addr), r)| r.err().map(|e| (addr, e)))
            .collect();
        (results, failures)
    };
    match timeout_at(t.deadline, reach).await {
        Ok((results, tls_failures)) => advertised_row(view, &results, &tls_failures),
        Err(_) => t.timed_out(Check::AdvertisedListeners),
    }
}

fn bootstrap_row(servers: &[validate::HostPort], results: &[Resolution]) -> CheckReport {
    let failed: Vec<(usize, &str)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e.as_str())))
        .collect();
    let detail = |&(i, e): &(usize, &str)| format!("{}: {e}", servers[i].host);
    match failed.len() {
        0 => row(
            Check::BootstrapResolved,
            CheckResult::Passed,
            Reason::Resolved,
            format!("{} of {} hosts resolved", servers.len(), servers.len()),
            None,
            None,
        ),
        n => {
            let field = Some(format!("spec.bootstrapServers[{}]", failed[0].0));
            let message = format!(
                "{} of {} hosts resolved; {}",
                servers.len() - n,
                servers.len(),
                failed.iter().map(detail).collect::<Vec<_>>().join("; ")
            );
            let hint = Some("check the host names for typos; from inside the cluster, use the brokers' Service DNS names (e.g. kafka-0.kafka.<namespace>.svc)".to_string());
            if n == servers.len() {
                row(
                    Check::BootstrapResolved,
                    CheckResult::Failed,
                    Reason::UnresolvableHosts,
                    message,
                    hint,
                    field,
                )
            } else {
                row(
                    Check::BootstrapResolved,
                    CheckResult::Warning,
                    Reason::SomeHostsUnresolved,
                    message,
                    hint,
                    field,
                )
            }
        }
    }
}

/// How many unreachable servers a BrokersReachable message names one by one.
const MAX_NAMED_FAILURES: usize = 5;

fn reach_row(
    servers: &[validate::HostPort],
    results: &[Result<SocketAddr, String>],
) -> CheckReport {
    let failed: Vec<(usize, &str)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e.as_str())))
        .collect();
    let total = servers.len();
    match failed.len() {
        0 => row(
            Check::BrokersReachable,
            CheckResult::Passed,
            Reason::AllBrokersReachable,
            format!("{total} of {total} reachable"),
            None,
            None,
        ),
        n => {
            // The first few failures by name; a status message stays readable with 64 servers.
            let mut named: Vec<String> = failed
                .iter()
                .take(MAX_NAMED_FAILURES)
                .map(|&(i, e)| format!("{}: {e}", servers[i]))
                .collect();
            if n > MAX_NAMED_FAILURES {
                named.push(format!("and {} more", n - MAX_NAMED_FAILURES));
            }
            let message = format!("{} of {total} reachable; {}", total - n, named.join("; "));
            let field = Some(format!("spec.bootstrapServers[{}]", failed[0].0));
            if n == total {
                let hint = "check the ports (a listener's port, not the controller's), that the brokers run, and that network policies and firewalls let this agent through";
                row(
                    Check::BrokersReachable,
                    CheckResult::Failed,
                    Reason::NoBrokerReachable,
                    message,
                    Some(hint.into()),
                    field,
                )
            } else {
                let hint = "the connection works through the other servers; fix or remove the unreachable entries so a restart of the reachable brokers does not cut pipelines off";
                row(
                    Check::BrokersReachable,
                    CheckResult::Warning,
                    Reason::SomeBrokersUnreachable,
                    message,
                    Some(hint.into()),
                    field,
                )
            }
        }
    }
}

/// How many advertised brokers a test connects to; a cluster that advertises more gets a warning.
pub const MAX_ADVERTISED: usize = 256;

pub(super) fn advertised_row(
    view: &ClusterView,
    results: &[Result<std::net::SocketAddr, String>],
    tls_failures: &[(SocketAddr, tls::TlsError)],
) -> CheckReport {
    let failed: Vec<String> = view
        .brokers
        .iter()
        .zip(results)
        .filter_map(|(b, r)| {
            r.as_ref()
                .err()
                .map(|e| format!("broker {} advertises {}:{}: {e}", b.id, b.host, b.port))
        })
        .collect();
    let advertised = view.brokers.len();
    if failed.is_empty() {
        if let Some((_, first)) = tls_failures.first() {
            let named: Vec<String> = view
                .brokers
                .iter()
                .zip(results)
                .filter_map(|(b, r)| {
                    let addr = r.as_ref().ok()?;
                    let (_, e) = tls_failures.iter().find(|(a, _)| a == addr)?;
                    Some(format!(
                        "broker {} advertises {}:{}: {e}",
                        b.id, b.host, b.port
                    ))
                })
                .collect();
            let (why, field, hint) = tls::failure_kind(first);
            return row(
                Check::AdvertisedListeners,
                CheckResult::Failed,
                why,
                format!(
                    "the bootstrap servers answered, but {}; clients fail when they connect to those brokers",
                    bounded_list(&named, MAX_NAMED)
                ),
                Some(format!("the brokers the cluster advertises present these certificates: {hint}")),
                Some(field.into()),
            );
        }
    }
    if failed.is_empty() && advertised > results.len() {
        return row(
            Check::AdvertisedListeners,
            CheckResult::Warning,
            Reason::TooManyBrokers,
            format!(
                "the cluster advertises {advertised} brokers; the first {} accept connections from here, the others were not tried",
                results.len()
            ),
            Some(format!("kconn connects to at most {MAX_ADVERTISED} advertised brokers per test; check that the bootstrap servers belong to the cluster you mean")),
            Some("spec.bootstrapServers".into()),
        );
    }
    if failed.is_empty() {
        return row(
            Check::AdvertisedListeners,
            CheckResult::Passed,
            Reason::AdvertisedListenersReachable,
            format!("all {advertised} advertised broker addresses accept connections from here"),
            None,
            None,
        );
    }
    row(
        Check::AdvertisedListeners,
        CheckResult::Failed,
        Reason::AdvertisedListenerUnreachable,
        format!("the bootstrap servers answered, but {}; clients fail after their first metadata request", bounded_list(&failed, MAX_NAMED)),
        Some("the brokers' advertised.listeners must name addresses reachable from this network: use the listener meant for clients outside the brokers' network, or fix advertised.listeners on the brokers".into()),
        Some("spec.bootstrapServers".into()),
    )
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
