//! Waiting on reflector stores.

use std::time::Duration;

use kube::runtime::reflector::{Lookup, Store};

/// Waits until `store` has had its first full list. Returns false when its writer went away first.
///
/// A store's readiness signal wakes only its most recent waiter (a Controller waits on its own
/// store too), so this asks again with a fresh wait until it answers.
pub async fn synced<K>(store: &Store<K>) -> bool
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
            Ok(result) => return result.is_ok(),
            Err(_) => continue,
        }
    }
}
