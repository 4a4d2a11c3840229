//! The catalog's ConfigMaps on the API server: read the previous catalog, write the shards whose
//! content changed, remove shards a smaller catalog no longer needs. Shards are owned by their
//! connection (deleted with it) and found by a label holding the connection's uid.

use crate::api::MANAGER;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

use super::catalog::{self, Catalog, SHARD_KEY};
use super::Model;

/// Label holding the owning connection's uid.
pub const CONNECTION_UID_LABEL: &str = "kconn.dev/connection-uid";
pub use crate::api::CONNECTION_ANNOTATION;
/// The connection that owns a catalog.
#[derive(Debug, Clone)]
pub struct Owner {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// uid.
    pub uid: String,
}

/// Why the catalog could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A ConfigMap with a shard's name exists and is not this connection's.
    #[error("ConfigMap {0} exists and does not belong to this connection; rename or delete it")]
    NameTaken(String),
    /// The API server failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Shards created or updated.
    pub written: u32,
    /// Stale shards removed.
    pub deleted: u32,
    /// Request bytes sent for the shards written.
    pub bytes: u64,
}

/// The shard index in a name `<connection>-models-<n>`.
fn shard_index(name: &str) -> usize {
    name.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// The existing shards of the connection with uid `uid`, in order.
pub async fn existing(api: &Api<ConfigMap>, uid: &str) -> Result<Vec<ConfigMap>, kube::Error> {
    let list = api
        .list(&ListParams::default().labels(&format!("{CONNECTION_UID_LABEL}={uid}")))
        .await?;
    // The label alone is anyone's to set: only ConfigMaps this connection controls (its uid in their
    // controller ownerReference) are read, rewritten or deleted.
    let mut shards: Vec<ConfigMap> = list
        .items
        .into_iter()
        .filter(|cm| crate::api::controlled_by(&cm.metadata, uid))
        .collect();
    shards.sort_by_key(|cm| shard_index(cm.metadata.name.as_deref().unwrap_or_default()));
    Ok(shards)
}

fn content(cm: &ConfigMap) -> Option<&[u8]> {
    cm.binary_data
        .as_ref()
        .and_then(|d| d.get(SHARD_KEY))
        .map(|b| b.0.as_slice())
}

/// The [`Model::fingerprint`] of each topic in existing shards, decoding one shard at a time
/// (unreadable shards count as empty: the next write replaces them).
pub fn fingerprints(shards: &[ConfigMap]) -> std::collections::HashMap<String, u64> {
    shards
        .iter()
        .filter_map(content)
        .flat_map(|gz| catalog::read(&[gz.to_vec()]).unwrap_or_default())
        .map(|m| {
            let fp = m.fingerprint();
            (m.topic, fp)
        })
        .collect()
}

/// The models of existing shards (unreadable shards count as empty: the next write replaces them).
pub fn models_of(shards: &[ConfigMap]) -> Vec<Model> {
    let gz: Vec<Vec<u8>> = shards
        .iter()
        .filter_map(|cm| content(cm).map(<[u8]>::to_vec))
        .collect();
    catalog::read(&gz).unwrap_or_default()
}

fn shard_object(owner: &Owner, name: &str, gzip: &[u8]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(owner.namespace.clone()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/managed-by".into(), MANAGER.into()),
                (CONNECTION_UID_LABEL.into(), owner.uid.clone()),
            ])),
            annotations: Some(BTreeMap::from([(
                CONNECTION_ANNOTATION.into(),
                owner.name.clone(),
            )])),
            owner_references: Some(vec![crate::api::owner_reference(&owner.name, &owner.uid)]),
            ..Default::default()
        },
        binary_data: Some(BTreeMap::from([(
            SHARD_KEY.to_string(),
            ByteString(gzip.to_vec()),
        )])),
        ..Default::default()
    }
}

/// Writes the shards whose content differs from `existing`, then removes the shards no longer used.
/// An unchanged catalog sends nothing.
pub async fn write(
    api: &Api<ConfigMap>,
    owner: &Owner,
    catalog: &Catalog,
    existing: &[ConfigMap],
) -> Result<WriteStats, StoreError> {
    let mut stats = WriteStats::default();
    let ours: BTreeMap<&str, &ConfigMap> = existing
        .iter()
        .filter_map(|cm| cm.metadata.name.as_deref().map(|n| (n, cm)))
        .collect();
    for shard in &catalog.shards {
        let object = shard_object(owner, &shard.name, &shard.gzip);
        match ours.get(shard.name.as_str()) {
            Some(old) if content(old) == Some(shard.gzip.as_slice()) => continue,
            Some(_) => {
                let body = serde_json::to_vec(&object).unwrap_or_default();
                api.patch(
                    &shard.name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await?;
                stats.bytes += body.len() as u64;
            }
            None => {
                let body = serde_json::to_vec(&object).unwrap_or_default();
                match api.create(&PostParams::default(), &object).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        return Err(StoreError::NameTaken(shard.name.clone()))
                    }
                    Err(e) => return Err(e.into()),
                }
                stats.bytes += body.len() as u64;
            }
        }
        stats.written += 1;
    }
    let keep: Vec<&str> = catalog.shards.iter().map(|s| s.name.as_str()).collect();
    for name in ours.keys().filter(|n| !keep.contains(n)) {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => stats.deleted += 1,
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_ordered_by_index_and_owned_by_the_connection() {
        assert_eq!(shard_index("orders-models-0"), 0);
        assert_eq!(shard_index("my-orders-models-12"), 12);
        assert_eq!(shard_index("weird"), usize::MAX);
        let owner = Owner {
            namespace: "team".into(),
            name: "orders".into(),
            uid: "u-1".into(),
        };
        let cm = shard_object(&owner, "orders-models-0", b"gz");
        let refs = cm.metadata.owner_references.unwrap();
        assert_eq!(
            (
                refs[0].kind.as_str(),
                refs[0].uid.as_str(),
                refs[0].controller
            ),
            ("KafkaConnection", "u-1", Some(true))
        );
        assert_eq!(cm.metadata.labels.unwrap()[CONNECTION_UID_LABEL], "u-1");
        assert_eq!(cm.binary_data.unwrap()[SHARD_KEY].0, b"gz");
    }
}
