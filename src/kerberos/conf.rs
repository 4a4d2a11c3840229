//! A reader for krb5.conf: the parts a connection test needs (the default realm, each realm's KDCs,
//! whether KDCs come from DNS), with line numbers on malformed input.

use std::collections::BTreeMap;

/// What krb5.conf says about realms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Krb5Conf {
    /// `[libdefaults] default_realm`.
    pub default_realm: Option<String>,
    /// Realm name to its `kdc` entries (`host` or `host:port`).
    pub realms: BTreeMap<String, Vec<String>>,
    /// `[libdefaults] dns_lookup_kdc` (KDCs found through DNS SRV records).
    pub dns_lookup_kdc: bool,
}

/// A malformed line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ConfError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl Krb5Conf {
    /// The KDCs of `realm` (empty when the realm is not listed).
    pub fn kdcs(&self, realm: &str) -> &[String] {
        self.realms.get(realm).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Parses krb5.conf text.
pub fn parse(text: &str) -> Result<Krb5Conf, ConfError> {
    let mut conf = Krb5Conf::default();
    let mut section = String::new();
    // Stack of open `name = {` blocks inside the current section.
    let mut blocks: Vec<String> = Vec::new();
    let err = |line: usize, message: &str| ConfError {
        line,
        message: message.to_string(),
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        // libkrb5 follows these in kinit and in the GSSAPI library: `include` and `includedir` read
        // any file the operator can read, `module` loads a plugin library. A tenant's krb5.conf
        // gets none of them.
        let word = line
            .split(|c: char| c.is_whitespace() || c == '=')
            .next()
            .unwrap_or_default();
        if matches!(word, "include" | "includedir" | "module") {
            return Err(err(
                n,
                &format!("{word:?} is not allowed: kconn reads this krb5.conf alone (copy what it would include into it)"),
            ));
        }
        if let Some(rest) = line.strip_prefix('[') {
            if !blocks.is_empty() {
                return Err(err(
                    n,
                    "a section starts before the previous block was closed with }",
                ));
            }
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| err(n, "a section header must end with ]"))?;
            section = name.trim().to_string();
            if section == "plugins" {
                return Err(err(
                    n,
                    "the [plugins] section is not allowed: it makes libkrb5 load libraries",
                ));
            }
            continue;
        }
        if line == "}" {
            if blocks.pop().is_none() {
                return Err(err(n, "} without an open block"));
            }
            continue;
        }
        if section.is_empty() {
            return Err(err(n, "a setting outside of any [section]"));
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(n, "expected name = value"));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(err(n, "a setting without a name"));
        }
        if value == "{" {
            blocks.push(key.to_string());
            continue;
        }
        // `REALM = { kdc = host }` on one line.
        if let Some(inner) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
            if section == "realms" && blocks.is_empty() {
                for part in inner.split(['\n', ';']) {
                    if let Some((k, v)) = part.split_once('=') {
                        if k.trim() == "kdc" {
                            conf.realms
                                .entry(key.to_string())
                                .or_default()
                                .push(v.trim().to_string());
                        }
                    }
                }
                conf.realms.entry(key.to_string()).or_default();
            }
            continue;
        }
        match (section.as_str(), blocks.as_slice(), key) {
            ("libdefaults", [], "default_realm") => conf.default_realm = Some(value.to_string()),
            ("libdefaults", [], "dns_lookup_kdc") => {
                conf.dns_lookup_kdc =
                    matches!(value.to_ascii_lowercase().as_str(), "true" | "yes" | "1")
            }
            ("realms", [realm], "kdc") => conf
                .realms
                .entry(realm.clone())
                .or_default()
                .push(value.to_string()),
            ("realms", [realm], _) => {
                conf.realms.entry(realm.clone()).or_default();
            }
            _ => {}
        }
    }
    if let Some(open) = blocks.last() {
        return Err(err(
            text.lines().count(),
            &format!("the block {open:?} is never closed with }}"),
        ));
    }
    Ok(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_realms_and_defaults() {
        let conf = parse(
            "# comment\n[libdefaults]\n  default_realm = EXAMPLE.COM\n  dns_lookup_kdc = false\n[realms]\n  EXAMPLE.COM = {\n    kdc = kdc1.example.com:88\n    kdc = kdc2.example.com\n    admin_server = kdc1.example.com\n  }\n  OTHER.ORG = { kdc = k.other.org }\n[domain_realm]\n  .example.com = EXAMPLE.COM\n",
        )
        .unwrap();
        assert_eq!(conf.default_realm.as_deref(), Some("EXAMPLE.COM"));
        assert_eq!(
            conf.kdcs("EXAMPLE.COM"),
            ["kdc1.example.com:88", "kdc2.example.com"]
        );
        assert_eq!(conf.kdcs("OTHER.ORG"), ["k.other.org"]);
        assert!(!conf.dns_lookup_kdc);
        assert!(conf.kdcs("NOPE").is_empty());
    }

    #[test]
    fn malformed_lines_are_named() {
        let cases = [
            ("kdc = x\n", 1, "outside of any [section]"),
            ("[realms\n", 1, "must end with ]"),
            ("[realms]\n R = {\n kdc = a\n", 3, "never closed"),
            ("[libdefaults]\n just words\n", 2, "expected name = value"),
            ("[realms]\n}\n", 2, "without an open block"),
            ("\u{5}\u{2}\u{0}binary", 1, "outside of any [section]"),
            ("include /etc/shadow\n", 1, "\"include\" is not allowed"),
            (
                "[libdefaults]\nincludedir /var/run/secrets\n",
                2,
                "\"includedir\" is not allowed",
            ),
            ("module /tmp/evil.so\n", 1, "\"module\" is not allowed"),
            ("[plugins]\n", 1, "[plugins] section is not allowed"),
            (
                "[realms]\n R = {\n  module = x:/tmp/evil.so\n }\n",
                3,
                "\"module\" is not allowed",
            ),
        ];
        for (text, line, want) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(want), "{text:?}: {e}");
        }
    }
}
