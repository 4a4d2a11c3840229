//! Faults, injected into the real test environment while `kconn run` works: a broker of the 3-broker
//! cluster killed and started again, the whole cluster down and back, the broker coordinating the
//! connection's consumer group hung (SIGSTOP) and resumed, the KDC down and back, etcd lost for 20 s
//! under a running API server, the
//! kube-apiserver stopped for 30 s and started again (a Secret deleted meanwhile is noticed), and the
//! operator itself killed in the middle of its work. Each outcome is asserted on the connections'
//! status. The processes are SIGKILLed and started again (or stopped and resumed) by
//! `scripts/test-env.sh kill|start|pause|resume`; a guard brings them back if a test fails half-way.
//! The tests take turns (one lock): they break what the others use.
// Needs the environment `scripts/test-env.sh up` starts; `scripts/test.sh` runs it (`--features env-tests`).
#![cfg(feature = "env-tests")]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kconn::api::{KafkaConnection, KafkaConnectionStatus};
use kube::api::{Api, Patch, PatchParams, PostParams};
use support::operator::{self as op, condition, wait_status};
use support::{unique, Env};

const DEADLINE: Duration = Duration::from_secs(120);

/// One fault at a time.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `scripts/test-env.sh ARGS`.
fn run_test_env(args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-env.sh"))
        .args(args)
        .output()
}

fn test_env(args: &[&str]) {
    let out = run_test_env(args).unwrap();
    assert!(
        out.status.success(),
        "test-env.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Processes of the environment that are down; started again when dropped.
struct Down(Vec<&'static str>);

impl Down {
    fn kill(names: &[&'static str]) -> Down {
        for n in names {
            test_env(&["kill", n]);
        }
        Down(names.to_vec())
    }
    fn start(mut self) {
        for n in std::mem::take(&mut self.0) {
            test_env(&["start", n]);
        }
    }
}

impl Drop for Down {
    fn drop(&mut self) {
        for n in std::mem::take(&mut self.0) {
            let _ = run_test_env(&["start", n]); // best effort: a test is already failing
        }
    }
}

/// Deletes `key` from etcd through its JSON gateway (`/v3/kv/deleterange`), as if the object had been
/// deleted while the API server was away. Asserts that one key was deleted.
fn etcd_delete(endpoint: &str, key: &str) {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let body = format!(r#"{{"key":"{}"}}"#, support::base64(key.as_bytes()));
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /v3/kv/deleterange HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains(r#""deleted":"1""#),
        "etcd did not delete {key}: {answer}"
    );
}

/// Waits until `addr` accepts TCP.
fn wait_listening(addr: &str) {
    support::wait_for(&format!("{addr} to accept connections"), DEADLINE, || {
        std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(500))
            .ok()
    });
}

/// Asks for a test (a new `kconn.dev/test-requested-at` value) and returns the status that answers it.
async fn test_now(conns: &Api<KafkaConnection>, name: &str) -> KafkaConnectionStatus {
    let value = unique("req");
    conns
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                kconn::api::TEST_REQUESTED_AT: value
            }}})),
        )
        .await
        .unwrap();
    wait_status(
        conns,
        name,
        &format!("the test asked for by {value}"),
        DEADLINE,
        |s| s.last_handled_test_request.as_deref() == Some(value.as_str()),
    )
    .await
}

/// Asks for tests until one answers with `pred` (each request waits for its answer), within DEADLINE.
async fn test_until(
    conns: &Api<KafkaConnection>,
    name: &str,
    what: &str,
    pred: impl Fn(&KafkaConnectionStatus) -> bool,
) -> KafkaConnectionStatus {
    let start = Instant::now();
    loop {
        let s = test_now(conns, name).await;
        if pred(&s) {
            return s;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no {what} within {DEADLINE:?}; last: {s:#?}"
        );
    }
}

fn row<'a>(s: &'a KafkaConnectionStatus, check: &str) -> (String, &'a str, &'a str) {
    let r = s
        .checks
        .iter()
        .find(|c| c.name == check)
        .unwrap_or_else(|| panic!("no {check} row"));
    (
        format!("{:?}", r.result),
        r.reason.as_str(),
        r.message.as_str(),
    )
}

