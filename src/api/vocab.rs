//! The words of the API, typed: check names, condition types, condition statuses and reasons. Their
//! strings are what `status` carries and tools match on, so they never change once released; the
//! enums make a typo a compile error and let the docs test iterate every word.

/// The field manager of every write, the Event reporter and the `app.kubernetes.io/managed-by` label.
pub const MANAGER: &str = "kconn";

/// Declares an enum of API words: `as_str`, `ALL` (in declaration order), `parse`, `Display`, and
/// comparison with the strings status holds.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every word, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The word as status carries it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The word named by `s`, if it is one.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl From<$name> for String {
            fn from(w: $name) -> String {
                w.as_str().to_string()
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == other.as_str()
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.as_str()
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.as_str()
            }
        }
    };
}

words! {
    /// The status of a condition.
    ConditionStatus {
        /// It holds.
        True = "True",
        /// It does not.
        False = "False",
        /// Not known (yet).
        Unknown = "Unknown",
    }
}

words! {
    /// The condition types of `status.conditions`: the three kstatus reads, then one per area.
    ConditionType {
        /// The connection works (every check passed or warned).
        Ready = "Ready",
        /// A test of the current generation is running.
        Reconciling = "Reconciling",
        /// Only a change by a person can make it Ready.
        Stalled = "Stalled",
        /// DNS, TCP and TLS to the bootstrap servers.
        Reachable = "Reachable",
        /// Credentials, Kerberos ticket and login.
        Authenticated = "Authenticated",
        /// The role's permissions.
        Authorized = "Authorized",
        /// Topics matching the expression.
        TopicsResolved = "TopicsResolved",
        /// The model catalog.
        ModelsLoaded = "ModelsLoaded",
        /// The binding Secret holds what the last test used (`spec.binding`).
        BindingReady = "BindingReady",
    }
}

words! {
    /// The checks of a connection test, in the order they run and are reported.
    Check {
        /// Every spec rule holds (the object as written).
        SpecValid = "SpecValid",
        /// Secrets and keys exist and hold usable values.
        CredentialsResolved = "CredentialsResolved",
        /// DNS for each bootstrap host.
        BootstrapResolved = "BootstrapResolved",
        /// TCP to each bootstrap server.
        BrokersReachable = "BrokersReachable",
        /// The TLS handshake on its own.
        TlsHandshake = "TlsHandshake",
        /// A Kerberos ticket from the KDC.
        KerberosTicket = "KerberosTicket",
        /// An OAuth token from the provider's token endpoint (client credentials).
        TokenAcquired = "TokenAcquired",
        /// Authentication through a real Kafka request.
        Authenticated = "Authenticated",
        /// Cluster id, brokers, controller.
        ClusterMetadata = "ClusterMetadata",
        /// Every advertised broker address reachable from here.
        AdvertisedListeners = "AdvertisedListeners",
        /// Topics matching the expression.
        TopicsResolved = "TopicsResolved",
        /// Per-role permissions.
        Authorized = "Authorized",
        /// Producer durability and compression.
        ProducerSettings = "ProducerSettings",
        /// The schema registry answers (DNS, TCP, TLS, authentication, a real request).
        SchemaRegistryReachable = "SchemaRegistryReachable",
    }
}

