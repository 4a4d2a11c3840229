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
