//! KerberosTicket: a real AS exchange with the connection's own keytab, krb5.conf and ticket cache.

use std::time::Duration;

use super::engine::{skipped, Test};
use super::row;
use crate::api::{Check, CheckReport, CheckResult, Reason};
use crate::kafka::Kafka;
use crate::kerberos::{self, KerberosFiles, KerberosMaterial, TicketError};

/// The KerberosTicket step. The files it writes are kept while the test runs, and by the session for
/// sampling; they are removed when the last holder drops them.
pub(super) async fn kerberos_ticket<K: Kafka>(t: &mut Test<'_, K>) -> CheckReport {
    let Some(settings) = t.settings.as_mut() else {
        return skipped(
            Check::KerberosTicket,
            Reason::DependencyFailed,
            "CredentialsResolved failed",
        );
    };
    let Some(material) = settings.kerberos.clone() else {
        return skipped(
            Check::KerberosTicket,
            Reason::DependencyFailed,
            "CredentialsResolved found no Kerberos material",
        );
    };
    let (row, files) = ticket(&material, t.deadline, t.per_address * 2).await;
    if let Some(files) = &files {
        settings.kerberos_env = Some(files.env.clone());
    }
    t.kerberos_files = files.map(std::sync::Arc::new);
    row
}

/// Writes the connection's Kerberos files and asks the KDC for a ticket.
async fn ticket(
    material: &KerberosMaterial,
    deadline: tokio::time::Instant,
    budget: Duration,
) -> (CheckReport, Option<KerberosFiles>) {
    let files = match KerberosFiles::write(material) {
        Ok(f) => f,
        Err(e) => {
            let hint =
                "kconn needs a writable temporary directory (TMPDIR; in the chart, an emptyDir)";
            return (
                row(
                    Check::KerberosTicket,
                    CheckResult::Failed,
                    Reason::KerberosFailed,
                    format!("cannot write the Kerberos files: {e}"),
                    Some(hint.into()),
                    None,
                ),
                None,
            );
        }
    };
    let left = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .min(budget);
    let base = "spec.authentication.kerberos";
    let result = kerberos::get_ticket(&files, &material.principal, left).await;
    let (why, field, hint): (Reason, String, &str) = match &result {
        Ok(()) => {
            let message = format!("the KDC issued a ticket for {}", material.principal);
            return (row(Check::KerberosTicket, CheckResult::Passed, Reason::TicketIssued, message, None, None), Some(files));
        }
        Err(TicketError::KdcUnreachable(_) | TicketError::Timeout(_)) => (
            Reason::KdcUnreachable,
            format!("{base}.krb5ConfSecretRef"),
            "check the realm's kdc entries in krb5.conf and that this agent can reach them (port 88)",
        ),
        Err(TicketError::PrincipalUnknown(_)) => {
            (Reason::PrincipalUnknown, format!("{base}.principal"), "check the principal's spelling and realm; ask the Kerberos admins whether it exists")
        }
        Err(TicketError::ClockSkew(_)) => {
            (Reason::ClockSkew, format!("{base}.principal"), "synchronise the clocks (NTP) of the node running kconn and the KDC; Kerberos allows 5 minutes by default")
        }
        Err(TicketError::KeytabRejected(_)) => (
            Reason::KeytabRejected,
            format!("{base}.keytabSecretRef"),
            "the keytab's key no longer matches the KDC (the principal's key or its version changed): export a new keytab",
        ),
        Err(TicketError::NoKinit | TicketError::Other(_)) => {
            (Reason::KerberosFailed, format!("{base}.principal"), "install the MIT Kerberos client (kinit) where kconn runs, and check the keytab and krb5.conf")
        }
    };
    let message = result.err().map(|e| e.to_string()).unwrap_or_default();
    (
        row(
            Check::KerberosTicket,
            CheckResult::Failed,
            why,
            message,
            Some(hint.into()),
            Some(field),
        ),
        Some(files),
    )
}