words! {
    /// Every reason kconn writes: of checks, of conditions (including `ModelsLoaded`) and of Events.
    Reason {
        /// Every spec rule holds.
        SpecValid = "SpecValid",
        /// One or more spec rules are broken (the message lists each with its field).
        SpecInvalid = "SpecInvalid",
        /// `spec.bootstrapServers` is empty.
        BootstrapServersEmpty = "BootstrapServersEmpty",
        /// `spec.bootstrapServers` has more than 64 entries.
        TooManyBootstrapServers = "TooManyBootstrapServers",
        /// A bootstrap server is not `host:port`.
        InvalidBootstrapServer = "InvalidBootstrapServer",
        /// The topic expression is empty or longer than 256 characters.
        InvalidTopicExpressionLength = "InvalidTopicExpressionLength",
        /// The topic expression does not compile.
        InvalidTopicExpression = "InvalidTopicExpression",
        /// Both SASL and Kerberos are set.
        ConflictingAuthentication = "ConflictingAuthentication",
        /// `authentication` is present but empty.
        MissingAuthentication = "MissingAuthentication",
        /// A required field is absent.
        RequiredFieldMissing = "RequiredFieldMissing",
        /// A value is not one of the allowed ones (unknown enum value).
        UnsupportedValue = "UnsupportedValue",
        /// A field is of the wrong type or shape.
        InvalidField = "InvalidField",
        /// A field this API version does not know (kubectl rejects it; the API server would drop it).
        UnknownField = "UnknownField",
        /// A Secret reference names no valid Secret or key.
        InvalidSecretRef = "InvalidSecretRef",
        /// The Kerberos principal is malformed.
        InvalidPrincipal = "InvalidPrincipal",
        /// A name is not a valid DNS label or a string is too long.
        InvalidName = "InvalidName",
        /// A duration does not parse or is not positive.
        InvalidDuration = "InvalidDuration",
        /// `check.timeout` is longer than `check.interval`.
        TimeoutExceedsInterval = "TimeoutExceedsInterval",
        /// `models.refreshAt` is not `HH:MM`.
        InvalidRefreshAt = "InvalidRefreshAt",
        /// `models.timeZone` is not an IANA time zone.
        UnknownTimeZone = "UnknownTimeZone",
        /// A number is out of its allowed range.
        OutOfRange = "OutOfRange",
        /// No live kconn process of the pinned agent pool (`spec.agent.name`).
        NoAgentAvailable = "NoAgentAvailable",
        /// The check does not apply to this spec (e.g. TlsHandshake without `tls`).
        NotApplicable = "NotApplicable",
        /// A check this one depends on failed.
        DependencyFailed = "DependencyFailed",
        /// The brokers do not serve the request the check needs (their ApiVersions answer says so).
        NotSupportedByBroker = "NotSupportedByBroker",
        /// This version of kconn does not run the check yet.
        NotImplemented = "NotImplemented",
        /// The whole test ran out of `check.timeout` before this check finished.
        TestTimedOut = "TestTimedOut",
        /// Every referenced Secret and key exists and holds a usable value.
        CredentialsResolved = "CredentialsResolved",
        /// The spec references no Secret.
        NoCredentials = "NoCredentials",
        /// A referenced Secret does not exist in the connection's namespace.
        SecretNotFound = "SecretNotFound",
        /// A referenced key is missing from its Secret.
        SecretKeyNotFound = "SecretKeyNotFound",
        /// A Secret value cannot be used (empty, not UTF-8, not PEM).
        InvalidSecretValue = "InvalidSecretValue",
        /// Every bootstrap host resolved.
        Resolved = "Resolved",
        /// Some bootstrap hosts do not resolve.
        SomeHostsUnresolved = "SomeHostsUnresolved",
        /// No bootstrap host resolves.
        UnresolvableHosts = "UnresolvableHosts",
        /// Every bootstrap server accepts TCP.
        AllBrokersReachable = "AllBrokersReachable",
        /// Some bootstrap servers do not accept TCP.
        SomeBrokersUnreachable = "SomeBrokersUnreachable",
        /// No bootstrap server accepts TCP.
        NoBrokerReachable = "NoBrokerReachable",
        /// Authentication succeeded through a real Kafka request.
        Authenticated = "Authenticated",
        /// The listener takes connections without authentication.
        NoAuthentication = "NoAuthentication",
        /// The brokers rejected the credentials.
        AuthenticationFailed = "AuthenticationFailed",
        /// TLS failed during the Kafka connection.
        TlsFailed = "TlsFailed",
        /// The brokers did not answer the Kafka request.
        KafkaUnavailable = "KafkaUnavailable",
        /// Cluster metadata came back.
        MetadataFetched = "MetadataFetched",
        /// Every advertised broker address resolves and accepts TCP.
        AdvertisedListenersReachable = "AdvertisedListenersReachable",
        /// An advertised broker address does not resolve or accept TCP from here.
        AdvertisedListenerUnreachable = "AdvertisedListenerUnreachable",
        /// SASL credentials would travel without TLS (a Warning).
        CredentialsUnencrypted = "CredentialsUnencrypted",
        /// The cluster advertises more brokers than a test connects to; the first ones were tried.
        TooManyBrokers = "TooManyBrokers",
        /// Topics match the expression.
        TopicsMatched = "TopicsMatched",
        /// No topic matches the expression.
        NoTopicsMatched = "NoTopicsMatched",
        /// Every TLS handshake verified the chain and the name.
        TlsVerified = "TlsVerified",
        /// A certificate expires within 14 days.
        CertificateExpiringSoon = "CertificateExpiringSoon",
        /// A certificate has expired or is not yet valid.
        CertificateExpired = "CertificateExpired",
        /// The server's chain does not verify against the trusted CAs.
        CertificateUntrusted = "CertificateUntrusted",
        /// The server certificate does not name the host (or `tls.serverName`).
        HostnameMismatch = "HostnameMismatch",
        /// The TLS handshake failed for another reason (not TLS on that port, aborted).
        TlsHandshakeFailed = "TlsHandshakeFailed",
        /// The client private key does not belong to the client certificate.
        KeyMismatch = "KeyMismatch",
        /// The keytab holds no key for the principal.
        PrincipalNotInKeytab = "PrincipalNotInKeytab",
        /// The keytab's keys for the principal use only removed encryption types (DES, 3DES).
        NoUsableEnctype = "NoUsableEnctype",
        /// The keytab's keys for the principal use only deprecated encryption types (RC4).
        WeakEnctype = "WeakEnctype",
        /// krb5.conf does not name the principal's realm or its KDCs.
        RealmUnknown = "RealmUnknown",
        /// The KDC issued a ticket.
        TicketIssued = "TicketIssued",
        /// No KDC answered.
        KdcUnreachable = "KdcUnreachable",
        /// The KDC does not know the principal.
        PrincipalUnknown = "PrincipalUnknown",
        /// Clocks differ by more than the KDC allows.
        ClockSkew = "ClockSkew",
        /// The KDC refused the keytab's key.
        KeytabRejected = "KeytabRejected",
        /// Kerberos failed for another reason.
        KerberosFailed = "KerberosFailed",
        /// The token endpoint answered with a token librdkafka can use; the message names its claims.
        TokenAcquired = "TokenAcquired",
        /// The token endpoint's host did not resolve or did not accept TCP.
        TokenEndpointUnreachable = "TokenEndpointUnreachable",
        /// The provider refused the token request (invalid_client, invalid_scope, ...).
        TokenRequestRejected = "TokenRequestRejected",
        /// The token endpoint failed (a server error, an answer that is not a token response).
        TokenEndpointFailed = "TokenEndpointFailed",
        /// A token came that librdkafka cannot use (not a JWT, no sub or exp, expired).
        TokenUnusable = "TokenUnusable",
        /// The brokers refused the token (signature, issuer, audience or expiry).
        TokenRefused = "TokenRefused",
        /// Every schema registry URL answered a real request.
        RegistryReachable = "RegistryReachable",
        /// Some registry URLs did not answer; one did (a Warning).
        SomeRegistriesUnreachable = "SomeRegistriesUnreachable",
        /// No registry URL resolved or accepted TCP.
        RegistryUnreachable = "RegistryUnreachable",
        /// The registry refused the credentials (401 or 403).
        RegistryUnauthorized = "RegistryUnauthorized",
        /// The registry answered, but not as a schema registry (a 404 for the API, a server error).
        RegistryFailed = "RegistryFailed",
        /// The principal has every permission the role needs.
        Authorized = "Authorized",
        /// The principal lacks a permission the role needs.
        NotAuthorized = "NotAuthorized",
        /// Some permissions could not be verified.
        PermissionsUnverified = "PermissionsUnverified",
        /// acks and compression fit the topics and brokers.
        ProducerSettingsOk = "ProducerSettingsOk",
        /// A topic's min.insync.replicas does not meet acks, or the brokers do not support the codec.
        ProducerSettingsUnsafe = "ProducerSettingsUnsafe",
        /// Durability or codec support could not be verified.
        ProducerSettingsUnverified = "ProducerSettingsUnverified",
        /// Every check passed.
        AllChecksPassed = "AllChecksPassed",
        /// No check failed, some warned.
        PassedWithWarnings = "PassedWithWarnings",
        /// The test finished.
        TestComplete = "TestComplete",
        /// Nothing needs the user.
        NotStalled = "NotStalled",
        /// Testing is paused by `spec.suspend`.
        Suspended = "Suspended",
        /// The object could not be read as a KafkaConnection.
        InvalidObject = "InvalidObject",
        /// A test of a new object or a new generation is running.
        Testing = "Testing",
        /// No test has finished yet for this object.
        NotTestedYet = "NotTestedYet",
        /// The catalog is stored and every matched topic has a model.
        CatalogLoaded = "CatalogLoaded",
        /// Some topics hold messages that are not JSON objects.
        NonJsonMessages = "NonJsonMessages",
        /// The first refresh has not finished yet.
        Refreshing = "Refreshing",
        /// Reading the messages failed (timeout, broker errors).
        SamplingFailed = "SamplingFailed",
        /// This process cannot sample the connection (a Kerberos connection outside the async runtime).
        SamplingUnsupported = "SamplingUnsupported",
        /// One model is larger than a ConfigMap can hold.
        ModelTooLarge = "ModelTooLarge",
        /// A ConfigMap with a catalog shard's name exists and is not this connection's.
        CatalogNameTaken = "CatalogNameTaken",
        /// The API server refused or failed the catalog write.
        CatalogWriteFailed = "CatalogWriteFailed",
        /// Ready turned True again (the reason of the Normal Event).
        Recovered = "Recovered",
        /// The binding Secret holds what the last test, which passed, used.
        BindingPublished = "BindingPublished",
        /// The last test failed: the binding Secret keeps what the last passing test used.
        BindingStale = "BindingStale",
        /// No test has passed yet: there is no binding Secret.
        BindingNotPublished = "BindingNotPublished",
        /// A tested value cannot be written into the binding's client files.
        BindingInvalid = "BindingInvalid",
        /// A Secret of the binding's name exists and is not this connection's.
        BindingNameTaken = "BindingNameTaken",
        /// The API server refused or failed the binding Secret's write.
        BindingWriteFailed = "BindingWriteFailed",
    }
}