async fn setup() -> (kube::Client, String, tempfile::TempDir) {
    let env = Env::get();
    let client = support::kube_client(env.var("KUBE_CONTEXT_ADMIN")).await;
    support::install_crd(&client).await;
    let ns = support::namespace(&client).await;
    (client, ns, tempfile::tempdir().unwrap())
}

async fn create(conns: &Api<KafkaConnection>, name: &str, spec: serde_json::Value) {
    let conn: KafkaConnection =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": spec}))
            .unwrap();
    conns.create(&PostParams::default(), &conn).await.unwrap();
}

// This test found an abort in librdkafka 2.12.1 (a group coordinator coming up after a timed-out
// DescribeConsumerGroups); kconn builds a patched copy, see vendor/rdkafka-sys/PATCHED.md.
#[tokio::test]
async fn brokers_killed_and_started_again() {
    let _turn = TURN.lock().await;
    let env = Env::get();
    let brokers: Vec<&str> = env.var("KAFKA_CLUSTER3_BROKERS").split(' ').collect();
    let fixture =
        healthy_cluster3_connection("c3", serde_json::json!({"timeout": "20s"}), None).await;
    let conns = fixture.conns.clone();

    // One broker killed: a warning naming it, Ready no longer AllChecksPassed.
    let down = Down::kill(&["kafka3-2"]);
    let s = test_now(&conns, "c3").await;
    let (result, reason, message) = row(&s, "BrokersReachable");
    assert_eq!(
        (result.as_str(), reason),
        ("Warning", "SomeBrokersUnreachable"),
        "{message}"
    );
    assert!(message.contains(brokers[1]), "{message}");
    assert_ne!(condition(&s, "Ready"), Some(("True", "AllChecksPassed")));
    // Started again: recovered.
    let back = Instant::now();
    down.start();
    wait_listening(brokers[1]);
    test_until(&conns, "c3", "recovery after the broker returned", healthy).await;
    eprintln!(
        "figure: one broker: AllChecksPassed again {:.1?} after its start",
        back.elapsed()
    );

    // The whole cluster down: Ready=False NoBrokerReachable, not Stalled (nothing for the user to fix).
    let down = Down::kill(&["kafka3-1", "kafka3-2", "kafka3-3"]);
    let s = test_now(&conns, "c3").await;
    assert_eq!(
        condition(&s, "Ready"),
        Some(("False", "NoBrokerReachable")),
        "{s:#?}"
    );
    assert_eq!(condition(&s, "Stalled"), Some(("False", "NotStalled")));
    assert_eq!(condition(&s, "Reachable").map(|c| c.0), Some("False"));
    let back = Instant::now();
    down.start();
    for b in &brokers {
        wait_listening(b);
    }
    let s = test_until(&conns, "c3", "recovery after the cluster returned", healthy).await;
    eprintln!(
        "figure: whole cluster: AllChecksPassed again {:.1?} after its start",
        back.elapsed()
    );
    assert_eq!(row(&s, "TopicsResolved").0, "Passed");
}

fn healthy(s: &KafkaConnectionStatus) -> bool {
    condition(s, "Ready") == Some(("True", "AllChecksPassed"))
}

/// Ready=True, whatever the reason (no topic matches in the outage tests: a Warning).
fn ready(s: &KafkaConnectionStatus) -> bool {
    condition(s, "Ready").map(|c| c.0) == Some("True")
}

/// A connection to the single PLAINTEXT broker with the given check interval and timeout.
fn plaintext_spec(interval: &str, timeout: &str) -> serde_json::Value {
    serde_json::json!({
        "bootstrapServers": [Env::get().var("KAFKA_PLAINTEXT")],
        "topics": {"expression": "x"},
        "check": {"interval": interval, "timeout": timeout}
    })
}

/// A connection and the operator testing it. Fields drop in order: the operator is stopped (and its
/// log kept) before its directory goes.
struct Tested {
    conns: Api<KafkaConnection>,
    _operator: op::Operator,
    _dir: tempfile::TempDir,
}

