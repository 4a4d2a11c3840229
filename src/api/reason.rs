//! Stable CamelCase reasons written to `status.checks[].reason`, condition reasons and CLI output.
//! They are part of the API: tools match on them, so they never change once released.

/// Every spec rule holds.
pub const SPEC_VALID: &str = "SpecValid";
/// One or more spec rules are broken (the message lists each with its field).
pub const SPEC_INVALID: &str = "SpecInvalid";

// Field-level reasons of spec problems.
/// `spec.bootstrapServers` is empty.
pub const BOOTSTRAP_SERVERS_EMPTY: &str = "BootstrapServersEmpty";
/// `spec.bootstrapServers` has more than 64 entries.
pub const TOO_MANY_BOOTSTRAP_SERVERS: &str = "TooManyBootstrapServers";
/// A bootstrap server is not `host:port`.
pub const INVALID_BOOTSTRAP_SERVER: &str = "InvalidBootstrapServer";
/// The topic expression is empty or longer than 256 characters.
pub const INVALID_TOPIC_EXPRESSION_LENGTH: &str = "InvalidTopicExpressionLength";
/// The topic expression does not compile.
pub const INVALID_TOPIC_EXPRESSION: &str = "InvalidTopicExpression";
/// Both SASL and Kerberos are set.
pub const CONFLICTING_AUTHENTICATION: &str = "ConflictingAuthentication";
/// `authentication` is present but empty.
pub const MISSING_AUTHENTICATION: &str = "MissingAuthentication";
/// A required field is absent.
pub const REQUIRED_FIELD_MISSING: &str = "RequiredFieldMissing";
/// A value is not one of the allowed ones (unknown enum value).
pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
/// A field is of the wrong type or shape.
pub const INVALID_FIELD: &str = "InvalidField";
/// A field this API version does not know (kubectl rejects it; the API server would drop it).
pub const UNKNOWN_FIELD: &str = "UnknownField";
/// A Secret reference names no valid Secret or key.
pub const INVALID_SECRET_REF: &str = "InvalidSecretRef";
/// The Kerberos principal is malformed.
pub const INVALID_PRINCIPAL: &str = "InvalidPrincipal";
/// A name is not a valid DNS label or a string is too long.
pub const INVALID_NAME: &str = "InvalidName";
/// A duration does not parse or is not positive.
pub const INVALID_DURATION: &str = "InvalidDuration";
/// `check.timeout` is longer than `check.interval`.
pub const TIMEOUT_EXCEEDS_INTERVAL: &str = "TimeoutExceedsInterval";
/// `models.refreshAt` is not `HH:MM`.
pub const INVALID_REFRESH_AT: &str = "InvalidRefreshAt";
/// `models.timeZone` is not an IANA time zone.
pub const UNKNOWN_TIME_ZONE: &str = "UnknownTimeZone";
/// A number is out of its allowed range.
pub const OUT_OF_RANGE: &str = "OutOfRange";

/// No live kconn process of the pinned agent pool (`spec.agent.name`).
pub const NO_AGENT_AVAILABLE: &str = "NoAgentAvailable";

