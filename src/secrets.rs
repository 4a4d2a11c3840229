//! Secret values: a wrapper whose `Debug` and `Display` never show the value, the Secrets a test may
//! read (from manifests now, from the API server in the operator), and a redactor that scrubs any
//! secret value out of text that came from elsewhere (librdkafka's error strings, for example).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;

/// A secret value. Formatting it prints `<redacted>`; only [`SecretBytes::expose`] gives the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    /// The value. Call sites are the only places a secret leaves this type; keep them few.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    /// The value as UTF-8 text, if it is.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
    /// Length in bytes (safe to show).
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for SecretBytes {
    /// Overwrites the value before its memory is freed, so that it does not linger in the heap (where
    /// a later bug could read it); copies handed to librdkafka are its own.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One Secret as the test sees it: its data (stringData merged in) and resourceVersion.
#[derive(Debug, Clone, Default)]
pub struct SecretData {
    /// Key to value.
    pub data: BTreeMap<String, SecretBytes>,
    /// The Secret's resourceVersion, when it came from an API server.
    pub resource_version: Option<String>,
}

/// The Secrets of one namespace that a test may read, by name.
#[derive(Debug, Clone, Default)]
pub struct SecretStore {
    secrets: BTreeMap<String, SecretData>,
}

impl SecretStore {
    /// Adds a Secret object (later entries with the same name replace earlier ones).
    pub fn insert(&mut self, secret: &Secret) {
        let Some(name) = secret.metadata.name.clone() else {
            return;
        };
        let mut data = BTreeMap::new();
        for (k, v) in secret.data.iter().flatten() {
            data.insert(k.clone(), SecretBytes::new(v.0.clone()));
        }
        for (k, v) in secret.string_data.iter().flatten() {
            data.insert(k.clone(), SecretBytes::new(v.clone().into_bytes()));
        }
        self.secrets.insert(
            name,
            SecretData {
                data,
                resource_version: secret.metadata.resource_version.clone(),
            },
        );
    }

    /// The Secrets held, with their resourceVersions (for `status.observedSecrets`).
    pub fn observed(&self) -> Vec<crate::api::ObservedSecret> {
        self.secrets
            .iter()
            .map(|(name, s)| crate::api::ObservedSecret {
                name: name.clone(),
                resource_version: s.resource_version.clone().unwrap_or_default(),
            })
            .collect()
    }

    /// The Secret named `name`.
    pub fn get(&self, name: &str) -> Option<&SecretData> {
        self.secrets.get(name)
    }

    /// Reads the named Secrets of `namespace` from the API server. A Secret that does not exist is left
    /// out (CredentialsResolved reports it); any other answer is an error.
    pub async fn fetch(
        client: &kube::Client,
        namespace: &str,
        names: &[String],
    ) -> Result<Self, kube::Error> {
        let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
        let mut store = Self::default();
        for name in names {
            if let Some(secret) = api.get_opt(name).await? {
                store.insert(&secret);
            }
        }
        Ok(store)
    }

    /// Builds the store for `namespace` from Secrets given with their namespaces (`None`: the default).
    pub fn for_namespace<'a>(
        secrets: impl IntoIterator<Item = &'a Secret>,
        namespace: &str,
        default_namespace: &str,
    ) -> Self {
        let mut store = Self::default();
        for s in secrets {
            if s.metadata.namespace.as_deref().unwrap_or(default_namespace) == namespace {
                store.insert(s);
            }
        }
        store
    }
}

/// Replaces every occurrence of known secret values in a text with `***`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a short secret inside a longer one cannot spoil the longer one's match.
    values: Vec<SecretBytes>,
}

impl Redactor {
    /// Secrets shorter than this are not searched for: they would redact ordinary words.
    const MIN_LEN: usize = 4;

    /// Remembers `secret` for redaction.
    pub fn add(&mut self, secret: &SecretBytes) {
        if secret.len() >= Self::MIN_LEN {
            let at = self.values.partition_point(|v| v.len() >= secret.len());
            self.values.insert(at, secret.clone());
        }
    }

    /// `text` with every remembered value replaced.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if let Some(s) = v.expose_str() {
                if out.contains(s) {
                    out = out.replace(s, "***");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let s = SecretBytes::new(b"canary-7f3a".to_vec());
        assert_eq!(
            format!("{s} {s:?} {:?}", Some(&s)),
            "<redacted> <redacted> Some(<redacted>)"
        );
        assert_eq!(s.expose_str(), Some("canary-7f3a"));
    }

    #[test]
    fn redactor_scrubs_known_values() {
        let mut r = Redactor::default();
        r.add(&SecretBytes::new(b"hunter22".to_vec()));
        r.add(&SecretBytes::new(b"ab".to_vec()));
        assert_eq!(
            r.apply("login hunter22 failed (ab)"),
            "login *** failed (ab)"
        );
        // A short secret inside a longer one, added first, does not spoil the longer one's match.
        let mut r = Redactor::default();
        r.add(&SecretBytes::new(b"pass".to_vec()));
        r.add(&SecretBytes::new(b"passphrase-9".to_vec()));
        assert_eq!(r.apply("x passphrase-9 y pass"), "x *** y ***");
    }

    #[test]
    fn store_merges_data_and_string_data_per_namespace() {
        let s: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "u", "namespace": "a", "resourceVersion": "7"},
            "data": {"username": "YWxpY2U="}, "stringData": {"password": "pw"}
        }))
        .unwrap();
        let other: Secret = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "u", "namespace": "b"}}),
        )
        .unwrap();
        let store = SecretStore::for_namespace([&s, &other], "a", "default");
        let u = store.get("u").unwrap();
        assert_eq!(u.data["username"].expose(), b"alice");
        assert_eq!(u.data["password"].expose(), b"pw");
        assert_eq!(u.resource_version.as_deref(), Some("7"));
        assert!(SecretStore::for_namespace([&other], "a", "default")
            .get("u")
            .is_none());
    }
}
