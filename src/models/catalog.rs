//! The model catalog as ConfigMap shards: the models as JSON, gzip-compressed, split into shards that
//! each stay under 900 KiB (ConfigMaps are limited to 1 MiB), named `<connection>-models-<n>`. A content
//! hash over the uncompressed JSON tells whether anything changed, so an unchanged catalog is not
//! written.

use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use super::Model;

/// The most bytes one shard may hold (compressed), leaving room for the ConfigMap's metadata.
pub const MAX_SHARD_BYTES: usize = 900 * 1024;

/// The binaryData key of a shard's content.
pub const SHARD_KEY: &str = "models.json.gz";

/// One ConfigMap's worth of catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// `<connection>-models-<n>`.
    pub name: String,
    /// Gzip-compressed JSON array of models.
    pub gzip: Vec<u8>,
}

/// The catalog split into shards, and the content hash (hex SHA-256 of the models' JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// The shards, in order.
    pub shards: Vec<Shard>,
    /// Hash of the content, to skip writing an unchanged catalog.
    pub hash: String,
}

/// Why a catalog could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// One model alone is larger than a shard.
    #[error("the model of topic {0:?} alone is larger than a ConfigMap can hold")]
    ModelTooLarge(String),
    /// Compression or JSON failed.
    #[error("the catalog cannot be encoded: {0}")]
    Encoding(String),
}

fn gzip(json: &[u8]) -> Result<Vec<u8>, CatalogError> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(json)
        .map_err(|e| CatalogError::Encoding(e.to_string()))?;
    enc.finish()
        .map_err(|e| CatalogError::Encoding(e.to_string()))
}

/// Splits `models` (sorted by topic) into shards of at most `max_bytes` compressed bytes each.
///
/// Shards are cut greedily by estimated size (uncompressed bytes times the compression ratio seen so
/// far, starting from 1:1), then compressed once; a shard that still comes out too large is halved.
/// Each model is serialized once and each byte compressed about once, so 100,000 models stay cheap.
pub fn build(
    connection: &str,
    models: &[Model],
    max_bytes: usize,
) -> Result<Catalog, CatalogError> {
    let mut sorted: Vec<&Model> = models.iter().collect();
    sorted.sort_by(|a, b| a.topic.cmp(&b.topic));
    let encoded: Vec<Vec<u8>> = sorted
        .iter()
        .map(|m| serde_json::to_vec(m).map_err(|e| CatalogError::Encoding(e.to_string())))
        .collect::<Result<_, _>>()?;
    let mut hasher = openssl::sha::Sha256::new();
    for e in &encoded {
        hasher.update(e);
        hasher.update(b"\n");
    }
    let hash = hasher
        .finish()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();

    let mut gz_shards: Vec<Vec<u8>> = Vec::new();
    let mut ratio = 1.0f64;
    let mut start = 0;
    while start < encoded.len() {
        let mut end = start;
        let mut raw = 2usize;
        while end < encoded.len()
            && (end == start
                || ((raw + encoded[end].len() + 1) as f64 * ratio) <= max_bytes as f64 * 0.95)
        {
            raw += encoded[end].len() + 1;
            end += 1;
        }
        let pieces = encode_fitting(&sorted[start..end], &encoded[start..end], max_bytes)?;
        let compressed: usize = pieces.iter().map(Vec::len).sum();
        ratio = (compressed as f64 / raw as f64).max(0.01) * 1.1;
        gz_shards.extend(pieces);
        start = end;
    }
    if gz_shards.is_empty() {
        gz_shards.push(gzip(b"[]")?);
    }
    let shards = gz_shards
        .into_iter()
        .enumerate()
        .map(|(i, gzip)| Shard {
            name: shard_name(connection, i),
            gzip,
        })
        .collect();
    Ok(Catalog { shards, hash })
}

/// `<connection>-models-<i>`; when that would pass the 253 characters of an object name, the
/// connection's name is cut and a hash of all of it added (`<cut>-<hash>-models-<i>`), so that long
/// names neither fail nor collide.
pub fn shard_name(connection: &str, i: usize) -> String {
    const MAX: usize = 253;
    let suffix = format!("-models-{i}");
    if connection.len() + suffix.len() <= MAX {
        return format!("{connection}{suffix}");
    }
    // FNV-1a: stable across builds and Rust versions, unlike the std hasher.
    let hash = connection.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let tag = format!("-{:08x}", hash as u32);
    let room = MAX - suffix.len() - tag.len();
    // Names are lower-case letters, digits, '-' and '.': every cut is on a character boundary.
    let cut = connection[..room].trim_end_matches(['-', '.']);
    format!("{cut}{tag}{suffix}")
}

/// Compresses `encoded` (the JSON of `models`) as one shard, halving it until every piece fits.
fn encode_fitting(
    models: &[&Model],
    encoded: &[Vec<u8>],
    max_bytes: usize,
) -> Result<Vec<Vec<u8>>, CatalogError> {
    let mut json = Vec::with_capacity(encoded.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
    json.push(b'[');
    for (i, e) in encoded.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(e);
    }
    json.push(b']');
    let gz = gzip(&json)?;
    if gz.len() <= max_bytes {
        return Ok(vec![gz]);
    }
    if encoded.len() == 1 {
        return Err(CatalogError::ModelTooLarge(models[0].topic.clone()));
    }
    let mid = encoded.len() / 2;
    let mut out = encode_fitting(&models[..mid], &encoded[..mid], max_bytes)?;
    out.extend(encode_fitting(&models[mid..], &encoded[mid..], max_bytes)?);
    Ok(out)
}