// Connection-test reasons (status.checks[].reason).
/// The check does not apply to this spec (e.g. TlsHandshake without `tls`).
pub const NOT_APPLICABLE: &str = "NotApplicable";
/// A check this one depends on failed.
pub const DEPENDENCY_FAILED: &str = "DependencyFailed";
/// This version of kconn does not run the check yet.
pub const NOT_IMPLEMENTED: &str = "NotImplemented";
/// The whole test ran out of `check.timeout` before this check finished.
pub const TEST_TIMED_OUT: &str = "TestTimedOut";
/// Every referenced Secret and key exists and holds a usable value.
pub const CREDENTIALS_RESOLVED: &str = "CredentialsResolved";
/// The spec references no Secret.
pub const NO_CREDENTIALS: &str = "NoCredentials";
/// A referenced Secret does not exist in the connection's namespace.
pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
/// A referenced key is missing from its Secret.
pub const SECRET_KEY_NOT_FOUND: &str = "SecretKeyNotFound";
/// A Secret value cannot be used (empty, not UTF-8, not PEM).
pub const INVALID_SECRET_VALUE: &str = "InvalidSecretValue";
/// Every bootstrap host resolved.
pub const RESOLVED: &str = "Resolved";
/// Some bootstrap hosts do not resolve.
pub const SOME_HOSTS_UNRESOLVED: &str = "SomeHostsUnresolved";
/// No bootstrap host resolves.
pub const UNRESOLVABLE_HOSTS: &str = "UnresolvableHosts";
/// Every bootstrap server accepts TCP.
pub const ALL_BROKERS_REACHABLE: &str = "AllBrokersReachable";
/// Some bootstrap servers do not accept TCP.
pub const SOME_BROKERS_UNREACHABLE: &str = "SomeBrokersUnreachable";
/// No bootstrap server accepts TCP.
pub const NO_BROKER_REACHABLE: &str = "NoBrokerReachable";
/// Authentication succeeded through a real Kafka request.
pub const AUTHENTICATED: &str = "Authenticated";
/// The listener takes connections without authentication.
pub const NO_AUTHENTICATION: &str = "NoAuthentication";
/// The brokers rejected the credentials.
pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
/// TLS failed during the Kafka connection.
pub const TLS_FAILED: &str = "TlsFailed";
/// The brokers did not answer the Kafka request.
pub const KAFKA_UNAVAILABLE: &str = "KafkaUnavailable";
/// Cluster metadata came back.
pub const METADATA_FETCHED: &str = "MetadataFetched";
/// Every advertised broker address resolves and accepts TCP.
pub const ADVERTISED_LISTENERS_REACHABLE: &str = "AdvertisedListenersReachable";
/// An advertised broker address does not resolve or accept TCP from here.
pub const ADVERTISED_LISTENER_UNREACHABLE: &str = "AdvertisedListenerUnreachable";
/// SASL credentials would travel without TLS (a Warning).
pub const CREDENTIALS_UNENCRYPTED: &str = "CredentialsUnencrypted";
/// The cluster advertises more brokers than a test connects to; the first ones were tried.
pub const TOO_MANY_BROKERS: &str = "TooManyBrokers";
/// Topics match the expression.
pub const TOPICS_MATCHED: &str = "TopicsMatched";
/// No topic matches the expression.
pub const NO_TOPICS_MATCHED: &str = "NoTopicsMatched";
/// Every TLS handshake verified the chain and the name.
pub const TLS_VERIFIED: &str = "TlsVerified";
/// A certificate expires within 14 days.
pub const CERTIFICATE_EXPIRING_SOON: &str = "CertificateExpiringSoon";
/// A certificate has expired or is not yet valid.
pub const CERTIFICATE_EXPIRED: &str = "CertificateExpired";
/// The server's chain does not verify against the trusted CAs.
pub const CERTIFICATE_UNTRUSTED: &str = "CertificateUntrusted";
/// The server certificate does not name the host (or `tls.serverName`).
pub const HOSTNAME_MISMATCH: &str = "HostnameMismatch";
/// The TLS handshake failed for another reason (not TLS on that port, aborted).
pub const TLS_HANDSHAKE_FAILED: &str = "TlsHandshakeFailed";
/// The client private key does not belong to the client certificate.
pub const KEY_MISMATCH: &str = "KeyMismatch";
/// The keytab holds no key for the principal.
pub const PRINCIPAL_NOT_IN_KEYTAB: &str = "PrincipalNotInKeytab";
/// The keytab's keys for the principal use only removed encryption types (DES, 3DES).
pub const NO_USABLE_ENCTYPE: &str = "NoUsableEnctype";
/// The keytab's keys for the principal use only deprecated encryption types (RC4).
pub const WEAK_ENCTYPE: &str = "WeakEnctype";
/// krb5.conf does not name the principal's realm or its KDCs.
pub const REALM_UNKNOWN: &str = "RealmUnknown";
/// The KDC issued a ticket.
pub const TICKET_ISSUED: &str = "TicketIssued";
/// No KDC answered.
pub const KDC_UNREACHABLE: &str = "KdcUnreachable";
/// The KDC does not know the principal.
pub const PRINCIPAL_UNKNOWN: &str = "PrincipalUnknown";
/// Clocks differ by more than the KDC allows.
pub const CLOCK_SKEW: &str = "ClockSkew";
/// The KDC refused the keytab's key.
pub const KEYTAB_REJECTED: &str = "KeytabRejected";
/// Kerberos failed for another reason.
pub const KERBEROS_FAILED: &str = "KerberosFailed";
/// The principal has every permission the role needs.
pub const AUTHORIZED: &str = "Authorized";
/// The principal lacks a permission the role needs.
pub const NOT_AUTHORIZED: &str = "NotAuthorized";
/// Some permissions could not be verified.
pub const PERMISSIONS_UNVERIFIED: &str = "PermissionsUnverified";
/// acks and compression fit the topics and brokers.
pub const PRODUCER_SETTINGS_OK: &str = "ProducerSettingsOk";
/// A topic's min.insync.replicas does not meet acks, or the brokers do not support the codec.
pub const PRODUCER_SETTINGS_UNSAFE: &str = "ProducerSettingsUnsafe";
/// Durability or codec support could not be verified.
pub const PRODUCER_SETTINGS_UNVERIFIED: &str = "ProducerSettingsUnverified";
