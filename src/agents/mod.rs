//! Agents: each `kconn run` process belongs to a pool and announces itself with a Lease. This module
//! decides, as pure functions, who is alive and who owns which connection; `lease` does the I/O.
//!
//! Liveness is judged by this process's own clock: a member is live while its Lease's `renewTime`
//! has been seen to change within the lease duration (plus a grace), so a skewed clock on another
//! node does not kill or resurrect it. A Lease seen for the first time whose `renewTime` is already
//! older than twice its duration by the wall clock is a leftover and is not counted.
//!
//! Ownership is rendezvous hashing: every eligible live member scores each connection by a stable
//! hash of (member, connection) and the highest score owns it. A member joining or leaving moves only
//! the connections it wins or held.

pub mod lease;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// One live process.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    /// Its identity (the pod name).
    pub identity: String,
    /// Its agent pool.
    pub pool: String,
}

/// A Lease as read from the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The member it announces.
    pub member: Member,
    /// `spec.renewTime` as written (compared for change, never against our clock except once).
    pub renew_time: Option<chrono::DateTime<chrono::Utc>>,
    /// `spec.leaseDurationSeconds`.
    pub duration: Duration,
}

#[derive(Debug, Clone)]
struct Seen {
    record: LeaseRecord,
    /// When this process last saw `renew_time` change (or first saw the Lease).
    changed_at: Instant,
    /// A leftover Lease: stale on first sight and unchanged since.
    stale: bool,
}

/// Extra time a member is given beyond its lease duration before it is counted dead.
pub const GRACE: Duration = Duration::from_secs(2);

/// The members this process has seen, and when it saw each renew.
#[derive(Debug, Clone)]
pub struct Membership {
    me: Member,
    seen: BTreeMap<String, Seen>,
}

impl Membership {
    /// A membership that knows only this process.
    pub fn new(me: Member) -> Self {
        Self {
            me,
            seen: BTreeMap::new(),
        }
    }

    /// This process.
    pub fn me(&self) -> &Member {
        &self.me
    }

    /// Takes in the current Leases (all of them: a Lease absent here was released).
    pub fn observe(
        &mut self,
        leases: &[LeaseRecord],
        now: Instant,
        wall: chrono::DateTime<chrono::Utc>,
    ) {
        let mut next = BTreeMap::new();
        for record in leases {
            let key = record.member.identity.clone();
            let seen = match self.seen.remove(&key) {
                Some(old) if old.record.renew_time == record.renew_time => Seen {
                    record: record.clone(),
                    ..old
                },
                Some(_) => Seen {
                    record: record.clone(),
                    changed_at: now,
                    stale: false,
                },
                None => {
                    let stale = record.renew_time.is_none_or(|t| {
                        let age = (wall - t).to_std().unwrap_or_default();
                        age > record.duration * 2
                    });
                    Seen {
                        record: record.clone(),
                        changed_at: now,
                        stale,
                    }
                }
            };
            next.insert(key, seen);
        }
        self.seen = next;
    }

    /// The live members, sorted. This process counts while its own renewals succeed
    /// (`me_renewed`), whatever its Lease looked like when last read; when they fail, it steps back
    /// so that the others, who will soon count it dead, take over.
    pub fn live(&self, now: Instant, me_renewed: bool) -> Vec<Member> {
        let mut live: BTreeSet<Member> = self
            .seen
            .values()
            .filter(|s| s.record.member != self.me)
            .filter(|s| !s.stale && now.duration_since(s.changed_at) < s.record.duration + GRACE)
            .map(|s| s.record.member.clone())
            .collect();
        if me_renewed {
            live.insert(self.me.clone());
        }
        live.into_iter().collect()
    }
}

/// FNV-1a, then a SplitMix64 finalizer: stable across builds and platforms (every replica of a
/// rolling upgrade must agree), and well spread.
fn score(member: &str, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member.bytes().chain([0xff]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The members that may test a connection pinned to `pool` (`None`: any member).
pub fn eligible<'a>(live: &'a [Member], pool: Option<&str>) -> Vec<&'a Member> {
    live.iter()
        .filter(|m| pool.is_none_or(|p| m.pool == p))
        .collect()
}

/// The owner of connection `key` (its uid) among `candidates`, by rendezvous hashing.
pub fn owner<'a>(key: &str, candidates: &[&'a Member]) -> Option<&'a Member> {
    candidates
        .iter()
        .copied()
        .max_by_key(|m| (score(&m.identity, key), &m.identity))
}

/// Who handles a connection: tests it, or reports that no agent can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// This process tests it.
    Mine,
    /// Another process does.
    Other(Member),
    /// No live member of the pinned pool; this process reports it (it won the hash over all live
    /// members, so exactly one process writes it).
    ReportNoAgent {
        /// The live pools, for the message.
        live_pools: Vec<String>,
    },
    /// No live member of the pinned pool; another process reports it.
    NoAgentElsewhere,
}