/// Reads the models back from shards, in order.
pub fn read(shards: &[Vec<u8>]) -> Result<Vec<Model>, CatalogError> {
    let mut models = Vec::new();
    for gz in shards {
        let mut json = Vec::new();
        GzDecoder::new(gz.as_slice())
            .read_to_end(&mut json)
            .map_err(|e| CatalogError::Encoding(e.to_string()))?;
        let part: Vec<Model> =
            serde_json::from_slice(&json).map_err(|e| CatalogError::Encoding(e.to_string()))?;
        models.extend(part);
    }
    Ok(models)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::KeyFormat;

    fn model(topic: &str, fields: usize) -> Model {
        let props: serde_json::Map<String, serde_json::Value> = (0..fields)
            .map(|i| {
                (
                    format!("{topic}-field-{i}-{}", i * 7919 % 104_729),
                    serde_json::json!({"type": "string"}),
                )
            })
            .collect();
        Model {
            topic: topic.into(),
            partitions: 3,
            replication_factor: 3,
            configs: [("cleanup.policy".to_string(), "delete".to_string())].into(),
            sampled: 10,

            skipped: 0,

            oversized: 0,
            empty: false,
            key_format: KeyFormat::None,
            schema: serde_json::json!({"type": "object", "properties": props}).into(),
            format: Default::default(),
            schemas: Vec::new(),
            key_schemas: Vec::new(),
            key_schema: None,
        }
    }

    #[test]
    fn a_small_catalog_is_one_shard_and_round_trips() {
        let models = vec![model("b", 3), model("a", 2)];
        let catalog = build("orders", &models, MAX_SHARD_BYTES).unwrap();
        assert_eq!(catalog.shards.len(), 1);
        assert_eq!(catalog.shards[0].name, "orders-models-0");
        let back = read(
            &catalog
                .shards
                .iter()
                .map(|s| s.gzip.clone())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(
            back.iter().map(|m| m.topic.as_str()).collect::<Vec<_>>(),
            ["a", "b"],
            "sorted by topic"
        );
        assert_eq!(back[1], models[0]);
    }

    #[test]
    fn a_large_catalog_shards_under_the_limit_and_round_trips() {
        let models: Vec<Model> = (0..400)
            .map(|i| model(&format!("topic-{i:04}"), 40))
            .collect();
        let limit = 16 * 1024;
        let catalog = build("big", &models, limit).unwrap();
        assert!(catalog.shards.len() > 1, "{} shards", catalog.shards.len());
        for (i, shard) in catalog.shards.iter().enumerate() {
            assert!(
                shard.gzip.len() <= limit,
                "shard {i}: {} bytes",
                shard.gzip.len()
            );
            assert_eq!(shard.name, format!("big-models-{i}"));
        }
        let back = read(
            &catalog
                .shards
                .iter()
                .map(|s| s.gzip.clone())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(back.len(), 400);
        assert_eq!(back, {
            let mut m = models.clone();
            m.sort_by(|a, b| a.topic.cmp(&b.topic));
            m
        });
    }

    #[test]
    fn the_hash_changes_only_with_the_content() {
        let a = build("c", &[model("x", 2), model("y", 1)], MAX_SHARD_BYTES).unwrap();
        let same = build("c", &[model("y", 1), model("x", 2)], MAX_SHARD_BYTES).unwrap();
        let changed = build("c", &[model("x", 3), model("y", 1)], MAX_SHARD_BYTES).unwrap();
        assert_eq!(a.hash, same.hash, "order of discovery does not matter");
        assert_ne!(a.hash, changed.hash);
        assert_eq!(a.hash.len(), 64);
    }

    #[test]
    fn shard_names_fit_an_object_name_and_long_ones_do_not_collide() {
        assert_eq!(shard_name("orders", 3), "orders-models-3");
        let long_a = format!("{}a", "x".repeat(252));
        let long_b = format!("{}b", "x".repeat(252));
        for i in [0, 9, 123] {
            let (a, b) = (shard_name(&long_a, i), shard_name(&long_b, i));
            assert!(a.len() <= 253 && b.len() <= 253, "{a}");
            assert_ne!(a, b);
            assert!(a.ends_with(&format!("-models-{i}")));
        }
        // A cut that would end in '-' or '.' is trimmed: names end in a letter or digit.
        let dashed = format!("{}-{}", "y".repeat(237), "z".repeat(15));
        let name = shard_name(&dashed, 1);
        assert!(!name.contains("--"), "{name}");
        assert_eq!(shard_name(&dashed, 1), name, "stable");
    }

    #[test]
    fn empty_catalogs_and_oversized_models() {
        let empty = build("c", &[], MAX_SHARD_BYTES).unwrap();
        assert_eq!(empty.shards.len(), 1);
        assert!(read(&[empty.shards[0].gzip.clone()]).unwrap().is_empty());
        assert!(
            matches!(build("c", &[model("huge", 2000)], 1024), Err(CatalogError::ModelTooLarge(t)) if t == "huge")
        );
    }
}