/// A connection to the 3-broker cluster (every broker a bootstrap server) matching a new topic there,
/// with `check` settings (interval 10 m unless given) and a consumer group, tested by an operator until
/// it passes everything.
async fn healthy_cluster3_connection(
    name: &str,
    mut check: serde_json::Value,
    group: Option<&str>,
) -> Tested {
    let (client, ns, dir) = setup().await;
    let conns: Api<KafkaConnection> = Api::namespaced(client, &ns);
    let brokers: Vec<&str> = Env::get()
        .var("KAFKA_CLUSTER3_BROKERS")
        .split(' ')
        .collect();
    let topic = cluster3_topic().await;
    check
        .as_object_mut()
        .unwrap()
        .entry("interval")
        .or_insert("10m".into());
    let mut spec = serde_json::json!({
        "bootstrapServers": brokers,
        "topics": {"expression": topic.replace('.', "\\.")},
        "check": check
    });
    if let Some(group) = group {
        spec["consumer"] = serde_json::json!({ "groupId": group });
    }
    create(&conns, name, spec).await;
    let operator = op::start(&ns, &dir.path().join("operator.log"), &[]);
    wait_status(&conns, name, "Ready", DEADLINE, healthy).await;
    Tested {
        conns,
        _operator: operator,
        _dir: dir,
    }
}

/// A topic on the 3-broker cluster with 3 replicas and `min.insync.replicas` 2, which the default
/// acks (MajorityIsr) needs.
async fn cluster3_topic() -> String {
    let topic = unique("faults");
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        support::config(Env::get().var("KAFKA_CLUSTER3"), &[])
            .create()
            .unwrap();
    let results = admin
        .create_topics(
            [
                &rdkafka::admin::NewTopic::new(
                    &topic,
                    3,
                    rdkafka::admin::TopicReplication::Fixed(3),
                )
                .set("min.insync.replicas", "2"),
            ],
            &rdkafka::admin::AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .unwrap();
    for r in results {
        r.unwrap();
    }
    topic
}

/// The node id of the 3-broker cluster's broker that coordinates `group`: the leader of the
/// `__consumer_offsets` partition Kafka assigns the group to (the absolute value of Java's
/// `String.hashCode`, modulo the topic's partitions).
fn group_coordinator(group: &str) -> i32 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = support::config(Env::get().var("KAFKA_CLUSTER3"), &[])
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some("__consumer_offsets"), Duration::from_secs(10))
        .unwrap();
    let partitions = md.topics()[0].partitions();
    assert!(!partitions.is_empty(), "__consumer_offsets exists");
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    // Kafka's Utils.abs: Math.abs, with Integer.MIN_VALUE taken as 0.
    let p = hash.checked_abs().unwrap_or(0) % partitions.len() as i32;
    partitions
        .iter()
        .find(|x| x.id() == p)
        .map(|x| x.leader())
        .unwrap()
}

/// A process of the environment stopped with SIGSTOP (it keeps its ports and accepts connections,
/// but answers nothing); resumed when dropped.
struct Paused(Option<String>);

