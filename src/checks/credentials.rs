//! CredentialsResolved: every referenced Secret and key exists and holds a usable value; the result is
//! the client settings the network checks use. Pure: the Secrets come in a [`SecretStore`].

use std::time::SystemTime;

use crate::api::{
    Check, CheckReport, CheckResult, KafkaConnectionSpec, KerberosAuthentication,
    OAuthAuthentication, Reason, SchemaRegistry,
};
use crate::kafka::{ClientSettings, OAuthMaterial, RegistryMaterial, SaslCredentials, TlsMaterial};
use crate::kerberos::{conf, keytab, KerberosMaterial};
use crate::oauth::OAuthClient;
use crate::secrets::{SecretBytes, SecretStore};
use crate::validate::ValidSpec;

use super::{row, tls};
/// The CredentialsResolved step: every referenced Secret and key, read and checked.
pub(super) fn credentials_resolved<K: Kafka>(t: &mut Test<'_, K>) -> CheckReport {
    match resolve(t.input.spec, t.valid(), t.input.secrets, t.input.now) {
        Ok((settings, row)) => {
            t.settings = Some(settings);
            row
        }
        Err(row) => *row,
    }
}

/// Resolves the spec's credentials. `Err` is the failing row (field, reason, hint), boxed.
pub fn resolve(
    spec: &KafkaConnectionSpec,
    valid: &ValidSpec,
    store: &SecretStore,
    now: SystemTime,
) -> Result<(ClientSettings, CheckReport), Box<CheckReport>> {
    let bootstrap = valid.bootstrap.iter().map(ToString::to_string).collect();
    let mut settings = ClientSettings::plaintext(bootstrap);
    let mut used = Vec::new();

    if let Some(sasl) = spec.authentication.as_ref().and_then(|a| a.sasl.as_ref()) {
        let r = &sasl.secret_ref;
        let base = "spec.authentication.sasl.secretRef";
        let username = value(
            store,
            &r.name,
            &r.username_key,
            &format!("{base}.usernameKey"),
            base,
        )?;
        let password = value(
            store,
            &r.name,
            &r.password_key,
            &format!("{base}.passwordKey"),
            base,
        )?;
        for (v, key, field) in [
            (&username, &r.username_key, "usernameKey"),
            (&password, &r.password_key, "passwordKey"),
        ] {
            if v.expose_str().is_none() || v.expose().contains(&0) {
                return Err(fail(
                    format!("{base}.{field}"),
                    Reason::InvalidSecretValue,
                    format!("key {key:?} of Secret {:?} is not UTF-8 text without NUL bytes ({} bytes)", r.name, v.len()),
                    "SASL user names and passwords must be UTF-8 text: re-create the Secret value (kubectl create secret generic --from-literal)",
                ));
            }
        }
        settings.sasl = Some(SaslCredentials {
            mechanism: sasl.mechanism,
            username,
            password,
        });
        used.push(r.name.clone());
    }

    let mut weak = None;
    if let Some(krb) = spec
        .authentication
        .as_ref()
        .and_then(|a| a.kerberos.as_ref())
    {
        let (material, weak_enctypes) = kerberos(krb, store)?;
        weak = weak_enctypes;
        settings.kerberos = Some(material);
        used.push(krb.keytab_secret_ref.name.clone());
        used.push(krb.krb5_conf_secret_ref.name.clone());
    }

    let mut expiring = Vec::new();
    if let Some(oauth) = spec.authentication.as_ref().and_then(|a| a.oauth.as_ref()) {
        let (material, ca_expiry) = oauth_material(oauth, valid, store, now)?;
        if let Some(e) = ca_expiry {
            expiring.push(e);
        }
        settings.oauth = Some(material);
        used.push(oauth.client_secret_ref.name.clone());
        if let Some(ca) = &oauth.ca_secret_ref {
            used.push(ca.name.clone());
        }
    }
    if let Some(registry) = &spec.schema_registry {
        let (material, names, ca_expiry) = registry_material(registry, valid, store, now)?;
        expiring.extend(ca_expiry);
        settings.registry = Some(material);
        used.extend(names);
    }
    if let Some(tls) = &spec.tls {
        let mut material = TlsMaterial {
            server_name: tls.server_name.clone().filter(|n| !n.is_empty()),
            ..TlsMaterial::default()
        };
        if let Some(ca) = &tls.ca_secret_ref {
            let field = "spec.tls.caSecretRef";
            let pem = value(store, &ca.name, &ca.key, &format!("{field}.key"), field)?;
            let pem = pem_text(&pem, "CERTIFICATE", &ca.name, &ca.key, field)?;
            let info = certificate(&pem, &ca.name, &ca.key, field, now)?;
            if info.expires_in_secs < tls::EXPIRY_WARNING.as_secs() as i64 {
                expiring.push((
                    format!("CA {:?} in Secret {}", info.subject, ca.name),
                    info.expires_in_secs,
                    field,
                ));
            }
            material.ca_pem = Some(pem);
            used.push(ca.name.clone());
        }
        if let Some(cert) = &tls.client_cert_secret_ref {
            let field = "spec.tls.clientCertSecretRef";
            let (crt, key, info) = client_certificate(&cert.name, store, field, now)?;
            if info.expires_in_secs < tls::EXPIRY_WARNING.as_secs() as i64 {
                expiring.push((
                    format!(
                        "client certificate {:?} in Secret {}",
                        info.subject, cert.name
                    ),
                    info.expires_in_secs,
                    field,
                ));
            }
            material.client = Some((crt, key));
            used.push(cert.name.clone());
        }
        settings.tls = Some(material);
    }

    if let Some(message) = weak {
        let hint = "re-create the keytab with AES keys (ktadd -e aes256-cts-hmac-sha1-96:normal); RC4 is disabled by default in current Kerberos and Java";
        let report = row(
            Check::CredentialsResolved,
            CheckResult::Warning,
            Reason::WeakEnctype,
            message,
            Some(hint.into()),
            Some("spec.authentication.kerberos.keytabSecretRef".into()),
        );
        return Ok((settings, report));
    }
    if settings.oauth.is_some() && settings.tls.is_none() {
        let report = row(
            Check::CredentialsResolved,
            CheckResult::Warning,
            Reason::CredentialsUnencrypted,
            "SASL OAUTHBEARER without TLS: the token crosses the network in clear text, and anyone on the path can use it until it expires",
            Some("use the brokers' SASL_SSL listener and add spec.tls (caSecretRef if its CA is private)".into()),
            Some("spec.tls".into()),
        );
        return Ok((settings, report));
    }
    if let Some(sasl) = settings.sasl.as_ref().filter(|_| settings.tls.is_none()) {
        let message = match sasl.mechanism {
            crate::api::SaslMechanism::Plain => "SASL PLAIN without TLS: the password crosses the network in clear text, readable by anyone on the path",
            _ => "SASL SCRAM without TLS: the password itself is not sent, but the login exchange and every message are readable on the path, and the exchange allows an offline guess of the password",
        };
        let report = row(
            Check::CredentialsResolved,
            CheckResult::Warning,
            Reason::CredentialsUnencrypted,
            message,
            Some("use the brokers' SASL_SSL listener and add spec.tls (caSecretRef if its CA is private)".into()),
            Some("spec.tls".into()),
        );
        return Ok((settings, report));
    }
    if let Some((what, secs, field)) = expiring.first() {
        let report = row(
            Check::CredentialsResolved,
            CheckResult::Warning,
            Reason::CertificateExpiringSoon,
            format!("the {what} {}", tls::describe_expiry(*secs)),
            Some("renew the certificate and update the Secret (kconn re-tests when the Secret changes)".into()),
            Some(field.to_string()),
        );
        return Ok((settings, report));
    }

    let report = if used.is_empty() {
        row(
            Check::CredentialsResolved,
            CheckResult::Passed,
            Reason::NoCredentials,
            "the spec references no Secret",
            None,
            None,
        )
    } else {
        used.sort();
        used.dedup();
        row(
            Check::CredentialsResolved,
            CheckResult::Passed,
            Reason::CredentialsResolved,
            format!(
                "read Secret{} {}",
                if used.len() == 1 { "" } else { "s" },
                used.join(", ")
            ),
            None,
            None,
        )
    };
    Ok((settings, report))
}

