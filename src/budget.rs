//! What a fleet of connections may ask of one Kafka cluster: new connections per broker per second,
//! and tests at once per cluster. Many KafkaConnections often point at the same few clusters, and
//! every test opens fresh sessions; without a budget the fleet itself would trip the brokers'
//! connection quotas (AWS MSK with IAM accepts 20 new connections per broker per second) and report
//! the failures it caused.
//!
//! - Every connection kconn opens to a broker, its own probes and librdkafka's (through the connect
//!   callback), first takes a place in that broker's window: at most `rate` connections in any
//!   [`WINDOW`]. The limit is exact, whatever runs at once.
//! - A test starts only when its cluster (its bootstrap servers, or its cluster id once known) has
//!   fewer than `tests` running, at its turn: turns come no faster than the test's connections take
//!   at `rate` ([`connections_per_test`]), nor than the cluster's tests end. A reconcile whose turn
//!   is far ahead comes back then, holding nothing meanwhile.
//!
//! Waiting is never a failure: the wait before a test is `status.budgetWaitMs`; a wait inside one is
//! part of its checks' durations, and never counts against a check's timeout.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The window of the per-broker limit (a little over a second, so that no one-second count, however
/// it is aligned, sees more than the rate).
pub const WINDOW: Duration = Duration::from_millis(1050);

/// The connections one test opens to one broker, as counted on the broker's side (`tests/budget.rs`).
/// A bootstrap server that is also the only broker gets them all: the TCP probe (kept open for the
/// ApiVersions request) and librdkafka's bootstrap and broker sessions; over TLS also the handshake of
/// TlsHandshake, the ApiVersions request's own and the advertised-listener check's.
pub fn connections_per_test(tls: bool) -> u32 {
    if tls {
        6
    } else {
        3
    }
}

/// The default new connections per broker per second: half the lowest common quota (AWS MSK with
/// IAM, 20 per broker per second).
pub const DEFAULT_RATE: u32 = 10;

/// The default tests at once per cluster.
pub const DEFAULT_TESTS: u32 = 4;

/// How many brokers and clusters the budget remembers at most; the idle ones are forgotten first.
const MAX_ENTRIES: usize = 65_536;

/// The budget's settings (`kconn run --broker-connection-rate`, `--cluster-tests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// New connections per broker per second; 0: no limit.
    pub rate: u32,
    /// Tests at once per cluster; 0: no limit.
    pub tests: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rate: DEFAULT_RATE,
            tests: DEFAULT_TESTS,
        }
    }
}

/// The budgets of this process.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    /// Per broker address: the times granted (ascending, some maybe still ahead).
    brokers: Mutex<HashMap<SocketAddr, VecDeque<Instant>>>,
    clusters: Mutex<HashMap<String, Cluster>>,
}

#[derive(Debug)]
struct Cluster {
    running: Arc<tokio::sync::Semaphore>,
    /// The turn given last.
    last_start: Option<tokio::time::Instant>,
    /// The turns booked and not yet taken, by connection uid.
    booked: HashMap<String, Turn>,
    /// How long the cluster's tests take (a moving average): turns come no faster than `tests` of
    /// them end, so a cluster whose tests are slow (an endpoint that never answers) is not given
    /// turns that would only wait for a place.
    took: Arc<Mutex<Option<Duration>>>,
}

/// A booked turn: when the test may start, and when it asked.
#[derive(Debug, Clone, Copy)]
struct Turn {
    start: tokio::time::Instant,
    since: tokio::time::Instant,
}

/// A test's place among its cluster's running tests; dropping it frees the place (and records how
/// long the test took).
#[derive(Debug)]
pub struct Admission {
    _running: Option<tokio::sync::OwnedSemaphorePermit>,
    /// How long the test waited for it.
    pub waited: Duration,
    admitted: tokio::time::Instant,
    took: Arc<Mutex<Option<Duration>>>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let took = self.admitted.elapsed();
        if let Ok(mut average) = self.took.lock() {
            *average = Some(match *average {
                Some(a) => (a * 4 + took) / 5,
                None => took,
            });
        }
    }
}

