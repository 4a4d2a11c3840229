//! Waiting on reflector stores, and turning the Secret watch into the Secrets that changed.

use std::collections::HashMap;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{Lookup, Store};
use kube::runtime::watcher;
use kube::ResourceExt;
use tracing::{debug, warn};

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

/// A Secret's place: (namespace, name).
pub type SecretKey = (String, String);

/// The Secrets whose content may have changed, from a metadata-only watch of Secrets: each one added,
/// modified or deleted, and after a re-list (the watch broke and was listed again) each one that
/// changed or disappeared meanwhile. The watcher emits no `Delete` for an object deleted while it was
/// re-listing; without this a Secret deleted then went unnoticed until the connection's next interval.
///
/// The first list is not reported: the controller tests every connection when it starts anyway.
/// Watch errors are logged and skipped (the watcher backs off and lists again).
pub fn secret_changes<S, E>(events: S) -> impl Stream<Item = SecretKey>
where
    S: Stream<Item = Result<watcher::Event<PartialObjectMeta<Secret>>, E>>,
    E: std::fmt::Display,
{
    #[derive(Default)]
    struct State {
        /// Resource version of each Secret as last seen.
        known: HashMap<SecretKey, String>,
        /// What the current re-list has shown so far.
        listing: HashMap<SecretKey, String>,
        /// Whether the first list has ended.
        listed: bool,
    }
    fn key(meta: &PartialObjectMeta<Secret>) -> (SecretKey, String) {
        (
            (
                ResourceExt::namespace(meta).unwrap_or_default(),
                meta.name_any(),
            ),
            ResourceExt::resource_version(meta).unwrap_or_default(),
        )
    }
    events
        .scan(State::default(), |state, event| {
            let changed: Vec<SecretKey> = match event {
                Ok(watcher::Event::Apply(meta)) => {
                    let (k, version) = key(&meta);
                    let before = state.known.insert(k.clone(), version.clone());
                    if before.as_ref() == Some(&version) {
                        vec![]
                    } else {
                        vec![k]
                    }
                }
                Ok(watcher::Event::Delete(meta)) => {
                    let (k, _) = key(&meta);
                    state.known.remove(&k);
                    vec![k]
                }
                Ok(watcher::Event::Init) => {
                    state.listing.clear();
                    vec![]
                }
                Ok(watcher::Event::InitApply(meta)) => {
                    let (k, version) = key(&meta);
                    let changed = state.listed && state.known.get(&k) != Some(&version);
                    state.listing.insert(k.clone(), version);
                    if changed {
                        vec![k]
                    } else {
                        vec![]
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let listing = std::mem::take(&mut state.listing);
                    let gone: Vec<SecretKey> = if state.listed {
                        state
                            .known
                            .keys()
                            .filter(|k| !listing.contains_key(*k))
                            .cloned()
                            .collect()
                    } else {
                        vec![]
                    };
                    if !gone.is_empty() {
                        debug!(
                            count = gone.len(),
                            "Secrets deleted while the watch re-listed"
                        );
                    }
                    state.known = listing;
                    state.listed = true;
                    gone
                }
                Err(e) => {
                    warn!(error = %e, "watching Secrets failed; listing them again");
                    vec![]
                }
            };
            std::future::ready(Some(futures::stream::iter(changed)))
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use watcher::Event;

    fn meta(ns: &str, name: &str, version: &str) -> PartialObjectMeta<Secret> {
        let mut m = PartialObjectMeta::<Secret>::default();
        m.metadata.namespace = Some(ns.into());
        m.metadata.name = Some(name.into());
        m.metadata.resource_version = Some(version.into());
        m
    }

    fn k(ns: &str, name: &str) -> SecretKey {
        (ns.into(), name.into())
    }

    async fn changes(events: Vec<Event<PartialObjectMeta<Secret>>>) -> Vec<SecretKey> {
        secret_changes(futures::stream::iter(
            events.into_iter().map(Ok::<_, String>),
        ))
        .collect()
        .await
    }

    #[tokio::test]
    async fn the_first_list_is_quiet_then_each_change_is_reported() {
        let got = changes(vec![
            Event::Init,
            Event::InitApply(meta("a", "one", "1")),
            Event::InitApply(meta("a", "two", "1")),
            Event::InitDone,
            Event::Apply(meta("a", "one", "2")),
            // The same version again (a watch resumed): not a change.
            Event::Apply(meta("a", "one", "2")),
            Event::Delete(meta("a", "two", "1")),
            Event::Apply(meta("b", "three", "3")),
        ])
        .await;
        assert_eq!(got, [k("a", "one"), k("a", "two"), k("b", "three")]);
    }

    #[tokio::test]
    async fn a_relist_reports_what_changed_or_vanished_meanwhile() {
        let mut got = changes(vec![
            Event::Init,
            Event::InitApply(meta("a", "same", "1")),
            Event::InitApply(meta("a", "edited", "1")),
            Event::InitApply(meta("a", "deleted", "1")),
            Event::InitDone,
            // The watch broke; while it was down one Secret was edited, one deleted, one created.
            Event::Init,
            Event::InitApply(meta("a", "same", "1")),
            Event::InitApply(meta("a", "edited", "5")),
            Event::InitApply(meta("a", "created", "6")),
            Event::InitDone,
            // A second re-list with nothing changed reports nothing.
            Event::Init,
            Event::InitApply(meta("a", "same", "1")),
            Event::InitApply(meta("a", "edited", "5")),
            Event::InitApply(meta("a", "created", "6")),
            Event::InitDone,
        ])
        .await;
        got.sort();
        assert_eq!(
            got,
            [k("a", "created"), k("a", "deleted"), k("a", "edited")]
        );
    }

    #[tokio::test]
    async fn watch_errors_are_skipped() {
        let events = vec![
            Ok(Event::Init),
            Ok(Event::InitDone),
            Err("the server is gone".to_string()),
            Ok(Event::Apply(meta("a", "one", "1"))),
        ];
        let got: Vec<SecretKey> = secret_changes(futures::stream::iter(events))
            .collect()
            .await;
        assert_eq!(got, [k("a", "one")]);
    }
}
