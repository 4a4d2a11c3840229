//! Kerberos (SASL GSSAPI) against the test KDC and broker, through librdkafka. One test function:
//! the GSSAPI library reads its credential cache and configuration from process-wide environment
//! variables, so the cases run in order in this process of their own.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use rdkafka::error::RDKafkaErrorCode;
use support::{config, connects, rejected, Env};

#[test]
fn gssapi_accepts_the_client_keytab_and_rejects_a_keytab_without_the_principal() {
    let env = Env::get();
    let dir = tempfile::tempdir().unwrap();
    let ccache = format!("FILE:{}/ccache", dir.path().display());
    std::env::set_var("KRB5_CONFIG", env.var("KRB5_CONFIG"));
    std::env::set_var("KRB5CCNAME", &ccache);
    let kinit =
        format!("kinit -c {ccache} -kt %{{sasl.kerberos.keytab}} %{{sasl.kerberos.principal}}");
    let settings = |principal: &'static str, keytab: &'static str| {
        vec![
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "GSSAPI"),
            ("sasl.kerberos.service.name", env.var("KAFKA_SERVICE_NAME")),
            ("sasl.kerberos.principal", env.var(principal)),
            ("sasl.kerberos.keytab", env.var(keytab)),
            ("sasl.kerberos.kinit.cmd", kinit.as_str()),
        ]
    };
    let bootstrap = env.var("KAFKA_SASL_PLAINTEXT");

    // The client principal with a keytab that holds only another principal: kinit fails, no ticket.
    rejected(
        &config(
            bootstrap,
            &settings("KAFKA_CLIENT_PRINCIPAL", "KAFKA_OTHER_KEYTAB"),
        ),
        RDKafkaErrorCode::Authentication,
        "credentials",
    );

    // A wrong service name: the ticket is asked for a service principal the KDC does not know.
    let mut wrong_service = settings("KAFKA_CLIENT_PRINCIPAL", "KAFKA_CLIENT_KEYTAB");
    wrong_service[2] = ("sasl.kerberos.service.name", "kafka-nope");
    rejected(
        &config(bootstrap, &wrong_service),
        RDKafkaErrorCode::Authentication,
        "not found in kerberos database",
    );

    // The right principal and keytab.
    assert_eq!(
        connects(&config(
            bootstrap,
            &settings("KAFKA_CLIENT_PRINCIPAL", "KAFKA_CLIENT_KEYTAB")
        )),
        [1]
    );
}
