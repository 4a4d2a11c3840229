//! A reader for MIT keytab files (format 0x0502, and 0x0501's big-endian layout which differs only in
//! the absent name type). It keeps principals, key versions and encryption types; key bytes are skipped
//! and never stored.

use std::fmt;

/// One keytab entry, without its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `primary[/instance]@REALM`.
    pub principal: String,
    /// Key version number.
    pub kvno: u32,
    /// Encryption type number (RFC 3961 registry).
    pub enctype: u16,
}

/// Why the bytes are not a keytab.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeytabError {
    /// Shorter than the two version bytes.
    #[error("the keytab is empty")]
    Empty,
    /// Wrong magic / version.
    #[error("not a keytab (it starts with {0:#06x}; a keytab starts with 0x0502)")]
    BadVersion(u16),
    /// An entry runs past the end of the data.
    #[error("the keytab is truncated or corrupt at byte {0}")]
    Truncated(usize),
    /// No entries at all.
    #[error("the keytab holds no keys")]
    NoEntries,
}

/// Parses a keytab.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, KeytabError> {
    if bytes.len() < 2 {
        return Err(KeytabError::Empty);
    }
    let version = u16::from_be_bytes([bytes[0], bytes[1]]);
    if version != 0x0502 && version != 0x0501 {
        return Err(KeytabError::BadVersion(version));
    }
    let mut entries = Vec::new();
    let mut pos = 2;
    while pos < bytes.len() {
        if bytes.len() - pos < 4 {
            // Trailing padding shorter than a length field is tolerated only if it is zeros.
            if bytes[pos..].iter().all(|b| *b == 0) {
                break;
            }
            return Err(KeytabError::Truncated(pos));
        }
        let size = i32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes"));
        pos += 4;
        if size == 0 {
            break; // end marker written by some tools
        }
        let len = size.unsigned_abs() as usize;
        let end = pos
            .checked_add(len)
            .filter(|e| *e <= bytes.len())
            .ok_or(KeytabError::Truncated(pos))?;
        if size > 0 {
            entries.push(entry(&bytes[pos..end], version, pos)?);
        }
        pos = end; // a negative size is a hole left by a deleted entry
    }
    if entries.is_empty() {
        return Err(KeytabError::NoEntries);
    }
    Ok(entries)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], KeytabError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or(KeytabError::Truncated(self.base + self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, KeytabError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, KeytabError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn string(&mut self) -> Result<String, KeytabError> {
        let n = self.u16()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

fn entry(data: &[u8], version: u16, base: usize) -> Result<Entry, KeytabError> {
    let mut r = Reader { data, pos: 0, base };
    let mut components = r.u16()? as usize;
    if version == 0x0501 {
        components = components.saturating_sub(1); // 0x0501 counts the realm too
    }
    let realm = r.string()?;
    let mut names = Vec::with_capacity(components.min(16));
    for _ in 0..components {
        names.push(r.string()?);
    }
    if version == 0x0502 {
        r.u32()?; // name type
    }
    r.u32()?; // timestamp
    let vno8 = r.take(1)?[0];
    let enctype = r.u16()?;
    let key_len = r.u16()? as usize;
    r.take(key_len)?; // the key itself: skipped, never kept
    let kvno = if data.len() - r.pos >= 4 {
        r.u32()?
    } else {
        u32::from(vno8)
    };
    let kvno = if kvno == 0 { u32::from(vno8) } else { kvno };
    Ok(Entry {
        principal: format!("{}@{realm}", names.join("/")),
        kvno,
        enctype,
    })
}

/// How usable an encryption type is with current MIT Kerberos and Java defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    /// AES (and camellia): fine.
    Strong,
    /// RC4-HMAC: deprecated, disabled by default in recent MIT Kerberos and Java.
    Deprecated,
    /// DES and 3DES: removed.
    Unusable,
}

/// The strength of an enctype number.
pub fn strength(enctype: u16) -> Strength {
    match enctype {
        17..=20 | 25 | 26 => Strength::Strong,
        23 | 24 => Strength::Deprecated,
        _ => Strength::Unusable,
    }
}

/// The name of an enctype number.
pub struct EnctypeName(pub u16);

impl fmt::Display for EnctypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            1 => "des-cbc-crc",
            3 => "des-cbc-md5",
            16 => "des3-cbc-sha1",
            17 => "aes128-cts-hmac-sha1-96",
            18 => "aes256-cts-hmac-sha1-96",
            19 => "aes128-cts-hmac-sha256-128",
            20 => "aes256-cts-hmac-sha384-192",
            23 => "arcfour-hmac",
            24 => "arcfour-hmac-exp",
            25 => "camellia128-cts-cmac",
            26 => "camellia256-cts-cmac",
            n => return write!(f, "enctype {n}"),
        };
        f.write_str(name)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a 0x0502 keytab (test support; keys are filler bytes).
    pub(crate) fn build(entries: &[(&str, &str, u32, u16)]) -> Vec<u8> {
        let mut out = vec![0x05, 0x02];
        for (name, realm, kvno, enctype) in entries {
            let mut e = Vec::new();
            let parts: Vec<&str> = name.split('/').collect();
            e.extend((parts.len() as u16).to_be_bytes());
            e.extend((realm.len() as u16).to_be_bytes());
            e.extend(realm.as_bytes());
            for p in &parts {
                e.extend((p.len() as u16).to_be_bytes());
                e.extend(p.as_bytes());
            }
            e.extend(1u32.to_be_bytes()); // KRB5_NT_PRINCIPAL
            e.extend(0u32.to_be_bytes());
            e.push(*kvno as u8);
            e.extend(enctype.to_be_bytes());
            e.extend(32u16.to_be_bytes());
            e.extend([0xAB; 32]);
            e.extend(kvno.to_be_bytes());
            out.extend((e.len() as i32).to_be_bytes());
            out.extend(e);
        }
        out
    }

    #[test]
    fn reads_entries_without_keeping_keys() {
        let bytes = build(&[
            ("pipeline", "EXAMPLE.COM", 3, 18),
            ("kafka/b1.example.com", "EXAMPLE.COM", 7, 17),
        ]);
        let entries = parse(&bytes).unwrap();
        assert_eq!(
            entries,
            [
                Entry {
                    principal: "pipeline@EXAMPLE.COM".into(),
                    kvno: 3,
                    enctype: 18
                },
                Entry {
                    principal: "kafka/b1.example.com@EXAMPLE.COM".into(),
                    kvno: 7,
                    enctype: 17
                },
            ]
        );
        assert!(
            !format!("{entries:?}").contains("171"),
            "key bytes (0xAB) are not kept"
        );
    }

    #[test]
    fn holes_are_skipped() {
        let mut bytes = build(&[("a", "R", 1, 18)]);
        let hole: Vec<u8> = (-6i32).to_be_bytes().into_iter().chain([0u8; 6]).collect();
        bytes.splice(2..2, hole);
        assert_eq!(parse(&bytes).unwrap().len(), 1);
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        assert_eq!(parse(b""), Err(KeytabError::Empty));
        assert_eq!(
            parse(b"[libdefaults]"),
            Err(KeytabError::BadVersion(0x5b6c))
        );
        assert_eq!(parse(&[5, 2]), Err(KeytabError::NoEntries));
        let mut truncated = build(&[("a", "R", 1, 18)]);
        truncated.truncate(20);
        assert!(matches!(parse(&truncated), Err(KeytabError::Truncated(_))));
        let mut lying = vec![5, 2];
        lying.extend(1000i32.to_be_bytes());
        assert!(matches!(parse(&lying), Err(KeytabError::Truncated(6))));
        let mut inner = vec![5, 2];
        inner.extend(4i32.to_be_bytes());
        inner.extend([0, 9, 0, 1]); // 9 components claimed, realm length 1 and nothing after
        assert!(matches!(parse(&inner), Err(KeytabError::Truncated(_))));
    }

    #[test]
    fn strengths() {
        assert_eq!(strength(18), Strength::Strong);
        assert_eq!(strength(23), Strength::Deprecated);
        assert_eq!(strength(3), Strength::Unusable);
        assert_eq!(EnctypeName(18).to_string(), "aes256-cts-hmac-sha1-96");
    }
}
