//! The binding Secret: what a passing test used, as the keys applications read (compatible with
//! Strimzi's KafkaAccess and the Service Binding `kafka` type) and two client configuration files
//! that work as they are. Pure: the tested settings in, the Secret's data out.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use crate::api::{
    owner_reference, Acks, BindingSpec, KafkaConnectionSpec, CONNECTION_ANNOTATION, MANAGER,
};
use crate::kafka::ClientSettings;
use crate::secrets::SecretBytes;

/// The Secret type of a binding (the Service Binding specification's `type` key is `kafka`).
pub const SECRET_TYPE: &str = "servicebinding.io/kafka";

/// The name of a connection's binding Secret.
pub fn secret_name(connection: &str, binding: &BindingSpec) -> String {
    binding
        .secret_name
        .clone()
        .unwrap_or_else(|| format!("{connection}-binding"))
}

/// Where applications mount it.
pub fn mount_path(secret_name: &str, binding: &BindingSpec) -> String {
    binding
        .mount_path
        .clone()
        .unwrap_or_else(|| format!("/bindings/{secret_name}"))
}

/// A rendered binding: the Secret's name and data. The data holds credentials: its `Debug` names
/// the keys only.
#[derive(Clone, PartialEq)]
pub struct Binding {
    /// The Secret's name.
    pub name: String,
    /// Key to value.
    pub data: BTreeMap<String, SecretBytes>,
}

impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binding")
            .field("name", &self.name)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The binding Secret of `conn`: of the Service Binding type, with the spec's labels and annotations
