//! The Lease of this process and the watch on everyone's: announce on start, renew every third of
//! the lease duration, release on shutdown; read all agent Leases of the namespace, and tell the
//! controller when the set of live members changes so that it re-decides ownership.

use crate::api::MANAGER;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Client;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{assign, Assignment, LeaseRecord, Member, Membership};

/// Label of agent Leases.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Its value.
pub const COMPONENT: &str = "kconn-agent";
/// Label holding the agent pool.
pub const POOL_LABEL: &str = "kconn.dev/agent-pool";
/// The Lease name of an identity.
pub fn lease_name(identity: &str) -> String {
    format!("kconn-agent-{identity}")
}

/// Why an agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// `--agent` or the identity cannot be used in a label or a name.
    #[error("{0}")]
    InvalidName(String),
    /// The API server refused.
    #[error("announcing the agent Lease: {0}")]
    Kube(#[from] kube::Error),
}

/// Checks that a pool name is a DNS label (it is a label value and a spec value).
pub fn check_pool(pool: &str) -> Result<(), AgentError> {
    let ok = !pool.is_empty()
        && pool.len() <= 63
        && pool
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !pool.starts_with('-')
        && !pool.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(AgentError::InvalidName(format!(
            "--agent {pool:?} is not a DNS label: use 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
        )))
    }
}

/// What the controller asks the agent.
pub struct Agent {
    membership: Mutex<Membership>,
    live: Mutex<Vec<Member>>,
    renewed_at: Mutex<Option<Instant>>,
    duration: Duration,
}

impl Agent {
    /// An agent that has not announced itself yet: it owns nothing until [`start`] renews its Lease.
    pub fn new(me: Member, duration: Duration) -> Self {
        Self {
            live: Mutex::new(Vec::new()),
            membership: Mutex::new(Membership::new(me)),
            renewed_at: Mutex::new(None),
            duration,
        }
    }

    /// An agent that counts itself live without a Lease (tests of the controller alone).
    #[cfg(test)]
    pub fn alone(me: Member) -> Self {
        Self {
            live: Mutex::new(vec![me.clone()]),
            membership: Mutex::new(Membership::new(me)),
            renewed_at: Mutex::new(Some(Instant::now())),
            duration: Duration::from_secs(3600),
        }
    }

    /// This process.
    pub fn me(&self) -> Member {
        self.membership.lock().expect("agent lock").me().clone()
    }

    /// The live members as last computed.
    pub fn live(&self) -> Vec<Member> {
        self.live.lock().expect("agent lock").clone()
    }

    /// Who handles connection `key` pinned to `pool`.
    pub fn assignment(&self, key: &str, pool: Option<&str>) -> Assignment {
        let live = self.live();
        assign(&self.me(), &live, key, pool)
    }

    fn me_renewed(&self, now: Instant) -> bool {
        self.renewed_at
            .lock()
            .expect("agent lock")
            .is_some_and(|t| now.duration_since(t) < self.duration)
    }

    /// Recomputes the live members from the Leases; returns whether the set changed.
    fn update(&self, leases: &[LeaseRecord]) -> bool {
        let now = Instant::now();
        let me_renewed = self.me_renewed(now);
        let live = {
            let mut ms = self.membership.lock().expect("agent lock");
            ms.observe(leases, now, chrono::Utc::now());
            ms.live(now, me_renewed)
        };
        let mut current = self.live.lock().expect("agent lock");
        if *current != live {
            *current = live;
            true
        } else {
            false
        }
    }
}

/// A member's Lease as this process trusts it: only a Lease named after its holder
/// (`kconn-agent-<holderIdentity>`, as every kconn writes its own) counts, and no Lease lasts longer
/// than `longest` (this process's own duration), so that one write with a duration of a year cannot
/// register a member that never expires and owns a share of the connections.
fn record(lease: &Lease, longest: Duration) -> Option<LeaseRecord> {
    let spec = lease.spec.as_ref()?;
    let pool = lease.metadata.labels.as_ref()?.get(POOL_LABEL)?.clone();
    let identity = spec.holder_identity.clone()?;
    if lease.metadata.name.as_deref() != Some(lease_name(&identity).as_str()) {
        return None;
    }
    let claimed = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64);
    Some(LeaseRecord {
        member: Member { identity, pool },
        renew_time: spec
            .renew_time
            .as_ref()
            .map(|t| crate::schedule::chrono_of(t.0)),
        duration: claimed.min(longest.max(Duration::from_secs(1))),
    })
}

fn lease_object(me: &Member, duration: Duration) -> serde_json::Value {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(&me.identity),
            "labels": {
                "app.kubernetes.io/managed-by": MANAGER,
                COMPONENT_LABEL: COMPONENT,
                POOL_LABEL: me.pool,
            },
        },
        "spec": {
            "holderIdentity": me.identity,
            "leaseDurationSeconds": duration.as_secs().max(1),
            "renewTime": now,
        }
    })
}

/// Writes this process's Lease (create or renew), within a third of the lease duration.
async fn renew(api: &Api<Lease>, me: &Member, duration: Duration) -> Result<(), kube::Error> {
    let params = PatchParams::apply(MANAGER).force();
    let (name, patch) = (
        lease_name(&me.identity),
        Patch::Apply(lease_object(me, duration)),
    );
    let call = api.patch(&name, &params, &patch);
    match tokio::time::timeout(duration / 3, call).await {
        Ok(r) => r.map(|_| ()),
        Err(_) => Err(kube::Error::Service(
            "the Lease renewal did not answer in time".into(),
        )),
    }
}