/// Decides who handles connection `key` pinned to `pool`.
pub fn assign(me: &Member, live: &[Member], key: &str, pool: Option<&str>) -> Assignment {
    let candidates = eligible(live, pool);
    match owner(key, &candidates) {
        Some(m) if m == me => Assignment::Mine,
        Some(m) => Assignment::Other(m.clone()),
        None => {
            let all: Vec<&Member> = live.iter().collect();
            if owner(key, &all) == Some(me) {
                let pools: BTreeSet<String> = live.iter().map(|m| m.pool.clone()).collect();
                Assignment::ReportNoAgent {
                    live_pools: pools.into_iter().collect(),
                }
            } else {
                Assignment::NoAgentElsewhere
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(identity: &str, pool: &str) -> Member {
        Member {
            identity: identity.into(),
            pool: pool.into(),
        }
    }

    fn record(identity: &str, pool: &str, renew: i64) -> LeaseRecord {
        LeaseRecord {
            member: m(identity, pool),
            renew_time: chrono::DateTime::from_timestamp(renew, 0),
            duration: Duration::from_secs(10),
        }
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("uid-{i:05}")).collect()
    }

    #[test]
    fn each_connection_has_exactly_one_owner_and_shares_are_fair() {
        let members = [m("a", "p"), m("b", "p"), m("c", "p")];
        let refs: Vec<&Member> = members.iter().collect();
        let mut counts = BTreeMap::new();
        for k in keys(3000) {
            *counts
                .entry(owner(&k, &refs).unwrap().identity.clone())
                .or_insert(0) += 1;
        }
        assert_eq!(counts.values().sum::<i32>(), 3000);
        for (who, n) in &counts {
            assert!((850..=1150).contains(n), "{who} owns {n} of 3000");
        }
    }

    #[test]
    fn a_member_leaving_or_joining_moves_only_its_share() {
        let three = [m("a", "p"), m("b", "p"), m("c", "p")];
        let two = [m("a", "p"), m("b", "p")];
        let four = [m("a", "p"), m("b", "p"), m("c", "p"), m("d", "p")];
        let r3: Vec<&Member> = three.iter().collect();
        let r2: Vec<&Member> = two.iter().collect();
        let r4: Vec<&Member> = four.iter().collect();
        let mut moved_on_leave = 0;
        let mut moved_on_join = 0;
        for k in keys(3000) {
            let before = owner(&k, &r3).unwrap();
            let after = owner(&k, &r2).unwrap();
            if before.identity != "c" {
                assert_eq!(before, after, "{k} moved though its owner stayed");
            } else {
                moved_on_leave += 1;
            }
            let joined = owner(&k, &r4).unwrap();
            if joined != before {
                assert_eq!(joined.identity, "d", "{k} moved to an old member on a join");
                moved_on_join += 1;
            }
        }
        assert!((850..=1150).contains(&moved_on_leave), "{moved_on_leave}");
        assert!((600..=900).contains(&moved_on_join), "{moved_on_join}");
    }

    #[test]
    fn pinned_pools_and_no_agent() {
        let me = m("a", "default");
        let live = [me.clone(), m("z", "vpc-b")];
        for k in keys(50) {
            match assign(&me, &live, &k, Some("vpc-b")) {
                Assignment::Other(o) => assert_eq!(o.identity, "z"),
                other => panic!("{other:?}"),
            }
            assert!(matches!(
                assign(&me, &live, &k, Some("default")),
                Assignment::Mine
            ));
        }
        // A pool nobody runs: exactly one of the live members reports it.
        let z = m("z", "vpc-b");
        for k in keys(200) {
            let a = assign(&me, &live, &k, Some("vpc-x"));
            let b = assign(&z, &live, &k, Some("vpc-x"));
            let reporters = [&a, &b]
                .iter()
                .filter(|x| matches!(x, Assignment::ReportNoAgent { .. }))
                .count();
            assert_eq!(reporters, 1, "{k}: {a:?} {b:?}");
            if let Assignment::ReportNoAgent { live_pools } = a {
                assert_eq!(live_pools, ["default", "vpc-b"]);
            }
        }
    }

    #[test]
    fn liveness_follows_renewals_on_our_own_clock() {
        let t0 = Instant::now();
        let wall = chrono::DateTime::from_timestamp(1_000, 0).unwrap();
        let mut ms = Membership::new(m("me", "p"));
        ms.observe(&[record("a", "p", 995), record("old", "p", 900)], t0, wall);
        assert_eq!(
            ms.live(t0, true),
            [m("a", "p"), m("me", "p")],
            "a leftover Lease (renewed 100 s ago, duration 10 s) is not live"
        );
        // a keeps renewing; its clock may be off by minutes: only the change counts.
        let t1 = t0 + Duration::from_secs(9);
        ms.observe(
            &[record("a", "p", 2_000), record("old", "p", 900)],
            t1,
            wall,
        );
        assert!(ms
            .live(t1 + Duration::from_secs(11), true)
            .contains(&m("a", "p")));
        // a stops renewing: dead after its duration plus the grace.
        assert!(!ms
            .live(t1 + Duration::from_secs(10) + GRACE, true)
            .contains(&m("a", "p")));
        // a released its Lease: gone at once. The process itself counts while its renewals succeed.
        ms.observe(&[], t1, wall);
        assert_eq!(ms.live(t1, true), [m("me", "p")]);
        assert!(ms.live(t1, false).is_empty());
        // The leftover renews: it is back.
        ms.observe(&[record("old", "p", 1_001)], t1, wall);
        ms.observe(&[record("old", "p", 1_002)], t1, wall);
        assert!(ms.live(t1, true).contains(&m("old", "p")));
    }

    const PINNED_A_K: u64 = 0xba68_17a7_c4ff_d2da;

    #[test]
    fn the_hash_is_stable() {
        // Replicas of different builds must agree: these values are fixed.
        assert_eq!(
            score("a", "k"),
            PINNED_A_K,
            "score(\"a\", \"k\") = {:#x}",
            score("a", "k")
        );
        assert_ne!(score("a", "k"), score("b", "k"));
        assert_ne!(score("ab", "c"), score("a", "bc"));
    }
}