impl Paused {
    fn pause(name: String) -> Paused {
        test_env(&["pause", &name]);
        Paused(Some(name))
    }
    fn resume(mut self) {
        if let Some(n) = self.0.take() {
            test_env(&["resume", &n]);
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(n) = self.0.take() {
            let _ = run_test_env(&["resume", &n]); // best effort: a test is already failing
        }
    }
}

/// The broker that coordinates the connection's consumer group hangs (SIGSTOP: connections are
/// accepted, nothing is answered) and comes back. The test still ends within its timeout with every
/// row and the group's permissions reported as unanswered, and everything passes again after the
/// broker resumes.
#[tokio::test]
async fn a_hung_group_coordinator() {
    let _turn = TURN.lock().await;
    let group = unique("hung-coordinator");
    // Shorter than the cluster's broker session timeout (9 s), after which it fences the silent
    // broker and moves the group: the test meets the hung coordinator, not its successor.
    let timeout = Duration::from_secs(5);
    let fixture =
        healthy_cluster3_connection("hung", serde_json::json!({"timeout": "5s"}), Some(&group))
            .await;
    let conns = fixture.conns.clone();

    let coordinator = group_coordinator(&group);
    let paused = Paused::pause(format!("kafka3-{coordinator}"));
    let asked = Instant::now();
    let s = test_now(&conns, "hung").await;
    let took = asked.elapsed();
    eprintln!("figure: hung coordinator (node {coordinator}): test answered in {took:.1?}");
    // The check's own bound, with room for the status write and the watch.
    assert!(
        took < timeout + Duration::from_secs(15),
        "a hung broker held the test {took:?}"
    );
    assert_eq!(
        s.checks.len(),
        kconn::api::Check::ALL.len(),
        "every row: {s:#?}"
    );
    assert!(s.checks.iter().all(|c| !c.reason.is_empty()));
    let (result, reason, message) = row(&s, "Authorized");
    assert_eq!(
        (result.as_str(), reason),
        ("Warning", "PermissionsUnverified"),
        "{message}"
    );
    assert!(
        message.contains("group permissions could not be read (no answer in time"),
        "{message}"
    );
    eprintln!("figure: hung coordinator: Authorized {result} {reason}: {message}");
    assert_eq!(condition(&s, "Stalled"), Some(("False", "NotStalled")));

    let back = Instant::now();
    paused.resume();
    test_until(&conns, "hung", "recovery after the broker resumed", healthy).await;
    eprintln!(
        "figure: hung coordinator: AllChecksPassed again {:.1?} after it resumed",
        back.elapsed()
    );
}

#[tokio::test]
async fn the_kdc_down_and_back() {
    let _turn = TURN.lock().await;
    let env = Env::get();
    let (client, ns, dir) = setup().await;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "krb"},
        "data": {
            "krb5.keytab": ByteString(std::fs::read(env.var("KAFKA_CLIENT_KEYTAB")).unwrap()),
            "krb5.conf": ByteString(std::fs::read(env.var("KRB5_CONFIG")).unwrap()),
        }
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    create(
        &conns,
        "krb",
        serde_json::json!({
            "bootstrapServers": [env.var("KAFKA_SASL_PLAINTEXT")],
            "topics": {"expression": "test\\..*"},
            "authentication": {"kerberos": {
                "principal": env.var("KAFKA_CLIENT_PRINCIPAL"),
                "serviceName": env.var("KAFKA_SERVICE_NAME"),
                "keytabSecretRef": {"name": "krb", "key": "krb5.keytab"},
                "krb5ConfSecretRef": {"name": "krb", "key": "krb5.conf"}
            }},
            "check": {"interval": "10m", "timeout": "20s"}
        }),
    )
    .await;
    let _operator = op::start(&ns, &dir.path().join("operator.log"), &[]);
    // A status without rows (Reconciling=True, written before the first test) has no ticket yet.
    let ticket = |s: &KafkaConnectionStatus| {
        s.checks
            .iter()
            .any(|c| c.name == "KerberosTicket" && c.reason == "TicketIssued")
    };
    wait_status(&conns, "krb", "a ticket", DEADLINE, |s| {
        ticket(s) && ready(s)
    })
    .await;

    let down = Down::kill(&["krb5kdc"]);
    let s = test_now(&conns, "krb").await;
    assert_eq!(row(&s, "KerberosTicket").0, "Failed");
    assert_eq!(
        row(&s, "KerberosTicket").1,
        "KdcUnreachable",
        "{:?}",
        row(&s, "KerberosTicket")
    );
    assert_eq!(condition(&s, "Ready"), Some(("False", "KdcUnreachable")));
    assert_eq!(condition(&s, "Authenticated").map(|c| c.0), Some("False"));
    let back = Instant::now();
    down.start();
    test_until(&conns, "krb", "a ticket after the KDC returned", |s| {
        ticket(s) && ready(s)
    })
    .await;
    eprintln!(
        "figure: KDC: Ready again {:.1?} after its start",
        back.elapsed()
    );
}

