//! What the integration tests (`tests/`) and benchmarks (`benches/`) reach into, and nothing else: the
//! rest of the crate is private. Not an API, and not stable.

/// Agents and their Leases.
pub mod agents {
    pub use crate::agents::GRACE;
}

/// The connection test.
pub mod checks {
    pub use crate::checks::{group_id, run, TestInput, TestReport};
}

/// Command bodies.
pub mod commands {
    pub use crate::commands::child;
}

/// The metrics and the heap figures.
pub mod http {
    pub use crate::http::{heap, Metrics};
}

/// The Kafka client layer.
pub mod kafka {
    pub use crate::kafka::{
        ffi, probe, sample, ClientSettings, Kafka, KafkaFailure, ProbeRequest, RdKafka,
        TlsMaterial, Topic,
    };
}

/// Keytab and krb5.conf parsing.
pub mod kerberos {
    pub use crate::kerberos::{conf, keytab};
}

/// Models and their catalog.
pub mod models {
    pub use crate::models::{
        build, catalog, infer, refresh, registry, report, store, task, KeyFormat, Model, Sample,
    };
}

/// Secrets as a test reads them.
pub mod secrets {
    pub use crate::secrets::SecretStore;
}

/// Status from a test report.
pub mod status {
    pub use crate::status::{after_test, Facts};
}

/// The topic expression.
pub mod topics {
    pub use crate::topics::TopicMatcher;
}

/// The spec rules and the bad inputs they know.
pub mod validate {
    pub use crate::validate::{
        bad_inputs, merge, outcome, parse_host_port, ApiServer, HostPortError,
    };
}