static GLOBAL: OnceLock<Budget> = OnceLock::new();

/// Sets this process's limits (once, before the first test; later calls change nothing).
pub fn configure(limits: Limits) {
    let _ = GLOBAL.set(Budget::new(limits));
}

/// This process's budget (the defaults when [`configure`] was not called).
pub fn global() -> &'static Budget {
    GLOBAL.get_or_init(|| Budget::new(Limits::default()))
}

impl Budget {
    /// A budget with these limits.
    pub fn new(limits: Limits) -> Self {
        Budget {
            limits,
            brokers: Mutex::default(),
            clusters: Mutex::default(),
        }
    }

    /// Its limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes the next place in `addr`'s window: the time at which a new connection to it may be
    /// opened (now, or later when `rate` connections were granted within the last [`WINDOW`]).
    pub fn reserve(&self, addr: SocketAddr, now: Instant) -> Instant {
        let rate = self.limits.rate as usize;
        if rate == 0 {
            return now;
        }
        let mut brokers = self.brokers.lock().expect("budget lock");
        if brokers.len() >= MAX_ENTRIES && !brokers.contains_key(&addr) {
            brokers.retain(|_, granted| granted.back().is_some_and(|t| *t + WINDOW > now));
        }
        let granted = brokers.entry(addr).or_default();
        while granted.front().is_some_and(|t| *t + WINDOW <= now) {
            granted.pop_front();
        }
        let earliest = granted.back().map_or(now, |t| (*t).max(now));
        // Grants are ascending: the rate-th latest one decides whether `earliest` is free.
        let at = match granted.len().checked_sub(rate).map(|i| granted[i]) {
            Some(t) if t + WINDOW > earliest => t + WINDOW,
            _ => earliest,
        };
        granted.push_back(at);
        at
    }

    /// Takes the next place in `addr`'s window; returns how long until it.
    fn delay(&self, addr: SocketAddr) -> Duration {
        let now = Instant::now();
        self.reserve(addr, now).saturating_duration_since(now)
    }

    /// Waits for a place in `addr`'s window (a librdkafka or a blocking thread); returns the wait.
    pub fn wait_blocking(&self, addr: SocketAddr) -> Duration {
        let wait = self.delay(addr);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        wait
    }

    /// Waits for a place in `addr`'s window; returns the wait.
    pub async fn wait(&self, addr: SocketAddr) -> Duration {
        let wait = self.delay(addr);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }

    /// Books the turn of a test of `cluster` for connection `uid` at the cluster's pace (or returns
    /// the turn it already has): when it may start. A reconcile whose turn is far ahead looks again
    /// then, holding nothing meanwhile.
    pub fn book(&self, cluster: &str, uid: &str, connections: u32) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let mut clusters = self.clusters.lock().expect("budget lock");
        self.forget_idle(&mut clusters, cluster);
        let entry = clusters
            .entry(cluster.to_string())
            .or_insert_with(|| Cluster::new(self.limits.tests));
        if let Some(turn) = entry.booked.get(uid) {
            return turn.start;
        }
        let took = *entry.took.lock().expect("budget lock");
        let spacing = match (self.spacing(connections), took, self.limits.tests) {
            (pace, Some(took), tests) if tests > 0 => {
                Some(pace.unwrap_or_default().max(took / tests))
            }
            (pace, _, _) => pace,
        };
        let start = match (spacing, entry.last_start) {
            (Some(spacing), Some(last)) => (last + spacing).max(now),
            _ => now,
        };
        entry.last_start = Some(start);
        if entry.booked.len() < MAX_ENTRIES {
            entry
                .booked
                .insert(uid.to_string(), Turn { start, since: now });
        }
        start
    }

    /// Waits for the booked turn (booking one if there is none) and a place among the cluster's
    /// running tests; the admission says how long the test waited since it first asked.
    pub async fn admit(&self, cluster: &str, uid: &str, connections: u32) -> Admission {
        let start = self.book(cluster, uid, connections);
        tokio::time::sleep_until(start).await;
        let (turn, running, took) = {
            let mut clusters = self.clusters.lock().expect("budget lock");
            let entry = clusters
                .entry(cluster.to_string())
                .or_insert_with(|| Cluster::new(self.limits.tests));
            (
                entry.booked.remove(uid),
                entry.running.clone(),
                entry.took.clone(),
            )
        };
        let permit = match self.limits.tests {
            0 => None,
            _ => running.acquire_owned().await.ok(),
        };
        let since = turn.map_or(start, |t| t.since);
        let admitted = tokio::time::Instant::now();
        Admission {
            _running: permit,
            waited: admitted.saturating_duration_since(since),
            admitted,
            took,
        }
    }

    /// Drops the turns booked for connections `live` says are gone.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        let mut clusters = self.clusters.lock().expect("budget lock");
        for c in clusters.values_mut() {
            c.booked.retain(|uid, _| live(uid));
        }
    }

    /// The least time between two test starts on one cluster, for tests of `connections` each.
    fn spacing(&self, connections: u32) -> Option<Duration> {
        (self.limits.rate > 0).then(|| WINDOW * connections / self.limits.rate)
    }

    fn forget_idle(&self, clusters: &mut HashMap<String, Cluster>, keep: &str) {
        if clusters.len() < MAX_ENTRIES || clusters.contains_key(keep) {
            return;
        }
        let now = tokio::time::Instant::now();
        let spacing = self.spacing(connections_per_test(true)).unwrap_or_default();
        let tests = self.limits.tests as usize;
        clusters.retain(|_, c| {
            let idle =
                (tests == 0 || c.running.available_permits() == tests) && c.booked.is_empty();
            !idle || c.last_start.is_some_and(|t| t + spacing > now)
        });
    }
}

impl Cluster {
    fn new(tests: u32) -> Self {
        Cluster {
            running: Arc::new(tokio::sync::Semaphore::new(tests.max(1) as usize)),
            last_start: None,
            booked: HashMap::new(),
            took: Arc::default(),
        }
    }
}