/// Announces this process, then keeps its Lease renewed and the membership current in the
/// background. `changed` gets a message whenever the live set changes. Waits (up to one lease
/// duration) for the first renewal and the first Lease list, so that the first decisions already know
/// the other members. A process whose Lease cannot be written (e.g. RBAC) keeps trying and owns
/// nothing meanwhile; only an unusable pool name or identity is an error.
pub async fn start(
    client: Client,
    namespace: &str,
    agent: Arc<Agent>,
    changed: mpsc::UnboundedSender<()>,
) -> Result<(), AgentError> {
    let me = agent.me();
    check_pool(&me.pool)?;
    let name = lease_name(&me.identity);
    if name.len() > 253 {
        return Err(AgentError::InvalidName(format!(
            "the agent identity {:?} is too long for a Lease name; set --pod-name",
            me.identity
        )));
    }
    let api: Api<Lease> = Api::namespaced(client, namespace);

    // Renewals, the first one at once.
    let (renew_api, renew_agent, renew_ns) = (api.clone(), agent.clone(), namespace.to_string());
    let (announced_tx, mut announced) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(renew_agent.duration / 3);
        let mut announced = false;
        loop {
            tick.tick().await;
            match renew(&renew_api, &me, renew_agent.duration).await {
                Ok(()) => {
                    *renew_agent.renewed_at.lock().expect("agent lock") = Some(Instant::now());
                    if !announced {
                        announced = true;
                        info!(lease = %lease_name(&me.identity), namespace = %renew_ns, pool = %me.pool, "agent announced");
                        let _ = announced_tx.send(true);
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot renew the agent Lease; this process owns no connection until it can")
                }
            }
        }
    });

    // Everyone's Leases, and a tick that notices expiries (which no watch event announces).
    let (store, writer) = reflector::store::<Lease>();
    let config = watcher::Config::default().labels(&format!("{COMPONENT_LABEL}={COMPONENT}"));
    let watch = reflector::reflector(writer, watcher(api, config))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        let mut watch = std::pin::pin!(watch);
        while let Some(event) = watch.next().await {
            if let Err(e) = event {
                warn!(error = %e, "watching agent Leases");
            }
        }
    });
    let deadline = tokio::time::Instant::now() + agent.duration;
    let synced = async {
        crate::watch::synced(&store).await;
        let _ = announced.wait_for(|a| *a).await;
    };
    if tokio::time::timeout_at(deadline, synced).await.is_err() {
        warn!("the agent Leases could not be written or read yet; going on, owning nothing until they can");
    }
    let longest = agent.duration;
    let read = move |store: &reflector::Store<Lease>| -> Vec<LeaseRecord> {
        store
            .state()
            .iter()
            .filter_map(|l| record(l, longest))
            .collect()
    };
    agent.update(&read(&store));
    let tick_agent = agent.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if tick_agent.update(&read(&store)) {
                let live = tick_agent.live();
                let pools: BTreeMap<&str, usize> = live.iter().fold(BTreeMap::new(), |mut m, x| {
                    *m.entry(x.pool.as_str()).or_default() += 1;
                    m
                });
                info!(members = live.len(), ?pools, "agent membership changed");
                if changed.send(()).is_err() {
                    break;
                }
            }
        }
    });
    Ok(())
}

/// Releases this process's Lease, so that the others take over at once.
pub async fn release(client: Client, namespace: &str, me: &Member) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let (name, params) = (lease_name(&me.identity), DeleteParams::default());
    let call = api.delete(&name, &params);
    match tokio::time::timeout(Duration::from_secs(5), call).await {
        Ok(Ok(_)) => info!("agent Lease released"),
        Ok(Err(e)) => warn!(error = %e, "cannot release the agent Lease"),
        Err(_) => warn!("releasing the agent Lease did not answer in time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_are_dns_labels() {
        for ok in ["default", "vpc-a", "a", "zone-1b"] {
            assert!(check_pool(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "VPC", "a_b", &"x".repeat(64)] {
            let e = check_pool(bad).unwrap_err().to_string();
            assert!(e.contains("--agent") && e.contains("DNS label"), "{e}");
        }
    }

    #[test]
    fn a_lease_announces_identity_pool_and_duration() {
        let me = Member {
            identity: "kconn-0".into(),
            pool: "vpc-a".into(),
        };
        let lease: Lease =
            serde_json::from_value(lease_object(&me, Duration::from_secs(15))).unwrap();
        assert_eq!(lease.metadata.name.as_deref(), Some("kconn-agent-kconn-0"));
        let r = record(&lease, Duration::from_secs(15)).unwrap();
        assert_eq!(r.member, me);
        assert_eq!(r.duration, Duration::from_secs(15));
        assert!(r.renew_time.is_some());
    }

    #[test]
    fn forged_leases_do_not_count_or_last_for_ever() {
        let me = Member {
            identity: "kconn-0".into(),
            pool: "vpc-a".into(),
        };
        let mut forged = lease_object(&me, Duration::from_secs(31_536_000));
        let lease: Lease = serde_json::from_value(forged.clone()).unwrap();
        let r = record(&lease, Duration::from_secs(15)).unwrap();
        assert_eq!(r.duration, Duration::from_secs(15), "capped to our own");
        // Another Lease claiming to be kconn-0's holder does not count.
        forged["metadata"]["name"] = "kconn-agent-someone-else".into();
        let lease: Lease = serde_json::from_value(forged).unwrap();
        assert!(record(&lease, Duration::from_secs(15)).is_none());
    }
}