/// (kconn's own win), in the connection's namespace, owned by it when its `uid` is known.
pub fn secret(
    namespace: &str,
    connection: &str,
    uid: Option<&str>,
    spec: &BindingSpec,
    binding: &Binding,
) -> Secret {
    let mut labels = spec.labels.clone();
    labels.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
    let mut annotations = spec.annotations.clone();
    annotations.insert(CONNECTION_ANNOTATION.into(), connection.into());
    Secret {
        metadata: ObjectMeta {
            name: Some(binding.name.clone()),
            namespace: Some(namespace.into()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: uid.map(|uid| vec![owner_reference(connection, uid)]),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.into()),
        data: Some(
            binding
                .data
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.expose().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// A binding Secret to print (`kconn check --binding`). Holds credentials: its `Debug` says so only.
#[derive(Clone)]
pub struct Manifest(pub Secret);

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Manifest({:?})", self.0.metadata.name)
    }
}

/// A value the client files cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} holds a line break, which librdkafka.properties cannot carry")]
pub struct Unrepresentable {
    /// Which value (never the value itself).
    pub what: &'static str,
}

/// The binding of a connection whose test passed with `settings`.
pub fn render(
    connection: &str,
    spec: &KafkaConnectionSpec,
    binding: &BindingSpec,
    settings: &ClientSettings,
) -> Result<Binding, Unrepresentable> {
    let name = secret_name(connection, binding);
    let mount = mount_path(&name, binding);
    let mut data: BTreeMap<String, SecretBytes> = BTreeMap::new();
    let mut put = |key: &str, value: &[u8]| {
        data.insert(key.to_string(), SecretBytes::new(value.to_vec()));
    };
    let bootstrap = settings.bootstrap.join(",");
    let protocol = settings.protocol();
    put("type", b"kafka");
    put("provider", MANAGER.as_bytes());
    for key in ["bootstrap.servers", "bootstrap-servers", "bootstrapServers"] {
        put(key, bootstrap.as_bytes());
    }
    for key in ["security.protocol", "securityProtocol"] {
        put(key, protocol.as_bytes());
    }
    // The Java client's and librdkafka's settings, in the order they are written.
    let mut java: Vec<(&str, String)> = vec![
        ("bootstrap.servers", bootstrap.clone()),
        ("security.protocol", protocol.to_string()),
    ];
    let mut rdkafka: Vec<(&str, String)> = java.clone();
    let mechanism = match (&settings.sasl, &settings.kerberos, &settings.oauth) {
        (Some(sasl), _, _) => Some(sasl.mechanism.as_str()),
        (None, Some(_), _) => Some("GSSAPI"),
        (None, None, Some(_)) => Some("OAUTHBEARER"),
        (None, None, None) => None,
    };
    if let Some(mechanism) = mechanism {
        for key in ["sasl.mechanism", "saslMechanism"] {
            put(key, mechanism.as_bytes());
        }
        java.push(("sasl.mechanism", mechanism.to_string()));
        rdkafka.push(("sasl.mechanism", mechanism.to_string()));
    }
    if let Some(sasl) = &settings.sasl {
        let user = one_line(&sasl.username, "the SASL user name")?;
        let password = one_line(&sasl.password, "the SASL password")?;
        put("username", user.as_bytes());
        put("user", user.as_bytes());
        put("password", password.as_bytes());
        let module = match sasl.mechanism {
            crate::api::SaslMechanism::Plain => {
                "org.apache.kafka.common.security.plain.PlainLoginModule"
            }
            _ => "org.apache.kafka.common.security.scram.ScramLoginModule",
        };
        let jaas = format!(
            "{module} required username=\"{}\" password=\"{}\";",
            jaas_quote(user),
            jaas_quote(password)
        );
        put("sasl.jaas.config", jaas.as_bytes());
        java.push(("sasl.jaas.config", jaas));
        rdkafka.push(("sasl.username", user.to_string()));
        rdkafka.push(("sasl.password", password.to_string()));
    }
    if let Some(krb) = &settings.kerberos {
        let keytab = format!("{mount}/keytab");
        put("sasl.kerberos.service.name", krb.service_name.as_bytes());
        put("principal", krb.principal.as_bytes());
        put("keytab", krb.keytab.expose());
        put("krb5.conf", krb.krb5_conf.as_bytes());
        let jaas = format!(
            "com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true keyTab=\"{}\" principal=\"{}\";",
            jaas_quote(&keytab),
            jaas_quote(&krb.principal)
        );
        put("sasl.jaas.config", jaas.as_bytes());
        java.push(("sasl.kerberos.service.name", krb.service_name.clone()));
        java.push(("sasl.jaas.config", jaas));
        rdkafka.push(("sasl.kerberos.service.name", krb.service_name.clone()));
        rdkafka.push(("sasl.kerberos.principal", krb.principal.clone()));
        rdkafka.push(("sasl.kerberos.keytab", keytab));
    }
    if let Some(oauth) = &settings.oauth {
        let id = one_line(&oauth.client.id, "the OAuth client id")?;
        let secret = one_line(&oauth.client.secret, "the OAuth client secret")?;
        let url = oauth.endpoint.url();
        put("clientId", id.as_bytes());
        put("clientSecret", secret.as_bytes());
        put("sasl.oauthbearer.token.endpoint.url", url.as_bytes());
        put("tokenEndpointUrl", url.as_bytes());
        let scope = oauth.client.scope.as_deref();
        if let Some(scope) = scope {
            put("scope", scope.as_bytes());
        }
        // The Java client: its own OAuth login (Kafka 3.1+), the client in the JAAS options, the
        // extensions as extension_<key>, the token endpoint's CA as a PEM trust store file.
        let mut jaas = format!(
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId=\"{}\" clientSecret=\"{}\"",
            jaas_quote(id),
            jaas_quote(secret)
        );
        if let Some(scope) = scope {
            jaas.push_str(&format!(" scope=\"{}\"", jaas_quote(scope)));
        }
        for (k, v) in &oauth.extensions {
            jaas.push_str(&format!(" extension_{k}=\"{}\"", jaas_quote(v)));
        }
        if let Some(ca) = &oauth.ca_pem {
            put("oauth.ca.crt", ca.as_bytes());
            jaas.push_str(&format!(
                " ssl.truststore.type=\"PEM\" ssl.truststore.location=\"{}\"",
                jaas_quote(&format!("{mount}/oauth.ca.crt"))
            ));
        }
        jaas.push(';');
        put("sasl.jaas.config", jaas.as_bytes());
        java.push((
            "sasl.login.callback.handler.class",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler".into(),
        ));
        java.push(("sasl.oauthbearer.token.endpoint.url", url.clone()));
        java.push(("sasl.jaas.config", jaas));
        // librdkafka's own OIDC flow, as kconn's test used it.
        rdkafka.push(("sasl.oauthbearer.method", "oidc".into()));
        rdkafka.push(("sasl.oauthbearer.token.endpoint.url", url));
        rdkafka.push(("sasl.oauthbearer.client.id", id.to_string()));
        rdkafka.push(("sasl.oauthbearer.client.secret", secret.to_string()));
        if let Some(scope) = scope {
            rdkafka.push(("sasl.oauthbearer.scope", scope.to_string()));
        }
        if let Some(ext) = oauth.extensions_setting() {
            rdkafka.push(("sasl.oauthbearer.extensions", ext));
        }
        if oauth.ca_pem.is_some() {
            rdkafka.push(("https.ca.location", format!("{mount}/oauth.ca.crt")));
        }
    }
    if let Some(tls) = &settings.tls {
        if let Some(ca) = &tls.ca_pem {
            put("ssl.truststore.crt", ca.as_bytes());
            java.push(("ssl.truststore.type", "PEM".into()));
            java.push(("ssl.truststore.certificates", ca.clone()));
            rdkafka.push(("ssl.ca.location", format!("{mount}/ssl.truststore.crt")));
        }
        if let Some((cert, key)) = &tls.client {
            let key_text = String::from_utf8_lossy(key.expose()).into_owned();
            put("ssl.keystore.crt", cert.as_bytes());
            put("ssl.keystore.key", key.expose());
            java.push(("ssl.keystore.type", "PEM".into()));
            java.push(("ssl.keystore.certificate.chain", cert.clone()));
            java.push(("ssl.keystore.key", key_text));
            rdkafka.push((
                "ssl.certificate.location",
                format!("{mount}/ssl.keystore.crt"),
            ));
            rdkafka.push(("ssl.key.location", format!("{mount}/ssl.keystore.key")));
        }
    }
    // What the spec says producers should use.
    if spec.role.writes() {
        let acks = match spec.producer.acks {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::MajorityIsr | Acks::AllIsr => "all",
        };
        let compression = spec.producer.compression.as_str();
        for props in [&mut java, &mut rdkafka] {
            props.push(("acks", acks.to_string()));
            props.push(("compression.type", compression.to_string()));
        }
    }
    let header =
        format!("# Published by kconn from a passing test of KafkaConnection {connection}.\n");
    let java_file: String = java
        .iter()
        .map(|(k, v)| format!("{k}={}\n", java_escape(v)))
        .collect();
    put(
        "client.properties",
        (header.clone() + &java_file).as_bytes(),
    );
    let mut rdkafka_file = header;
    for (k, v) in &rdkafka {
        if v.contains(['\n', '\r']) {
            return Err(Unrepresentable { what: k_name(k) });
        }
        rdkafka_file.push_str(&format!("{k}={v}\n"));
    }
    put("librdkafka.properties", rdkafka_file.as_bytes());
    Ok(Binding { name, data })
}

/// The name of a librdkafka setting, for an error.
fn k_name(key: &str) -> &'static str {
    match key {
        "sasl.kerberos.principal" => "the Kerberos principal",
        "sasl.kerberos.service.name" => "the Kerberos service name",
        _ => "a setting",
    }
}

/// A credential as one line of UTF-8 text, or which one is not.
fn one_line<'a>(v: &'a SecretBytes, what: &'static str) -> Result<&'a str, Unrepresentable> {
    match v.expose_str() {
        Some(s) if !s.contains(['\n', '\r']) => Ok(s),
        _ => Err(Unrepresentable { what }),
    }
}

/// A value inside a JAAS double-quoted string.
fn jaas_quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A value as `java.util.Properties.load` reads it back: backslash escapes for `\`, line breaks, tabs
/// and a leading space, and `\uXXXX` for everything outside printable ASCII (the format is Latin-1).
pub fn java_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 16);
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            ' ' if i == 0 => out.push_str("\\ "),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SaslMechanism;
    use crate::kafka::{SaslCredentials, TlsMaterial};
    use crate::kerberos::KerberosMaterial;

    fn spec(role: &str) -> KafkaConnectionSpec {
        serde_json::from_value(serde_json::json!({"role": role, "bootstrapServers": ["k:9092"],
            "topics": {"expression": "orders"}, "producer": {"acks": "AllIsr", "compression": "zstd"}}))
        .unwrap()
    }

    fn text(b: &Binding, key: &str) -> String {
        String::from_utf8(b.data[key].expose().to_vec()).unwrap()
    }

    /// What `java.util.Properties.load` makes of one `key=value` line (the subset of the format
    /// `java_escape` writes).
    fn java_unescape(v: &str) -> String {
        let mut out = String::new();
        let mut chars = v.chars();
        let mut pending_high: Option<u16> = None;
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next().unwrap() {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let unit = u16::from_str_radix(&hex, 16).unwrap();
                    match pending_high.take() {
                        Some(high) => {
                            out.extend(char::decode_utf16([high, unit]).map(Result::unwrap))
                        }
                        None if (0xd800..0xdc00).contains(&unit) => pending_high = Some(unit),
                        None => out.push(char::from_u32(unit.into()).unwrap()),
                    }
                }
                other => out.push(other),
            }
        }
        out
    }

    #[test]
    fn java_values_survive_properties_loading() {
        for v in [
            "plain",
            " leading space",
            "back\\slash",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "tab\tand\r",
            "ünïcødé and 🦀",
            "= : # !",
        ] {
            let escaped = java_escape(v);
            assert!(escaped.is_ascii() && !escaped.contains('\n'), "{escaped}");
            assert_eq!(java_unescape(&escaped), v);
        }
    }

    #[test]
    fn sasl_ssl_with_mtls_publishes_every_key_and_both_files() {
        let settings = ClientSettings {
            bootstrap: vec!["a:9093".into(), "b:9093".into()],
            sasl: Some(SaslCredentials {
                mechanism: SaslMechanism::ScramSha512,
                username: SecretBytes::new(b"app".to_vec()),
                password: SecretBytes::new(b"p\"w\\d".to_vec()),
            }),
            tls: Some(TlsMaterial {
                ca_pem: Some("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n".into()),
                client: Some((
                    "-----BEGIN CERTIFICATE-----\nME\n-----END CERTIFICATE-----\n".into(),
                    SecretBytes::new(
                        b"-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n".to_vec(),
                    ),
                )),
                server_name: None,
            }),
            kerberos: None,
            kerberos_env: None,
            oauth: None,
            registry: None,
        };
        let b = render(
            "orders",
            &spec("Target"),
            &BindingSpec::default(),
            &settings,
        )
        .unwrap();
        assert_eq!(b.name, "orders-binding");
        for (key, value) in [
            ("type", "kafka"),
            ("provider", "kconn"),
            ("bootstrap.servers", "a:9093,b:9093"),
            ("bootstrap-servers", "a:9093,b:9093"),
            ("bootstrapServers", "a:9093,b:9093"),
            ("security.protocol", "SASL_SSL"),
            ("securityProtocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("saslMechanism", "SCRAM-SHA-512"),
            ("username", "app"),
            ("user", "app"),
            ("password", "p\"w\\d"),
        ] {
            assert_eq!(text(&b, key), value, "{key}");
        }
        assert_eq!(
            text(&b, "sasl.jaas.config"),
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="app" password="p\"w\\d";"#
        );
        assert!(text(&b, "ssl.truststore.crt").contains("CA"));
        assert!(text(&b, "ssl.keystore.crt").contains("ME"));
        assert!(text(&b, "ssl.keystore.key").contains("PRIVATE KEY"));
        let java = text(&b, "client.properties");
        let lines: BTreeMap<&str, String> = java
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k, java_unescape(v))
            })
            .collect();
        assert_eq!(lines["ssl.truststore.type"], "PEM");
        assert_eq!(
            lines["ssl.truststore.certificates"],
            text(&b, "ssl.truststore.crt")
        );
        assert_eq!(lines["ssl.keystore.key"], text(&b, "ssl.keystore.key"));
        assert_eq!(lines["sasl.jaas.config"], text(&b, "sasl.jaas.config"));
        assert_eq!(
            (lines["acks"].as_str(), lines["compression.type"].as_str()),
            ("all", "zstd")
        );
        let rd = text(&b, "librdkafka.properties");
        for line in [
            "security.protocol=SASL_SSL",
            "sasl.username=app",
            "sasl.password=p\"w\\d",
            "ssl.ca.location=/bindings/orders-binding/ssl.truststore.crt",
            "ssl.certificate.location=/bindings/orders-binding/ssl.keystore.crt",
            "ssl.key.location=/bindings/orders-binding/ssl.keystore.key",
            "acks=all",
        ] {
            assert!(rd.lines().any(|l| l == line), "{line} in\n{rd}");
        }
        assert!(!format!("{b:?}").contains("p\"w"), "Debug names keys only");
    }

    #[test]
    fn kerberos_names_its_files_under_the_mount_path_and_sources_get_no_producer_settings() {
        let settings = ClientSettings {
            bootstrap: vec!["k:9092".into()],
            sasl: None,
            tls: None,
            kerberos: Some(KerberosMaterial {
                principal: "app@EXAMPLE.COM".into(),
                service_name: "kafka".into(),
                keytab: SecretBytes::new(vec![5, 2, 0, 1]),
                krb5_conf: "[libdefaults]\n".into(),
            }),
            kerberos_env: None,
            oauth: None,
            registry: None,
        };
        let binding = BindingSpec {
            secret_name: Some("kafka-creds".into()),
            mount_path: Some("/etc/kafka".into()),
            ..Default::default()
        };
        let b = render("orders", &spec("Source"), &binding, &settings).unwrap();
        assert_eq!(b.name, "kafka-creds");
        assert_eq!(b.data["keytab"].expose(), &[5, 2, 0, 1]);
        assert_eq!(text(&b, "principal"), "app@EXAMPLE.COM");
        assert_eq!(text(&b, "sasl.mechanism"), "GSSAPI");
        let rd = text(&b, "librdkafka.properties");
        assert!(
            rd.contains("sasl.kerberos.keytab=/etc/kafka/keytab\n"),
            "{rd}"
        );
        assert!(!rd.contains("acks="), "a Source does not produce");
        assert!(text(&b, "sasl.jaas.config").contains("keyTab=\"/etc/kafka/keytab\""));
    }

    #[test]
    fn oauth_carries_the_client_the_token_url_with_its_audience_and_the_extensions() {
        let settings = ClientSettings {
            bootstrap: vec!["k:9092".into()],
            sasl: None,
            tls: None,
            kerberos: None,
            kerberos_env: None,
            oauth: Some(crate::kafka::OAuthMaterial::example(
                "https://idp.example.com/token",
                Some("kafka"),
                Some("-----BEGIN CERTIFICATE-----\nIDP\n-----END CERTIFICATE-----\n"),
            )),
            registry: None,
        };
        let binding = BindingSpec {
            mount_path: Some("/etc/kafka".into()),
            ..Default::default()
        };
        let b = render("orders", &spec("Source"), &binding, &settings).unwrap();
        let url = "https://idp.example.com/token?audience=kafka";
        for (key, value) in [
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("clientId", "pipeline"),
            ("clientSecret", "s\"cr=t"),
            ("scope", "kafka read"),
            ("sasl.oauthbearer.token.endpoint.url", url),
            ("tokenEndpointUrl", url),
        ] {
            assert_eq!(text(&b, key), value, "{key}");
        }
        assert!(text(&b, "oauth.ca.crt").contains("IDP"));
        assert_eq!(
            text(&b, "sasl.jaas.config"),
            r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId="pipeline" clientSecret="s\"cr=t" scope="kafka read" extension_logicalCluster="lkc-1" ssl.truststore.type="PEM" ssl.truststore.location="/etc/kafka/oauth.ca.crt";"#
        );
        let java = text(&b, "client.properties");
        assert!(java.contains("sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\n"), "{java}");
        assert!(
            java.contains(&format!(
                "sasl.oauthbearer.token.endpoint.url={}\n",
                java_escape(url)
            )),
            "{java}"
        );
        let rd = text(&b, "librdkafka.properties");
        for line in [
            "sasl.mechanism=OAUTHBEARER",
            "sasl.oauthbearer.method=oidc",
            "sasl.oauthbearer.token.endpoint.url=https://idp.example.com/token?audience=kafka",
            "sasl.oauthbearer.client.id=pipeline",
            "sasl.oauthbearer.client.secret=s\"cr=t",
            "sasl.oauthbearer.scope=kafka read",
            "sasl.oauthbearer.extensions=logicalCluster=lkc-1",
            "https.ca.location=/etc/kafka/oauth.ca.crt",
        ] {
            assert!(rd.lines().any(|l| l == line), "{line} in\n{rd}");
        }
    }

    #[test]
    fn a_password_with_a_line_break_is_refused_by_name() {
        let settings = ClientSettings {
            bootstrap: vec!["k:9092".into()],
            sasl: Some(SaslCredentials {
                mechanism: SaslMechanism::Plain,
                username: SecretBytes::new(b"app".to_vec()),
                password: SecretBytes::new(b"line\nzzsecretzz".to_vec()),
            }),
            tls: None,
            kerberos: None,
            kerberos_env: None,
            oauth: None,
            registry: None,
        };
        let e = render(
            "orders",
            &spec("Source"),
            &BindingSpec::default(),
            &settings,
        )
        .unwrap_err();
        assert_eq!(e.what, "the SASL password");
        assert!(!e.to_string().contains("zzsecretzz"));
    }
}
