//! Kerberos for one connection: the keytab and krb5.conf readers, a private directory holding that
//! connection's keytab, krb5.conf and credential cache, and a real AS exchange with the KDC. Nothing
//! is process-global: every connection gets its own directory, and the tools that need the Kerberos
//! environment variables run as child processes with them set.

pub mod conf;
pub mod keytab;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secrets::SecretBytes;

/// Whether a principal must name its realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realm {
    /// `primary[/instance]` alone is fine: krb5.conf's `default_realm` completes it.
    Optional,
    /// The principal as used: `primary[/instance]@REALM`.
    Required,
}

/// Checks a principal against the characters kconn accepts: `primary[/instance...][@REALM]`, each
/// part letters, digits, `.`, `_` and `-` ([`crate::api::PRINCIPAL_PATTERN`], the CRD's rule).
/// Kerberos itself allows more (`$`, `(`, `;` ...); kconn does not, so that no principal ever
/// carries shell or option syntax to a tool, whatever the tenant registered in its own KDC.
pub fn check_principal(p: &str, realm: Realm) -> Result<(), String> {
    if p.is_empty() {
        return Err("the principal is empty".into());
    }
    if let Some(c) = p
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '@')))
    {
        return Err(format!(
            "the principal contains {c:?}: only letters, digits, '.', '_' and '-' are allowed, with '/' between parts and '@' before the realm"
        ));
    }
    let (name, at_realm) = match p.split_once('@') {
        Some((n, r)) => (n, Some(r)),
        None => (p, None),
    };
    if name.is_empty() || name.split('/').any(str::is_empty) {
        return Err(format!(
            "principal {} is not primary[/instance][@REALM]",
            shown(p)
        ));
    }
    match at_realm {
        Some("") => Err(format!(
            "principal {} ends with '@' but names no realm",
            shown(p)
        )),
        Some(r) if r.contains(['@', '/']) => Err(format!(
            "principal {} has more than one '@' or a '/' in its realm",
            shown(p)
        )),
        None if realm == Realm::Required => Err(format!("principal {} names no realm", shown(p))),
        _ => Ok(()),
    }
}

/// A principal quoted for a message, cut to 100 characters (a realm from a krb5.conf is unbounded).
fn shown(p: &str) -> String {
    match p.char_indices().nth(100) {
        Some((i, _)) => format!("{:?}...", &p[..i]),
        None => format!("{p:?}"),
    }
}

/// What a connection needs for Kerberos, resolved from its Secrets.
#[derive(Debug, Clone)]
pub struct KerberosMaterial {
    /// The client principal with its realm.
    pub principal: String,
    /// The brokers' service name.
    pub service_name: String,
    /// The keytab bytes.
    pub keytab: SecretBytes,
    /// The krb5.conf text.
    pub krb5_conf: String,
}

/// A directory only this process's user can read (0700), with 0600 files; removed on drop.
#[derive(Debug)]
pub struct PrivateDir {
    dir: tempfile::TempDir,
}