/// Lets an outage that began at `outage` last `length` (this wait is the fault, not a
/// synchronisation), asserting every second that the operator still runs, then that `/livez` answers.
async fn outlive(operator: &mut op::Operator, addr: &str, outage: Instant, length: Duration) {
    while outage.elapsed() < length {
        assert!(
            operator.0.try_wait().unwrap().is_none(),
            "the operator exited during the outage"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        op::get(addr, "/livez").0.contains("200"),
        "/livez during the outage"
    );
}

/// The operator still runs and its log shows no panic.
fn survived(operator: &mut op::Operator, log: &std::path::Path) {
    assert!(
        operator.0.try_wait().unwrap().is_none(),
        "the operator exited"
    );
    let text = std::fs::read_to_string(log).unwrap();
    assert!(!text.contains("panicked"), "{text}");
}

/// etcd lost for 20 s under a running API server: reads and writes time out, the API server stays
/// up. The operator cannot renew its Lease meanwhile and steps back from its connections (another
/// agent could hold them); afterwards a requested test is answered in the status and a new connection
/// is tested, with the operator alive throughout.
#[tokio::test]
async fn etcd_lost_for_20_seconds() {
    let _turn = TURN.lock().await;
    let (client, ns, dir) = setup().await;
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    let spec = plaintext_spec("10s", "5s");
    create(&conns, "steady", spec.clone()).await;
    let log = dir.path().join("operator.log");
    let mut operator = op::start(&ns, &log, &[]);
    wait_status(&conns, "steady", "Ready", DEADLINE, ready).await;
    let addr = op::http_address(&log, DEADLINE);

    let down = Down::kill(&["etcd"]);
    // Two test intervals.
    outlive(
        &mut operator,
        &addr,
        Instant::now(),
        Duration::from_secs(20),
    )
    .await;
    let back = Instant::now();
    down.start();

    // Back: a requested test is answered in the status, and a new connection is tested.
    let asked = "2026-11-30T12:00:00Z";
    support::wait_until_ok("the request written", DEADLINE, || async {
        conns
            .patch(
                "steady",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"kconn.dev/test-requested-at": asked}}})),
            )
            .await
    })
    .await;
    wait_status(
        &conns,
        "steady",
        "the requested test answered after etcd returned",
        DEADLINE,
        |s| ready(s) && s.last_handled_test_request.as_deref() == Some(asked),
    )
    .await;
    eprintln!(
        "figure: etcd: a requested test written {:.1?} after etcd's start",
        back.elapsed()
    );
    create(&conns, "after", spec).await;
    wait_status(
        &conns,
        "after",
        "Ready after etcd returned",
        DEADLINE,
        ready,
    )
    .await;
    eprintln!(
        "figure: etcd: a new connection Ready {:.1?} after etcd's start",
        back.elapsed()
    );
    survived(&mut operator, &log);
}

#[tokio::test]
async fn the_api_server_stopped_for_30_seconds() {
    let _turn = TURN.lock().await;
    let env = Env::get();
    let (client, ns, dir) = setup().await;
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    let spec = plaintext_spec("10m", "20s");
    create(&conns, "before", spec.clone()).await;
    // A connection with a Secret: the Secret is deleted from etcd while the API server is down. The
    // restarted server's watch cache no longer holds the version the operator watched from, so its
    // watches list again, and a list reports no deletion of its own: the operator has to find the
    // deletion itself (its Secret watch compares the new list with the last; the connections' re-list
    // also has every connection looked at again).
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "user"},
                "stringData": {"username": env.var("KAFKA_SASL_USER"),
                               "password": env.var("KAFKA_SASL_PASSWORD")}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    create(
        &conns,
        "with-secret",
        serde_json::json!({
            "bootstrapServers": [env.var("KAFKA_SASL_PLAINTEXT")],
            "topics": {"expression": "x"},
            "authentication": {"sasl": {"mechanism": "SCRAM-SHA-512", "secretRef": {"name": "user"}}},
            "check": {"interval": "1h", "timeout": "20s"}
        }),
    )
    .await;
    let log = dir.path().join("operator.log");
    let mut operator = op::start(&ns, &log, &[]);
    wait_status(&conns, "before", "Ready", DEADLINE, ready).await;
    wait_status(&conns, "with-secret", "Ready", DEADLINE, ready).await;
    let addr = op::http_address(&log, DEADLINE);

    let down = Down::kill(&["kube-apiserver"]);
    // The fault lasts 30 s (this wait is the outage, not a synchronisation).
    let outage = Instant::now();
    etcd_delete(
        env.var("ETCD_ENDPOINT"),
        &format!("/registry/secrets/{ns}/user"),
    );
    outlive(&mut operator, &addr, outage, Duration::from_secs(30)).await;
    let back = Instant::now();
    down.start();

    // Back: a new connection is tested (the watch came back) and a spec change is followed.
    support::wait_until("the API server to come back", DEADLINE, || async {
        conns.get("before").await.ok()
    })
    .await;
    assert!(
        secrets.get_opt("user").await.unwrap().is_none(),
        "the Secret deleted in etcd is gone"
    );
    create(&conns, "after", spec).await;
    wait_status(&conns, "after", "Ready after the outage", DEADLINE, ready).await;
    eprintln!(
        "figure: API server: a new connection Ready {:.1?} after its start",
        back.elapsed()
    );
    let patched = conns
        .patch(
            "before",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"displayName": "changed after the outage"}})),
        )
        .await
        .unwrap();
    let generation = patched.metadata.generation;
    wait_status(
        &conns,
        "before",
        "the spec change after the outage",
        DEADLINE,
        |s| s.observed_generation == generation && ready(s),
    )
    .await;
    // The interval is an hour: only the re-lists can have brought this test.
    wait_status(
        &conns,
        "with-secret",
        "Stalled=True SecretNotFound for the Secret deleted after the outage",
        DEADLINE,
        |s| condition(s, "Stalled") == Some(("True", "SecretNotFound")),
    )
    .await;
    survived(&mut operator, &log);
}

