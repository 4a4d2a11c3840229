//! The brokers' supported API versions, from a raw ApiVersions v0 exchange. Kafka answers ApiVersions
//! before authentication on every listener, so this needs no credentials (only TLS when the listener
//! is encrypted).

use std::collections::BTreeMap;
use std::io::{Read, Write};

/// What a broker serves: API key to its (min, max) version.
pub type Versions = BTreeMap<i16, (i16, i16)>;

/// API key of Produce.
pub const PRODUCE: i16 = 0;
/// API key of DescribeGroups.
pub const DESCRIBE_GROUPS: i16 = 15;
/// API key of DescribeConfigs.
pub const DESCRIBE_CONFIGS: i16 = 32;
/// API key of DescribeCluster.
pub const DESCRIBE_CLUSTER: i16 = 60;
const API_VERSIONS: i16 = 18;

/// The ApiVersions v0 request with correlation id 1 and client id `kconn`.
pub fn request() -> Vec<u8> {
    let client = b"kconn";
    let mut body = Vec::new();
    body.extend(API_VERSIONS.to_be_bytes());
    body.extend(0i16.to_be_bytes());
    body.extend(1i32.to_be_bytes());
    body.extend((client.len() as i16).to_be_bytes());
    body.extend(client);
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// Parses an ApiVersions v0 response body (after the size): api key to (min, max).
pub fn parse(body: &[u8]) -> Result<BTreeMap<i16, (i16, i16)>, String> {
    let short = || "the ApiVersions answer is truncated".to_string();
    let i16_at = |o: usize| {
        body.get(o..o + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(short)
    };
    let i32_at = |o: usize| {
        body.get(o..o + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(short)
    };
    if i32_at(0)? != 1 {
        return Err("the ApiVersions answer has another correlation id".into());
    }
    let error = i16_at(4)?;
    if error != 0 {
        return Err(format!(
            "the brokers answered ApiVersions with error code {error}"
        ));
    }
    let n = i32_at(6)?;
    if !(0..=10_000).contains(&n) {
        return Err("the ApiVersions answer is malformed".into());
    }
    let mut out = BTreeMap::new();
    for i in 0..n as usize {
        let o = 10 + i * 6;
        out.insert(i16_at(o)?, (i16_at(o + 2)?, i16_at(o + 4)?));
    }
    Ok(out)
}

/// Sends the request on `stream` and reads the answer.
pub fn exchange<S: Read + Write>(stream: &mut S) -> Result<BTreeMap<i16, (i16, i16)>, String> {
    stream.write_all(&request()).map_err(|e| e.to_string())?;
    let mut size = [0u8; 4];
    stream
        .read_exact(&mut size)
        .map_err(|e| format!("no ApiVersions answer: {e}"))?;
    let size = i32::from_be_bytes(size);
    if !(0..=1 << 20).contains(&size) {
        return Err("the ApiVersions answer is malformed".into());
    }
    let mut body = vec![0u8; size as usize];
    stream
        .read_exact(&mut body)
        .map_err(|e| format!("the ApiVersions answer is truncated: {e}"))?;
    parse(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes() {
        assert_eq!(
            request(),
            [0, 0, 0, 15, 0, 18, 0, 0, 0, 0, 0, 1, 0, 5, b'k', b'c', b'o', b'n', b'n']
        );
    }

    #[test]
    fn parses_versions_and_rejects_garbage() {
        let mut body = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 2];
        body.extend([0, 0, 0, 3, 0, 11]); // Produce 3..11
        body.extend([0, 18, 0, 0, 0, 4]); // ApiVersions 0..4
        let v = parse(&body).unwrap();
        assert_eq!(v[&PRODUCE], (3, 11));
        assert!(parse(&body[..12]).is_err());
        assert!(parse(&[0, 0, 0, 2, 0, 0]).is_err());
        assert!(parse(&[0, 0, 0, 1, 0, 35, 0, 0, 0, 0])
            .unwrap_err()
            .contains("error code 35"));
    }
}