impl PrivateDir {
    /// Creates the directory (under `$TMPDIR`, or the writable emptyDir in a pod).
    pub fn new() -> std::io::Result<Self> {
        // Created with mode 0700 (mkdir's mode argument), never wider for a moment.
        let dir = tempfile::Builder::new()
            .prefix("kconn-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()?;
        Ok(Self { dir })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name` with mode 0600 and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.dir.path().join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(bytes)?;
        Ok(path)
    }
}

/// Paths of one connection's keytab, krb5.conf and credential cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KerberosEnv {
    /// The keytab.
    pub keytab: PathBuf,
    /// The krb5.conf.
    pub krb5_conf: PathBuf,
    /// The credential cache file (`FILE:` prefix not included).
    pub ccache: PathBuf,
}

impl KerberosEnv {
    /// The environment a process needs to use exactly these files.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KRB5_CONFIG", self.krb5_conf.display().to_string()),
            ("KRB5CCNAME", format!("FILE:{}", self.ccache.display())),
            ("KRB5_KTNAME", format!("FILE:{}", self.keytab.display())),
        ]
    }
}

/// A connection's Kerberos files, written to its own private directory.
#[derive(Debug)]
pub struct KerberosFiles {
    /// The directory (removed when this is dropped).
    pub dir: PrivateDir,
    /// Where the files are.
    pub env: KerberosEnv,
}

impl KerberosFiles {
    /// Writes the keytab and krb5.conf of `material` into a new private directory.
    pub fn write(material: &KerberosMaterial) -> std::io::Result<Self> {
        let dir = PrivateDir::new()?;
        let keytab = dir.write("krb5.keytab", material.keytab.expose())?;
        let krb5_conf = dir.write("krb5.conf", material.krb5_conf.as_bytes())?;
        let ccache = dir.path().join("ccache");
        Ok(Self {
            dir,
            env: KerberosEnv {
                keytab,
                krb5_conf,
                ccache,
            },
        })
    }
}

/// Why the KDC gave no ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// No KDC answered.
    #[error("no KDC answered: {0}")]
    KdcUnreachable(String),
    /// The KDC does not know the client principal.
    #[error("the KDC does not know the principal: {0}")]
    PrincipalUnknown(String),
    /// Clocks differ by more than the KDC allows.
    #[error("the clocks of this host and the KDC differ too much: {0}")]
    ClockSkew(String),
    /// The keytab's key was refused (wrong key version or password changed).
    #[error("the KDC refused the keytab's key: {0}")]
    KeytabRejected(String),
    /// `kinit` is not installed.
    #[error("kinit (MIT Kerberos client) is not installed")]
    NoKinit,
    /// No answer in time.
    #[error("no ticket within {0:?}")]
    Timeout(Duration),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Classifies kinit's error output.
pub fn classify_kinit(stderr: &str) -> TicketError {
    let text = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_start_matches("kinit: "))
        .collect::<Vec<_>>()
        .join("; ");
    let has = |s: &str| text.contains(s);
    if has("Cannot contact any KDC")
        || has("Cannot find KDC")
        || has("Cannot resolve network address for KDC")
    {
        TicketError::KdcUnreachable(text)
    } else if has("not found in Kerberos database") {
        TicketError::PrincipalUnknown(text)
    } else if has("Clock skew too great") {
        TicketError::ClockSkew(text)
    } else if has("Preauthentication failed")
        || has("Password incorrect")
        || has("No key table entry")
        || has("no suitable keys")
        || has("Key version")
        || has("Decrypt integrity check failed")
    {
        TicketError::KeytabRejected(text)
    } else {
        TicketError::Other(text)
    }
}

/// Runs a real AS exchange: `kinit -kt` with this connection's keytab, config and cache, within `timeout`.
///
/// No shell is involved: kinit gets an argument vector, `--` ends its options (so a principal can
/// never be read as one), and it sees only PATH and this connection's Kerberos variables.
pub async fn get_ticket(
    files: &KerberosFiles,
    principal: &str,
    timeout: Duration,
) -> Result<(), TicketError> {
    check_principal(principal, Realm::Required).map_err(TicketError::Other)?;
    let mut cmd = tokio::process::Command::new("kinit");
    cmd.arg("-kt")
        .arg(&files.env.keytab)
        .arg("-c")
        .arg(format!("FILE:{}", files.env.ccache.display()))
        .arg("--")
        .arg(principal)
        .env_clear()
        .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
        .envs(files.env.vars())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(TicketError::NoKinit),
        Err(e) => return Err(TicketError::Other(format!("kinit did not start: {e}"))),
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(TicketError::Timeout(timeout)),
        Ok(Err(e)) => Err(TicketError::Other(format!("kinit failed to run: {e}"))),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(classify_kinit(&String::from_utf8_lossy(&out.stderr))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn material() -> KerberosMaterial {
        KerberosMaterial {
            principal: "p@R".into(),
            service_name: "kafka".into(),
            keytab: SecretBytes::new(vec![5, 2]),
            krb5_conf: "[libdefaults]\n".into(),
        }
    }

    #[test]
    fn private_dir_is_0700_files_0600_and_gone_after_drop() {
        let files = KerberosFiles::write(&material()).unwrap();
        let dir = files.dir.path().to_path_buf();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            std::fs::metadata(&files.env.keytab)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(&files.env.krb5_conf)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        drop(files);
        assert!(!dir.exists(), "the private directory is removed on drop");
    }

    #[test]
    fn principals() {
        use Realm::{Optional, Required};
        for ok in [
            "pipeline@EXAMPLE.COM",
            "pipeline/host.example.com@EXAMPLE.COM",
            "svc_a-1/b.c/d@R.1",
        ] {
            assert_eq!(check_principal(ok, Required), Ok(()), "{ok}");
            assert_eq!(check_principal(ok, Optional), Ok(()), "{ok}");
        }
        assert_eq!(check_principal("pipeline", Optional), Ok(()));
        assert!(check_principal("pipeline", Required).is_err());
        for bad in [
            "",
            "a b@R",
            "@R",
            "p@",
            "a//b@R",
            "a@b@R",
            "a@R/x",
            "/a@R",
            "a/@R",
            "p$(touch${IFS}x)@R",
            "p`id`@R",
            "p;id@R",
            "p|id@R",
            "p>x@R",
            "p@R$(id)",
            "p\\x@R",
            "p\"x@R",
            "p'x@R",
            "p\nx@R",
            "p\0x@R",
            "pé@R",
        ] {
            assert!(check_principal(bad, Optional).is_err(), "{bad:?}");
            assert!(check_principal(bad, Required).is_err(), "{bad:?}");
        }
        let long = format!("p@{}", "R$".repeat(10_000));
        let msg = check_principal(&long, Required).unwrap_err();
        assert!(
            msg.len() < 300,
            "a long principal is not echoed whole: {msg}"
        );
        let long = format!("p@@{}", "R".repeat(10_000));
        let msg = check_principal(&long, Required).unwrap_err();
        assert!(
            msg.len() < 300,
            "a long principal is not echoed whole: {msg}"
        );
    }

    #[test]
    fn the_crd_pattern_and_the_check_agree() {
        let re = regex::Regex::new(crate::api::PRINCIPAL_PATTERN).unwrap();
        for p in [
            "pipeline@EXAMPLE.COM",
            "pipeline",
            "a/b/c@R",
            "a//b@R",
            "@R",
            "p@",
            "a@b@R",
            "p$(id)@R",
            "p;x",
            "-p@R",
            "p.@R",
            "a@R/x",
        ] {
            assert_eq!(
                re.is_match(p),
                check_principal(p, Realm::Optional).is_ok(),
                "{p:?}"
            );
        }
    }

    #[tokio::test]
    async fn get_ticket_refuses_an_unsafe_principal_before_running_anything() {
        let files = KerberosFiles::write(&material()).unwrap();
        let marker = files.dir.path().join("ran");
        let hostile = format!("p$(touch${{IFS}}{})@R", marker.display());
        let err = get_ticket(&files, &hostile, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, TicketError::Other(_)), "{err:?}");
        assert!(!marker.exists());
    }

    #[test]
    fn kinit_errors() {
        let cases = [
            ("kinit: Cannot contact any KDC for realm 'R' while getting initial credentials", "KdcUnreachable"),
            ("kinit: Client 'nobody@R' not found in Kerberos database while getting initial credentials", "PrincipalUnknown"),
            ("kinit: Clock skew too great while getting initial credentials", "ClockSkew"),
            ("kinit: Keytab contains no suitable keys for p@R while getting initial credentials", "KeytabRejected"),
            ("kinit: Preauthentication failed while getting initial credentials", "KeytabRejected"),
            ("kinit: something new", "Other"),
        ];
        for (text, want) in cases {
            let got = format!("{:?}", classify_kinit(text));
            assert!(got.starts_with(want), "{text}: {got}");
            assert!(
                !got.contains("kinit: "),
                "the tool prefix is trimmed: {got}"
            );
        }
    }
}