#[tokio::test]
async fn the_operator_killed_in_the_middle_of_its_work() {
    let _turn = TURN.lock().await;
    let env = Env::get();
    let (client, ns, dir) = setup().await;
    let conns: Api<KafkaConnection> = Api::namespaced(client.clone(), &ns);
    const N: usize = 40;
    for i in 0..N {
        create(
            &conns,
            &format!("c{i:02}"),
            serde_json::json!({
                "bootstrapServers": [env.var("KAFKA_PLAINTEXT")],
                "topics": {"expression": "x"},
                "check": {"interval": "10m", "timeout": "20s"}
            }),
        )
        .await;
    }
    let lease = ["--lease-duration", "3s", "--concurrency", "2"];
    let first = op::start_agent(
        &ns,
        &dir.path().join("first.log"),
        "first",
        "default",
        &lease,
    );
    // Kill it once some, not all, connections have a status.
    let tested = || async {
        let list = conns.list(&Default::default()).await.unwrap();
        list.items.iter().filter(|c| c.status.is_some()).count()
    };
    support::wait_until("three connections tested", DEADLINE, || async {
        (tested().await >= 3).then_some(())
    })
    .await;
    drop(first); // SIGKILL: no Lease release, tests in flight abandoned
    let at_kill = tested().await;
    assert!(
        at_kill < N,
        "all {N} were already tested; the kill came too late"
    );

    let _second = op::start_agent(
        &ns,
        &dir.path().join("second.log"),
        "second",
        "default",
        &lease,
    );
    let start = Instant::now();
    let what = format!("all {N} re-tested after the kill (killed after {at_kill})");
    let done = support::wait_until_ok(&what, DEADLINE, || async {
        let list = conns.list(&Default::default()).await.unwrap();
        // Tested to the end: the generation observed and no test announced but unfinished.
        let done: Vec<KafkaConnection> = list
            .items
            .into_iter()
            .filter(|c| {
                c.status.as_ref().is_some_and(|s| {
                    s.observed_generation == c.metadata.generation
                        && !s
                            .conditions
                            .iter()
                            .any(|c| c.type_ == "Reconciling" && c.status == "True")
                })
            })
            .collect();
        if done.len() == N {
            Ok(done)
        } else {
            Err(format!("{} of {N} whole", done.len()))
        }
    })
    .await;
    let by_second = done
        .iter()
        .filter(|c| {
            c.status
                .as_ref()
                .unwrap()
                .tested_by
                .as_ref()
                .is_some_and(|t| t.pod == "second")
        })
        .count();
    eprintln!(
        "figure: operator killed after {at_kill} of {N}: all {N} whole {:.1?} after the second started ({by_second} by it)",
        start.elapsed()
    );
    // Status writes of the first one still in flight at the kill (--concurrency 2) may land after
    // the count.
    assert!(
        by_second + at_kill + 2 >= N,
        "{by_second} tested by the second, {at_kill} before the kill"
    );
    // Every status is whole: all conditions and every check row.
    for c in &done {
        let s = c.status.as_ref().unwrap();
        assert_eq!(s.conditions.len(), 8, "{s:#?}");
        assert_eq!(s.checks.len(), kconn::api::Check::ALL.len(), "{s:#?}");
    }
}