/// A certificate about to expire: what it is, the seconds left and the field that names it.
type Expiring = (String, i64, &'static str);

/// The schema registry's basic auth, CA and client certificate: the material, the Secrets read, and
/// the certificates about to expire.
fn registry_material(
    registry: &SchemaRegistry,
    valid: &ValidSpec,
    store: &SecretStore,
    now: SystemTime,
) -> Result<(RegistryMaterial, Vec<String>, Vec<Expiring>), Box<CheckReport>> {
    let mut used = Vec::new();
    let mut expiring = Vec::new();
    let mut basic = None;
    if let Some(r) = &registry.basic_auth_secret_ref {
        let base = "spec.schemaRegistry.basicAuthSecretRef";
        let (user, password) = basic_pair(
            store,
            base,
            &r.name,
            [("usernameKey", &r.username_key), ("passwordKey", &r.password_key)],
            "put the user name (for Confluent Cloud, the API key) alone under usernameKey, and the password (API secret) under passwordKey",
        )?;
        basic = Some((user, password));
        used.push(r.name.clone());
    }
    let mut tls = TlsMaterial::default();
    if let Some(ca) = &registry.ca_secret_ref {
        let field = "spec.schemaRegistry.caSecretRef";
        let pem = value(store, &ca.name, &ca.key, &format!("{field}.key"), field)?;
        let pem = pem_text(&pem, "CERTIFICATE", &ca.name, &ca.key, field)?;
        let info = certificate(&pem, &ca.name, &ca.key, field, now)?;
        if info.expires_in_secs < tls::EXPIRY_WARNING.as_secs() as i64 {
            expiring.push((
                format!(
                    "schema registry CA {:?} in Secret {}",
                    info.subject, ca.name
                ),
                info.expires_in_secs,
                field,
            ));
        }
        tls.ca_pem = Some(pem);
        used.push(ca.name.clone());
    }
    if let Some(cert) = &registry.client_cert_secret_ref {
        let field = "spec.schemaRegistry.clientCertSecretRef";
        let (crt, key, info) = client_certificate(&cert.name, store, field, now)?;
        if info.expires_in_secs < tls::EXPIRY_WARNING.as_secs() as i64 {
            expiring.push((
                format!(
                    "schema registry client certificate {:?} in Secret {}",
                    info.subject, cert.name
                ),
                info.expires_in_secs,
                field,
            ));
        }
        tls.client = Some((crt, key));
        used.push(cert.name.clone());
    }
    let material = RegistryMaterial {
        urls: valid.registry_urls.clone(),
        basic,
        tls,
    };
    Ok((material, used, expiring))
}

/// The OAuth client (id and secret from their Secret), the token endpoint's CA, and the extensions.
fn oauth_material(
    oauth: &OAuthAuthentication,
    valid: &ValidSpec,
    store: &SecretStore,
    now: SystemTime,
) -> Result<(OAuthMaterial, Option<Expiring>), Box<CheckReport>> {
    let base = "spec.authentication.oauth.clientSecretRef";
    let r = &oauth.client_secret_ref;
    let (id, secret) = basic_pair(
        store,
        base,
        &r.name,
        [("clientIdKey", &r.client_id_key), ("clientSecretKey", &r.client_secret_key)],
        "use the client id the provider issued (it has no ':'), or check that the key holds the id and not id:secret",
    )?;
    let mut expiring = None;
    let ca_pem = match &oauth.ca_secret_ref {
        Some(ca) => {
            let field = "spec.authentication.oauth.caSecretRef";
            let pem = value(store, &ca.name, &ca.key, &format!("{field}.key"), field)?;
            let pem = pem_text(&pem, "CERTIFICATE", &ca.name, &ca.key, field)?;
            let info = certificate(&pem, &ca.name, &ca.key, field, now)?;
            if info.expires_in_secs < tls::EXPIRY_WARNING.as_secs() as i64 {
                expiring = Some((
                    format!("token endpoint CA {:?} in Secret {}", info.subject, ca.name),
                    info.expires_in_secs,
                    field,
                ));
            }
            Some(pem)
        }
        None => None,
    };
    let endpoint = valid
        .token_endpoint
        .clone()
        .expect("a valid spec with oauth has a parsed token endpoint");
    let material = OAuthMaterial {
        endpoint,
        client: OAuthClient {
            id,
            secret,
            scope: oauth.scope.clone().filter(|s| !s.is_empty()),
        },
        extensions: oauth
            .extensions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ca_pem,
    };
    Ok((material, expiring))
}

/// A user (or client id) and password (or client secret) for HTTP basic authentication, from two keys
/// of one Secret: both present, text without control characters, and no ':' in the first (basic
/// authentication separates the two by it). `keys` are (field name, key) for the user, then the password.
fn basic_pair(
    store: &SecretStore,
    base: &str,
    secret: &str,
    keys: [(&str, &str); 2],
    colon_hint: &str,
) -> Result<(SecretBytes, SecretBytes), Box<CheckReport>> {
    let [(user_field, user_key), (password_field, password_key)] = keys;
    let user = value(
        store,
        secret,
        user_key,
        &format!("{base}.{user_field}"),
        base,
    )?;
    let password = value(
        store,
        secret,
        password_key,
        &format!("{base}.{password_field}"),
        base,
    )?;
    for (v, key, field) in [
        (&user, user_key, user_field),
        (&password, password_key, password_field),
    ] {
        if v.expose_str().is_none() || v.expose().iter().any(|b| b.is_ascii_control()) {
            return Err(fail(
                format!("{base}.{field}"),
                Reason::InvalidSecretValue,
                format!("key {key:?} of Secret {secret:?} is not UTF-8 text without control characters ({} bytes)", v.len()),
                "store the value as it is, without a trailing newline (kubectl create secret generic --from-literal)",
            ));
        }
    }
    if user.expose().contains(&b':') {
        return Err(fail(
            format!("{base}.{user_field}"),
            Reason::InvalidSecretValue,
            format!("the value of key {user_key:?} of Secret {secret:?} holds ':', which HTTP basic authentication uses to separate it from the secret"),
            colon_hint,
        ));
    }
    Ok((user, password))
}

/// A `kubernetes.io/tls` Secret's certificate and key: PEM, parsed, and belonging together.
fn client_certificate(
    name: &str,
    store: &SecretStore,
    field: &'static str,
    now: SystemTime,
) -> Result<(String, SecretBytes, tls::CertInfo), Box<CheckReport>> {
    let crt = value(store, name, "tls.crt", field, field)?;
    let key = value(store, name, "tls.key", field, field)?;
    let crt = pem_text(&crt, "CERTIFICATE", name, "tls.crt", field)?;
    pem_text(&key, "PRIVATE KEY", name, "tls.key", field)?;
    let info = certificate(&crt, name, "tls.crt", field, now)?;
    match tls::key_matches(&crt, key.expose()) {
        Ok(true) => Ok((crt, key, info)),
        Ok(false) => Err(fail(
            field.to_string(),
            Reason::KeyMismatch,
            format!("tls.key in Secret {name:?} does not belong to the certificate in tls.crt (CN {:?})", info.subject),
            "put the certificate and the private key it was issued for into the same kubernetes.io/tls Secret",
        )),
        Err(why) => Err(fail(
            field.to_string(),
            Reason::InvalidSecretValue,
            format!("tls.key in Secret {name:?}: {why}"),
            "store an unencrypted PEM private key under tls.key",
        )),
    }
}

fn fail(field: String, why: Reason, message: String, hint: &str) -> Box<CheckReport> {
    Box::new(row(
        Check::CredentialsResolved,
        CheckResult::Failed,
        why,
        message,
        Some(hint.to_string()),
        Some(field),
    ))
}

/// The largest Secret value kconn uses: what the API server stores for a whole Secret. Larger values can
/// only come from manifests on disk (`kconn check -f`); librdkafka is never handed one (a SCRAM password
/// of 4 MiB got no answer from the broker, one of 10 MiB crashed the process).
pub const MAX_SECRET_VALUE: usize = 1 << 20;

/// How many principals of a keytab a message names (a keytab of 1 MiB holds thousands).
const MAX_LISTED: usize = 5;

fn value(
    store: &SecretStore,
    name: &str,
    key: &str,
    key_field: &str,
    secret_field: &str,
) -> Result<SecretBytes, Box<CheckReport>> {
    let Some(secret) = store.get(name) else {
        return Err(fail(
            format!("{secret_field}.name"),
            Reason::SecretNotFound,
            format!("Secret {name:?} was not found in the connection's namespace"),
            "create the Secret in the same namespace as the KafkaConnection (kconn check: pass its manifest with -f), or fix the name",
        ));
    };
    match secret.data.get(key) {
        Some(v) if v.len() > MAX_SECRET_VALUE => Err(fail(
            key_field.to_string(),
            Reason::InvalidSecretValue,
            format!(
                "key {key:?} of Secret {name:?} holds {} bytes; a Secret holds at most {MAX_SECRET_VALUE} (1 MiB)",
                v.len()
            ),
            "point the reference at the right key: a password, keytab, krb5.conf or certificate is far smaller",
        )),
        Some(v) if !v.is_empty() => Ok(v.clone()),
        Some(_) => Err(fail(
            key_field.to_string(),
            Reason::InvalidSecretValue,
            format!("key {key:?} of Secret {name:?} is empty"),
            "put the value into the Secret",
        )),
        // The other keys' names are not listed: whoever may write a KafkaConnection learns no more
        // about a Secret than whether it holds the key named (see SECURITY.md).
        None => Err(fail(
            key_field.to_string(),
            Reason::SecretKeyNotFound,
            format!(
                "Secret {name:?} has no key {key:?} ({})",
                match secret.data.len() {
                    0 => "it is empty".to_string(),
                    1 => "it has 1 other key".to_string(),
                    n => format!("it has {n} other keys"),
                }
            ),
            "add the key to the Secret, or point the reference at the key that holds the value (kubectl describe secret NAME lists its keys)",
        )),
    }
}

/// Reads and checks the keytab and krb5.conf: both parse, the principal (with its realm) is in the
/// keytab with a usable key, and krb5.conf knows the realm's KDCs. `Ok` carries a warning text when
/// the principal's keys are all deprecated (RC4).
fn kerberos(
    krb: &KerberosAuthentication,
    store: &SecretStore,
) -> Result<(KerberosMaterial, Option<String>), Box<CheckReport>> {
    let base = "spec.authentication.kerberos";
    let kt_ref = &krb.keytab_secret_ref;
    let conf_ref = &krb.krb5_conf_secret_ref;
    let keytab_bytes = value(
        store,
        &kt_ref.name,
        &kt_ref.key,
        &format!("{base}.keytabSecretRef.key"),
        &format!("{base}.keytabSecretRef"),
    )?;
    let conf_bytes = value(
        store,
        &conf_ref.name,
        &conf_ref.key,
        &format!("{base}.krb5ConfSecretRef.key"),
        &format!("{base}.krb5ConfSecretRef"),
    )?;
    let entries = keytab::parse(keytab_bytes.expose()).map_err(|e| {
        fail(
            format!("{base}.keytabSecretRef"),
            Reason::InvalidSecretValue,
            format!("key {:?} of Secret {:?}: {e}", kt_ref.key, kt_ref.name),
            "store the binary keytab (kubectl create secret generic NAME --from-file=krb5.keytab)",
        )
    })?;
    let conf_text = conf_bytes.expose_str().ok_or_else(|| {
        fail(
            format!("{base}.krb5ConfSecretRef"),
            Reason::InvalidSecretValue,
            format!(
                "key {:?} of Secret {:?} is not text",
                conf_ref.key, conf_ref.name
            ),
            "store the krb5.conf text",
        )
    })?;
    let conf = conf::parse(conf_text).map_err(|e| {
        fail(
            format!("{base}.krb5ConfSecretRef"),
            Reason::InvalidSecretValue,
            format!("krb5.conf in Secret {:?} is malformed: {e}", conf_ref.name),
            "fix the krb5.conf ([libdefaults] default_realm, [realms] REALM = { kdc = host:port })",
        )
    })?;
    let principal = match krb.principal.rsplit_once('@') {
        Some(_) => krb.principal.clone(),
        None => match &conf.default_realm {
            Some(realm) => format!("{}@{realm}", krb.principal),
            None => {
                return Err(fail(
                    format!("{base}.principal"),
                    Reason::RealmUnknown,
                    format!("the principal {:?} names no realm and krb5.conf has no default_realm", krb.principal),
                    "write the principal with its realm (pipeline@EXAMPLE.COM) or set default_realm in krb5.conf",
                ))
            }
        },
    };
    // The principal as librdkafka and kinit get it: a default_realm from the tenant's krb5.conf is
    // held to the same characters as a principal in the spec.
    if let Err(msg) = crate::kerberos::check_principal(&principal, crate::kerberos::Realm::Required)
    {
        let from_conf = !krb.principal.contains('@');
        return Err(fail(
            if from_conf {
                format!("{base}.krb5ConfSecretRef")
            } else {
                format!("{base}.principal")
            },
            Reason::InvalidPrincipal,
            if from_conf {
                format!(
                    "with default_realm from krb5.conf in Secret {:?}: {msg}",
                    conf_ref.name
                )
            } else {
                msg
            },
            if from_conf {
                "set default_realm in krb5.conf to a realm of letters, digits, '.', '_' and '-', or write the realm in the principal"
            } else {
                "write the client principal as primary[/instance]@REALM, e.g. pipeline@EXAMPLE.COM"
            },
        ));
    }
    let realm = principal
        .rsplit_once('@')
        .map(|(_, r)| r)
        .unwrap_or_default();
    if conf.kdcs(realm).is_empty() && !conf.dns_lookup_kdc {
        return Err(fail(
            format!("{base}.krb5ConfSecretRef"),
            Reason::RealmUnknown,
            format!("krb5.conf in Secret {:?} lists no KDC for realm {realm}", conf_ref.name),
            &format!("add [realms] {realm} = {{ kdc = kdc.example.com:88 }} to krb5.conf, or set dns_lookup_kdc = true"),
        ));
    }
    let mine: Vec<&keytab::Entry> = entries
        .iter()
        .filter(|e| e.principal == principal)
        .collect();
    if mine.is_empty() {
        let mut held: Vec<&str> = entries.iter().map(|e| e.principal.as_str()).collect();
        held.dedup();
        return Err(fail(
            format!("{base}.principal"),
            Reason::PrincipalNotInKeytab,
            format!("the keytab in Secret {:?} has no key for {principal} (it holds: {})", kt_ref.name, super::bounded_list(&held, MAX_LISTED)),
            "set spec.authentication.kerberos.principal to a principal the keytab holds, or export a keytab for this principal (kadmin: ktadd)",
        ));
    }
    let strengths: Vec<keytab::Strength> =
        mine.iter().map(|e| keytab::strength(e.enctype)).collect();
    let names = || {
        mine.iter()
            .map(|e| keytab::EnctypeName(e.enctype).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let weak = if strengths.contains(&keytab::Strength::Strong) {
        None
    } else if strengths.contains(&keytab::Strength::Deprecated) {
        Some(format!(
            "the keys for {principal} use only deprecated encryption types: {}",
            names()
        ))
    } else {
        return Err(fail(
            format!("{base}.keytabSecretRef"),
            Reason::NoUsableEnctype,
            format!(
                "the keys for {principal} use only removed encryption types: {}",
                names()
            ),
            "re-create the keytab with AES keys (ktadd -e aes256-cts-hmac-sha1-96:normal)",
        ));
    };
    let material = KerberosMaterial {
        principal,
        service_name: krb.service_name.clone(),
        keytab: keytab_bytes,
        krb5_conf: conf_text.to_string(),
    };
    Ok((material, weak))
}

/// Parses a PEM certificate; an expired one fails the check.
fn certificate(
    pem: &str,
    name: &str,
    key: &str,
    field: &str,
    now: SystemTime,
) -> Result<tls::CertInfo, Box<CheckReport>> {
    let info = tls::cert_info(pem, now).map_err(|why| {
        fail(
            field.to_string(),
            Reason::InvalidSecretValue,
            format!("key {key:?} of Secret {name:?}: {why}"),
            "store a PEM X.509 certificate under that key",
        )
    })?;
    if info.expires_in_secs <= 0 {
        return Err(fail(
            field.to_string(),
            Reason::CertificateExpired,
            format!(
                "the certificate {:?} in Secret {name:?} {}",
                info.subject,
                tls::describe_expiry(info.expires_in_secs)
            ),
            "renew the certificate and update the Secret",
        ));
    }
    Ok(info)
}

/// The value as PEM text holding at least one `label` block.
fn pem_text(
    v: &SecretBytes,
    label: &str,
    name: &str,
    key: &str,
    field: &str,
) -> Result<String, Box<CheckReport>> {
    let text = v.expose_str().unwrap_or_default();
    let has_block = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{label}-----")));
    if has_block {
        Ok(text.to_string())
    } else {
        Err(fail(
            field.to_string(),
            Reason::InvalidSecretValue,
            format!("key {key:?} of Secret {name:?} holds no PEM {label} block"),
            &format!("store the PEM text (-----BEGIN {label}-----) under {key}"),
        ))
    }
}

use super::engine::Test;
use crate::kafka::Kafka;
#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::KafkaConnection;
    use k8s_openapi::api::core::v1::Secret;

    fn setup(
        spec: serde_json::Value,
        secrets: serde_json::Value,
    ) -> Result<(ClientSettings, CheckReport), Box<CheckReport>> {
        let conn: KafkaConnection =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "c"}, "spec": spec}))
                .unwrap();
        let valid = crate::validate::validate(&conn.spec).unwrap();
        let list: Vec<Secret> = serde_json::from_value(secrets).unwrap();
        let store = SecretStore::for_namespace(&list, "default", "default");
        resolve(&conn.spec, &valid, &store, SystemTime::now())
    }

    fn sasl_spec() -> serde_json::Value {
        serde_json::json!({"bootstrapServers": ["k:1"], "topics": {"expression": "x"},
            "authentication": {"sasl": {"mechanism": "PLAIN", "secretRef": {"name": "u"}}}})
    }

    #[test]
    fn resolves_sasl_and_never_formats_the_password() {
        let secret = serde_json::json!([{"metadata": {"name": "u"}, "stringData": {"username": "alice", "password": "canary-pw-91"}}]);
        let (settings, report) = setup(sasl_spec(), secret.clone()).unwrap();
        // Without TLS the password would cross the network in clear text: resolved, with a warning.
        assert_eq!(
            (
                report.result,
                report.reason.as_str(),
                report.field.as_deref()
            ),
            (
                CheckResult::Warning,
                Reason::CredentialsUnencrypted.as_str(),
                Some("spec.tls")
            )
        );
        assert_eq!(settings.protocol(), "SASL_PLAINTEXT");
        assert!(!format!("{settings:?} {report:?}").contains("canary-pw-91"));
        let mut with_tls = sasl_spec();
        with_tls["tls"] = serde_json::json!({});
        let (settings, report) = setup(with_tls, secret).unwrap();
        assert_eq!(
            (report.result, report.reason.as_str()),
            (CheckResult::Passed, Reason::CredentialsResolved.as_str())
        );
        assert_eq!(settings.protocol(), "SASL_SSL");
    }

    #[test]
    fn missing_secret_key_and_bad_values_name_the_field() {
        let cases = [
            (
                serde_json::json!([]),
                "spec.authentication.sasl.secretRef.name",
                Reason::SecretNotFound,
            ),
            (
                serde_json::json!([{"metadata": {"name": "u"}, "stringData": {"username": "a"}}]),
                "spec.authentication.sasl.secretRef.passwordKey",
                Reason::SecretKeyNotFound,
            ),
            (
                serde_json::json!([{"metadata": {"name": "u"}, "stringData": {"username": "a", "password": ""}}]),
                "spec.authentication.sasl.secretRef.passwordKey",
                Reason::InvalidSecretValue,
            ),
            (
                serde_json::json!([{"metadata": {"name": "u"}, "data": {"username": "YQ==", "password": "/w=="}}]),
                "spec.authentication.sasl.secretRef.passwordKey",
                Reason::InvalidSecretValue,
            ),
            (
                serde_json::json!([{"metadata": {"name": "u"}, "stringData": {"username": "a", "password": "x".repeat(MAX_SECRET_VALUE + 1)}}]),
                "spec.authentication.sasl.secretRef.passwordKey",
                Reason::InvalidSecretValue,
            ),
        ];
        for (secrets, field, why) in cases {
            let r = setup(sasl_spec(), secrets).expect_err(field);
            assert_eq!(
                (r.field.as_deref(), r.reason.as_str(), r.result),
                (Some(field), why.as_str(), CheckResult::Failed),
                "{r:?}"
            );
            assert!(r.hint.is_some());
        }
    }

    #[test]
    fn tls_material_is_parsed_and_checked() {
        let spec = serde_json::json!({"bootstrapServers": ["k:1"], "topics": {"expression": "x"},
            "tls": {"caSecretRef": {"name": "ca", "key": "ca.crt"}, "clientCertSecretRef": {"name": "cert"}}});
        let (ca, _) = super::tls::self_signed("ca", -1, 365);
        let (good, good_key) = super::tls::self_signed("client", -1, 90);
        let (soon, soon_key) = super::tls::self_signed("client", -1, 5);
        let (old, old_key) = super::tls::self_signed("client", -30, -1);
        let secrets = |crt: &str, key: &str| {
            serde_json::json!([
            {"metadata": {"name": "ca"}, "stringData": {"ca.crt": ca}},
            {"metadata": {"name": "cert"}, "stringData": {"tls.crt": crt, "tls.key": key}}])
        };

        let (settings, report) = setup(spec.clone(), secrets(&good, &good_key)).unwrap();
        assert_eq!(
            (report.result, settings.protocol()),
            (CheckResult::Passed, "SSL")
        );

        let (_, report) = setup(spec.clone(), secrets(&soon, &soon_key)).unwrap();
        assert_eq!(
            (report.result, report.reason.as_str()),
            (
                CheckResult::Warning,
                Reason::CertificateExpiringSoon.as_str()
            )
        );
        assert!(report.message.contains("expires in"), "{report:?}");

        let r = setup(spec.clone(), secrets(&old, &old_key)).unwrap_err();
        assert_eq!(
            (r.reason.as_str(), r.field.as_deref()),
            (
                Reason::CertificateExpired.as_str(),
                Some("spec.tls.clientCertSecretRef")
            )
        );

        let r = setup(spec.clone(), secrets(&good, &soon_key)).unwrap_err();
        assert_eq!(r.reason, Reason::KeyMismatch);
        assert!(!r.message.contains("PRIVATE KEY"), "{r:?}");

        let r = setup(
            spec,
            secrets(
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                &good_key,
            ),
        )
        .unwrap_err();
        assert_eq!(r.reason, Reason::InvalidSecretValue);
    }

    #[test]
    fn tls_needs_pem() {
        let spec = serde_json::json!({"bootstrapServers": ["k:1"], "topics": {"expression": "x"}, "tls": {"caSecretRef": {"name": "ca", "key": "ca.crt"}}});
        let r = setup(
            spec,
            serde_json::json!([{"metadata": {"name": "ca"}, "stringData": {"ca.crt": "not pem"}}]),
        )
        .unwrap_err();
        assert_eq!(r.reason, Reason::InvalidSecretValue);
    }
}