/// The key of a connection's cluster: its id once a test learned it, else its bootstrap servers.
pub fn cluster_key(
    cluster_id: Option<&str>,
    bootstrap: impl IntoIterator<Item = impl AsRef<str>>,
) -> String {
    match cluster_id.filter(|id| !id.is_empty()) {
        Some(id) => format!("id:{id}"),
        None => {
            let mut servers: Vec<String> = bootstrap
                .into_iter()
                .map(|s| s.as_ref().to_lowercase())
                .collect();
            servers.sort();
            servers.dedup();
            format!("bootstrap:{}", servers.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// The most grants within any span of `window` (the grants ascending).
    fn most_within(grants: &[Instant], window: Duration) -> usize {
        (0..grants.len())
            .map(|i| {
                grants[i..]
                    .iter()
                    .take_while(|t| **t < grants[i] + window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn no_window_ever_holds_more_than_the_rate() {
        let budget = Budget::new(Limits { rate: 5, tests: 0 });
        let start = Instant::now();
        // 60 connections asked for at once, then more while the first are waiting.
        let mut grants: Vec<Instant> = (0..60).map(|_| budget.reserve(addr(1), start)).collect();
        let later = start + Duration::from_millis(2300);
        grants.extend((0..20).map(|_| budget.reserve(addr(1), later)));
        assert!(grants.windows(2).all(|w| w[0] <= w[1]), "in order");
        assert_eq!(most_within(&grants, WINDOW), 5);
        // The first five at once; 80 at 5 per window take 15 windows more.
        assert_eq!(grants[4], start);
        assert_eq!(grants[5], start + WINDOW);
        assert_eq!(*grants.last().unwrap(), start + WINDOW * 15);
        // Another broker has its own window.
        assert_eq!(budget.reserve(addr(2), start), start);
        // After a quiet window, a connection goes at once.
        let quiet = *grants.last().unwrap() + WINDOW;
        assert_eq!(budget.reserve(addr(1), quiet), quiet);
    }

    #[test]
    fn without_a_rate_nothing_waits() {
        let budget = Budget::new(Limits { rate: 0, tests: 0 });
        let now = Instant::now();
        assert!((0..1000).all(|_| budget.reserve(addr(1), now) == now));
    }

    #[tokio::test(start_paused = true)]
    async fn tests_of_one_cluster_take_turns_at_its_pace_and_never_too_many_at_once() {
        let budget = Arc::new(Budget::new(Limits { rate: 12, tests: 2 }));
        let spacing = budget.spacing(5).unwrap();
        assert_eq!(
            spacing,
            WINDOW * 5 / 12,
            "5 connections per test at 12 per window"
        );
        let t0 = tokio::time::Instant::now();
        // Turns at the pace; asking again returns the same turn.
        assert_eq!(budget.book("a", "u1", 5), t0);
        assert_eq!(budget.book("a", "u2", 5), t0 + spacing);
        assert_eq!(budget.book("a", "u2", 5), t0 + spacing);
        assert_eq!(budget.book("a", "u3", 5), t0 + spacing * 2);
        assert_eq!(
            budget.book("b", "v1", 5),
            t0,
            "another cluster has its own pace"
        );
        let first = budget.admit("a", "u1", 5).await;
        assert!(first.waited.is_zero());
        let second = budget.admit("a", "u2", 5).await;
        // (The paused clock wakes timers on whole milliseconds.)
        let close = |a: Duration, b: Duration| a.abs_diff(b) <= Duration::from_millis(1);
        assert!(
            close(second.waited, spacing),
            "waited for its turn, counted from when it asked: {:?}",
            second.waited
        );
        // Two are running: the third waits for one to end.
        let b = budget.clone();
        let third = tokio::spawn(async move { b.admit("a", "u3", 5).await });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!third.is_finished(), "two tests of the cluster are running");
        assert!(budget.admit("b", "v2", 5).await.waited.is_zero());
        drop(first);
        let third = third.await.unwrap();
        assert!(
            close(third.waited, Duration::from_secs(5) + spacing),
            "{:?}",
            third.waited
        );
        drop((second, third));
        // A connection that is gone gives its turn up.
        budget.book("a", "gone", 5);
        budget.retain(|uid| uid != "gone");
        let clusters = budget.clusters.lock().unwrap();
        assert!(clusters["a"].booked.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cluster_whose_tests_are_slow_gets_turns_no_faster_than_they_end() {
        let budget = Budget::new(Limits {
            rate: 100,
            tests: 2,
        });
        let pace = budget.spacing(5).unwrap();
        let t0 = tokio::time::Instant::now();
        assert_eq!(budget.book("slow", "a", 5), t0);
        assert_eq!(budget.book("slow", "b", 5), t0 + pace);
        let a = budget.admit("slow", "a", 5).await;
        tokio::time::sleep(Duration::from_secs(10)).await; // the test takes 10 s
        drop(a);
        // Two at once, 10 s each: a turn every 5 s, not every `pace`.
        let now = tokio::time::Instant::now();
        let c = budget.book("slow", "c", 5);
        let d = budget.book("slow", "d", 5);
        assert_eq!(d - c, Duration::from_secs(5));
        assert!(c >= now);
    }

    #[test]
    fn a_cluster_is_its_id_or_its_bootstrap_servers() {
        let servers = vec!["B:9092".to_string(), "a:9092".into(), "b:9092".into()];
        assert_eq!(cluster_key(None, &servers), "bootstrap:a:9092,b:9092");
        assert_eq!(cluster_key(Some(""), &servers), "bootstrap:a:9092,b:9092");
        assert_eq!(cluster_key(Some("xyz"), &servers), "id:xyz");
    }
}
