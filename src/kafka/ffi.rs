//! The only unsafe code in kconn: librdkafka's admin calls that rust-rdkafka 0.39 does not wrap
//! (DescribeTopics, DescribeCluster and DescribeConsumerGroups with KIP-430 authorized operations, and
//! DescribeConfigs on the client kconn already holds). Each call owns its queue, options and event
//! through guards that free them on every path; results are copied into owned Rust values before the
//! event is destroyed, so no pointer outlives the call.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::time::Duration;

use rdkafka_sys as sys;
use serde::{Deserialize, Serialize};

/// An ACL operation Kafka reports as authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Op {
    /// Every operation.
    All,
    /// Read (consume; for groups, join and commit).
    Read,
    /// Write (produce).
    Write,
    /// Create.
    Create,
    /// Delete.
    Delete,
    /// Alter.
    Alter,
    /// Describe.
    Describe,
    /// Cluster actions (brokers only).
    ClusterAction,
    /// Describe configs.
    DescribeConfigs,
    /// Alter configs.
    AlterConfigs,
    /// Idempotent write.
    IdempotentWrite,
}

impl Op {
    fn from_raw(op: sys::rd_kafka_AclOperation_t) -> Option<Op> {
        use sys::rd_kafka_AclOperation_t as A;
        Some(match op {
            A::RD_KAFKA_ACL_OPERATION_ALL => Op::All,
            A::RD_KAFKA_ACL_OPERATION_READ => Op::Read,
            A::RD_KAFKA_ACL_OPERATION_WRITE => Op::Write,
            A::RD_KAFKA_ACL_OPERATION_CREATE => Op::Create,
            A::RD_KAFKA_ACL_OPERATION_DELETE => Op::Delete,
            A::RD_KAFKA_ACL_OPERATION_ALTER => Op::Alter,
            A::RD_KAFKA_ACL_OPERATION_DESCRIBE => Op::Describe,
            A::RD_KAFKA_ACL_OPERATION_CLUSTER_ACTION => Op::ClusterAction,
            A::RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS => Op::DescribeConfigs,
            A::RD_KAFKA_ACL_OPERATION_ALTER_CONFIGS => Op::AlterConfigs,
            A::RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE => Op::IdempotentWrite,
            _ => return None,
        })
    }
}

/// Per-topic outcome of an admin request.
pub type PerTopic<T> = Vec<(String, Result<T, ApiError>)>;

/// A Kafka error: code name and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// librdkafka's error code (e.g. `TopicAuthorizationFailed`).
    pub code: String,
    /// The message.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The name of an error code as librdkafka copied it from a broker's answer: a plain integer, since
/// a broker (hostile, or newer than this librdkafka) may send a code `rd_kafka_resp_err_t` does not
/// define, and reading one as that Rust enum would be undefined behaviour. Unknown codes are named
/// `Unknown(n)`.
fn code_name(code: c_int) -> String {
    match sys::rd_kafka_resp_err_t::try_from(code) {
        Ok(known) => {
            let err: rdkafka::types::RDKafkaErrorCode = known.into();
            format!("{err:?}")
        }
        Err(_) => format!("Unknown({code})"),
    }
}

/// librdkafka's accessors for error codes that come from the wire, declared here returning the C
/// `int` they return (`rd_kafka_resp_err_t` is a C enum, an `int`), instead of rdkafka-sys's Rust
/// enum, which holds only the codes known when it was generated.
mod wire {
    use super::sys;
    use std::os::raw::c_int;

    #[allow(clashing_extern_declarations)]
    extern "C" {
        pub fn rd_kafka_event_error(rkev: *mut sys::rd_kafka_event_t) -> c_int;
        pub fn rd_kafka_error_code(error: *const sys::rd_kafka_error_t) -> c_int;
        pub fn rd_kafka_ConfigResource_error(
            config: *const sys::rd_kafka_ConfigResource_t,
        ) -> c_int;
    }
}

/// `RD_KAFKA_RESP_ERR_NO_ERROR`.
const NO_ERROR: c_int = 0;

impl ApiError {
    /// The group coordinator is not ready yet (a new cluster creating `__consumer_offsets`, a
    /// coordinator loading its partition after a move): asking again soon is answered.
    pub fn coordinator_not_ready(&self) -> bool {
        matches!(
            self.code.as_str(),
            "CoordinatorLoadInProgress" | "CoordinatorNotAvailable" | "NotCoordinator"
        )
    }

    /// A failure of the request itself (not a Kafka error code).
    fn fail(message: impl Into<String>) -> Self {
        ApiError {
            code: "Fail".into(),
            message: message.into(),
        }
    }
}

/// A C string librdkafka returned, owned; null is empty.
///
/// SAFETY (for callers): `ptr` is null or a NUL-terminated string that stays valid for this call.
unsafe fn text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        String::new()
    } else {
        CStr::from_ptr(ptr).to_string_lossy().into_owned()
    }
}

/// Frees librdkafka objects on drop.
struct Guard {
    queue: *mut sys::rd_kafka_queue_t,
    options: *mut sys::rd_kafka_AdminOptions_t,
    event: *mut sys::rd_kafka_event_t,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: each pointer is either null or was returned by the matching librdkafka constructor
        // and has not been freed; the guard is the only owner.
        unsafe {
            if !self.event.is_null() {
                sys::rd_kafka_event_destroy(self.event);
            }
            if !self.options.is_null() {
                sys::rd_kafka_AdminOptions_destroy(self.options);
            }
            if !self.queue.is_null() {
                sys::rd_kafka_queue_destroy(self.queue);
            }
        }
    }
}

/// Prepares a queue and options asking for authorized operations.
///
/// SAFETY (for callers): `rk` must be a live client handle for the whole call.
unsafe fn prepare(
    rk: *mut sys::rd_kafka_t,
    op: sys::rd_kafka_admin_op_t,
    timeout: Duration,
    authorized: bool,
) -> Result<Guard, String> {
    let queue = sys::rd_kafka_queue_new(rk);
    let options = sys::rd_kafka_AdminOptions_new(rk, op);
    let guard = Guard {
        queue,
        options,
        event: std::ptr::null_mut(),
    };
    if queue.is_null() || options.is_null() {
        return Err("librdkafka could not allocate the admin request".into());
    }
    let mut errstr = [0 as c_char; 256];
    // librdkafka refuses a request timeout above one hour (and would keep its default silently).
    let ms = timeout.as_millis().clamp(1, 3_600_000) as i32;
    sys::rd_kafka_AdminOptions_set_request_timeout(options, ms, errstr.as_mut_ptr(), errstr.len());
    if authorized {
        let err = sys::rd_kafka_AdminOptions_set_include_authorized_operations(options, 1);
        if !err.is_null() {
            let message = text(sys::rd_kafka_error_string(err));
            sys::rd_kafka_error_destroy(err);
            return Err(message);
        }
    }
    Ok(guard)
}

/// Waits for the result event; a request-level error becomes `Err`.
///
/// SAFETY (for callers): `guard.queue` must be the queue the request was sent to.
unsafe fn wait(guard: &mut Guard, timeout: Duration) -> Result<(), ApiError> {
    let ms = (timeout + Duration::from_secs(1))
        .as_millis()
        .clamp(1, i32::MAX as u128) as i32;
    let event = sys::rd_kafka_queue_poll(guard.queue, ms);
    if event.is_null() {
        return Err(ApiError {
            code: "OperationTimedOut".into(),
            message: format!("no answer within {timeout:?}"),
        });
    }
    guard.event = event;
    let code = wire::rd_kafka_event_error(event);
    if code != NO_ERROR {
        let message = text(sys::rd_kafka_event_error_string(event));
        return Err(ApiError {
            code: code_name(code),
            message,
        });
    }
    Ok(())
}

/// Copies an operations array.
///
/// SAFETY: `ops` points to `n` values (or is null).
unsafe fn ops(ops: *const sys::rd_kafka_AclOperation_t, n: usize) -> Option<Vec<Op>> {
    if ops.is_null() {
        return None; // the broker did not report them (Kafka before 2.3)
    }
    let mut out: Vec<Op> = std::slice::from_raw_parts(ops, n)
        .iter()
        .filter_map(|o| Op::from_raw(*o))
        .collect();
    out.sort();
    out.dedup();
    Some(out)
}

/// Copies an `rd_kafka_error_t` (null: no error).
///
/// SAFETY: `err` is null or a live error object owned by the result.
unsafe fn error(err: *const sys::rd_kafka_error_t) -> Option<ApiError> {
    if err.is_null() {
        return None;
    }
    let code = wire::rd_kafka_error_code(err);
    if code == NO_ERROR {
        return None;
    }
    let code = code_name(code);
    let message = with_code(text(sys::rd_kafka_error_string(err)), &code);
    Some(ApiError { code, message })
}

/// librdkafka passes on a broker's error message, which brokers often leave empty
/// (`"ConsumerGroupDescribe: "`): then the error code is the only telling part.
fn with_code(message: String, code: &str) -> String {
    let trimmed = message.trim_end();
    if trimmed.is_empty() {
        code.to_string()
    } else if trimmed.ends_with(':') {
        format!("{trimmed} {code}")
    } else {
        message
    }
}

/// The active controller's id from librdkafka's metadata cache (`None`: the cluster names none, as
/// librdkafka's in-process mock cluster does; admin requests would wait for one in vain).
pub fn controller_id(client: &rdkafka::client::NativeClient, timeout: Duration) -> Option<i32> {
    let ms = timeout.as_millis().clamp(0, i32::MAX as u128) as i32;
    // SAFETY: `client.ptr()` is the live handle of `client`, borrowed for this call; the call only
    // reads librdkafka's metadata cache.
    let id = unsafe { sys::rd_kafka_controllerid(client.ptr(), ms) };
    (id >= 0).then_some(id)
}

/// What DescribeCluster said.

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDescription {
    /// The active controller's id.
    pub controller_id: Option<i32>,
    /// Operations this client may perform on the cluster (`None`: not reported).
    pub authorized: Option<Vec<Op>>,
}

/// DescribeCluster with authorized operations.
pub fn describe_cluster(
    client: &rdkafka::client::NativeClient,
    timeout: Duration,
) -> Result<ClusterDescription, ApiError> {
    let rk = client.ptr();
    // SAFETY: `rk` is the live handle of `client`, borrowed for this call; every librdkafka object made
    // here is owned by `guard` and freed when it drops; returned data is copied before that.
    unsafe {
        let mut guard = prepare(
            rk,
            sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECLUSTER,
            timeout,
            true,
        )
        .map_err(ApiError::fail)?;
        sys::rd_kafka_DescribeCluster(rk, guard.options, guard.queue);
        wait(&mut guard, timeout)?;
        let result = sys::rd_kafka_event_DescribeCluster_result(guard.event);
        if result.is_null() {
            return Err(ApiError::fail("unexpected answer to DescribeCluster"));
        }
        let controller = sys::rd_kafka_DescribeCluster_result_controller(result);
        let controller_id = (!controller.is_null()).then(|| sys::rd_kafka_Node_id(controller));
        let mut n = 0usize;
        let authorized = ops(
            sys::rd_kafka_DescribeCluster_result_authorized_operations(result, &mut n),
            n,
        );
        Ok(ClusterDescription {
            controller_id,
            authorized,
        })
    }
}

/// DescribeTopics with authorized operations: per topic, the operations or the topic's error.
pub fn describe_topics(
    client: &rdkafka::client::NativeClient,
    names: &[String],
    timeout: Duration,
) -> Result<PerTopic<Option<Vec<Op>>>, ApiError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rk = client.ptr();
    let c_names: Vec<CString> = names
        .iter()
        .filter_map(|n| CString::new(n.as_str()).ok())
        .collect();
    let mut ptrs: Vec<*const c_char> = c_names.iter().map(|c| c.as_ptr()).collect();
    // SAFETY: as in `describe_cluster`; `ptrs` points into `c_names`, both alive until the collection is
    // built (librdkafka copies the names).
    unsafe {
        let mut guard = prepare(
            rk,
            sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
            timeout,
            true,
        )
        .map_err(ApiError::fail)?;
        let collection =
            sys::rd_kafka_TopicCollection_of_topic_names(ptrs.as_mut_ptr(), ptrs.len());
        sys::rd_kafka_DescribeTopics(rk, collection, guard.options, guard.queue);
        sys::rd_kafka_TopicCollection_destroy(collection);
        wait(&mut guard, timeout)?;
        let result = sys::rd_kafka_event_DescribeTopics_result(guard.event);
        if result.is_null() {
            return Err(ApiError::fail("unexpected answer to DescribeTopics"));
        }
        let mut n = 0usize;
        let topics = sys::rd_kafka_DescribeTopics_result_topics(result, &mut n);
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let t = *topics.add(i);
            let name = text(sys::rd_kafka_TopicDescription_name(t));
            let entry = match error(sys::rd_kafka_TopicDescription_error(t)) {
                Some(e) => Err(e),
                None => {
                    let mut k = 0usize;
                    Ok(ops(
                        sys::rd_kafka_TopicDescription_authorized_operations(t, &mut k),
                        k,
                    ))
                }
            };
            out.push((name, entry));
        }
        Ok(out)
    }
}

/// DescribeConsumerGroups for one group: the operations this client may perform on it.
pub fn describe_group(
    client: &rdkafka::client::NativeClient,
    group: &str,
    timeout: Duration,
) -> Result<Option<Vec<Op>>, ApiError> {
    let rk = client.ptr();
    let c_group = CString::new(group).map_err(|_| ApiError {
        code: "InvalidArg".into(),
        message: "the group id contains NUL".into(),
    })?;
    let mut ptrs = [c_group.as_ptr()];
    // SAFETY: as in `describe_cluster`; `ptrs` points into `c_group`, alive for the whole call.
    unsafe {
        let mut guard = prepare(
            rk,
            sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
            timeout,
            true,
        )
        .map_err(ApiError::fail)?;
        sys::rd_kafka_DescribeConsumerGroups(rk, ptrs.as_mut_ptr(), 1, guard.options, guard.queue);
        wait(&mut guard, timeout)?;
        let result = sys::rd_kafka_event_DescribeConsumerGroups_result(guard.event);
        if result.is_null() {
            return Err(ApiError::fail(
                "unexpected answer to DescribeConsumerGroups",
            ));
        }
        let mut n = 0usize;
        let groups = sys::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut n);
        if n == 0 {
            return Err(ApiError::fail("the group was not described"));
        }
        let g = *groups;
        if let Some(e) = error(sys::rd_kafka_ConsumerGroupDescription_error(g)) {
            return Err(e);
        }
        let mut k = 0usize;
        Ok(ops(
            sys::rd_kafka_ConsumerGroupDescription_authorized_operations(g, &mut k),
            k,
        ))
    }
}

/// DescribeConfigs for topics: per topic, `min.insync.replicas` (or the topic's error).
pub fn topic_min_insync(
    client: &rdkafka::client::NativeClient,
    names: &[String],
    timeout: Duration,
) -> Result<PerTopic<Option<u32>>, ApiError> {
    Ok(
        topic_configs(client, names, &["min.insync.replicas"], timeout)?
            .into_iter()
            .map(|(name, configs)| {
                let value = configs.map(|c| {
                    c.get("min.insync.replicas")
                        .and_then(|v| v.parse::<u32>().ok())
                });
                (name, value)
            })
            .collect(),
    )
}

/// DescribeConfigs for topics: per topic, the values of the `wanted` config keys it has (or the
/// topic's error).
pub fn topic_configs(
    client: &rdkafka::client::NativeClient,
    names: &[String],
    wanted: &[&str],
    timeout: Duration,
) -> Result<PerTopic<std::collections::BTreeMap<String, String>>, ApiError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rk = client.ptr();
    let c_names: Vec<CString> = names
        .iter()
        .filter_map(|n| CString::new(n.as_str()).ok())
        .collect();
    // SAFETY: as in `describe_cluster`; the config resources are created here, handed to librdkafka
    // (which copies them) and destroyed right after the call.
    unsafe {
        let mut guard = prepare(
            rk,
            sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS,
            timeout,
            false,
        )
        .map_err(ApiError::fail)?;
        let mut resources: Vec<*mut sys::rd_kafka_ConfigResource_t> = c_names
            .iter()
            .map(|n| {
                sys::rd_kafka_ConfigResource_new(
                    sys::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                    n.as_ptr(),
                )
            })
            .collect();
        sys::rd_kafka_DescribeConfigs(
            rk,
            resources.as_mut_ptr(),
            resources.len(),
            guard.options,
            guard.queue,
        );
        for r in resources {
            sys::rd_kafka_ConfigResource_destroy(r);
        }
        wait(&mut guard, timeout)?;
        let result = sys::rd_kafka_event_DescribeConfigs_result(guard.event);
        if result.is_null() {
            return Err(ApiError::fail("unexpected answer to DescribeConfigs"));
        }
        let mut n = 0usize;
        let resources = sys::rd_kafka_DescribeConfigs_result_resources(result, &mut n);
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let r = *resources.add(i);
            let name = text(sys::rd_kafka_ConfigResource_name(r));
            let code = wire::rd_kafka_ConfigResource_error(r);
            if code != NO_ERROR {
                let message = text(sys::rd_kafka_ConfigResource_error_string(r));
                out.push((
                    name,
                    Err(ApiError {
                        code: code_name(code),
                        message,
                    }),
                ));
                continue;
            }
            let mut k = 0usize;
            let entries = sys::rd_kafka_ConfigResource_configs(r, &mut k);
            let mut values = std::collections::BTreeMap::new();
            for j in 0..k {
                let e = *entries.add(j);
                let key = text(sys::rd_kafka_ConfigEntry_name(e));
                if wanted.contains(&key.as_str()) {
                    let v = sys::rd_kafka_ConfigEntry_value(e);
                    if !v.is_null() {
                        values.insert(key, text(v));
                    }
                }
            }
            out.push((name, Ok(values)));
        }
        Ok(out)
    }
}

/// What a client's `client.id` starts with when its brokers' certificates are verified against
/// `tls.serverName`: the name follows. The verification callback reads it back from the client's own
/// configuration, so no state outside librdkafka is needed, and brokers see the name in their logs.
pub const TLS_NAME_CLIENT_ID: &str = "kconn tls.serverName=";

/// The words that mark a refusal by [`verify_broker_names`] for a name.
pub const NAME_MISMATCH: &str = "names neither tls.serverName";

/// Verifies every certificate every broker of this client presents (bootstrap servers and the
/// brokers the cluster advertises, each connection) against the trusted CAs, as librdkafka does,
/// and its name against `server_name` or else the host the broker was reached by. librdkafka can
/// only check the host, so its own check is replaced by this one.
pub fn verify_broker_names(config: &mut rdkafka::ClientConfig, server_name: &str) {
    config
        .set("client.id", format!("{TLS_NAME_CLIENT_ID}{server_name}"))
        .set("ssl.endpoint.identification.algorithm", "none")
        .set_ssl_cert_verify_cb(verify_broker_certificate);
}

/// Makes every broker connection of a client wait for its place in the broker's new-connection
/// budget (`crate::budget`) before it is opened.
pub fn connect_within_budget(config: &mut rdkafka::ClientConfig) {
    config.set_connect_cb(connect_paced);
}

/// librdkafka's connect callback (see [`connect_within_budget`]). Runs on a broker thread with a
/// non-blocking socket: waits for the broker's budget, then connects as librdkafka would (an
/// `EINPROGRESS` is success; librdkafka waits for the socket to become writable).
unsafe extern "C" fn connect_paced(
    sockfd: c_int,
    addr: *const libc::sockaddr,
    addrlen: c_int,
    _id: *const c_char,
    _opaque: *mut std::ffi::c_void,
) -> c_int {
    // No panic may unwind into C: the connection then goes unpaced.
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: librdkafka passes a valid address of `addrlen` bytes for the duration of the call.
        if let Some(peer) = socket_addr(addr, addrlen) {
            crate::budget::global().wait_blocking(peer);
        }
    });
    // SAFETY: the socket and the address are librdkafka's, valid for this call.
    if libc::connect(sockfd, addr, addrlen as libc::socklen_t) == -1 {
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        if errno != libc::EINPROGRESS {
            return errno;
        }
    }
    0
}

/// The address a `sockaddr` of `len` bytes holds (IPv4 or IPv6).
unsafe fn socket_addr(addr: *const libc::sockaddr, len: c_int) -> Option<std::net::SocketAddr> {
    if addr.is_null() {
        return None;
    }
    match i32::from((*addr).sa_family) {
        libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
            let v4 = &*addr.cast::<libc::sockaddr_in>();
            let ip = std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some((ip, u16::from_be(v4.sin_port)).into())
        }
        libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
            let v6 = &*addr.cast::<libc::sockaddr_in6>();
            let ip = std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Some((ip, u16::from_be(v6.sin6_port)).into())
        }
        _ => None,
    }
}

/// librdkafka's certificate callback (see [`verify_broker_names`]). Runs on a broker thread for each
/// certificate of the chain, leaf last (`depth` 0). Returns 1 to accept, 0 to refuse with `errstr`.
unsafe extern "C" fn verify_broker_certificate(
    rk: *mut sys::rd_kafka_t,
    broker_name: *const c_char,
    _broker_id: i32,
    x509_error: *mut c_int,
    depth: c_int,
    buf: *const c_char,
    size: usize,
    errstr: *mut c_char,
    errstr_size: usize,
    _opaque: *mut std::ffi::c_void,
) -> c_int {
    // No panic may unwind into C: one is a refusal.
    let verdict = std::panic::catch_unwind(|| {
        // SAFETY: librdkafka passes valid pointers for the duration of the call: x509_error to an
        // int, broker_name to a NUL-terminated string, buf to `size` bytes of DER.
        let chain_error = *x509_error;
        if chain_error != 0 {
            let why = openssl::x509::X509VerifyResult::from_raw(chain_error);
            return Err(format!("certificate verify failed: {}", why.error_string()));
        }
        if depth != 0 {
            return Ok(()); // an issuer: the chain verified; the name is the leaf's
        }
        let der = std::slice::from_raw_parts(buf.cast::<u8>(), size);
        let cert = Cert::from_der(der).ok_or("unreadable certificate")?;
        let host = broker_host(&text(broker_name));
        let expected = client_id(rk)
            .and_then(|id| id.strip_prefix(TLS_NAME_CLIENT_ID).map(str::to_string))
            .ok_or_else(|| "no tls.serverName to verify against".to_string())?;
        if names(&cert, &expected) || names(&cert, &host) {
            Ok(())
        } else {
            Err(format!(
                "the certificate of {host} {NAME_MISMATCH} {expected:?} nor the host"
            ))
        }
    })
    .unwrap_or_else(|_| Err("certificate verification failed".into()));
    match verdict {
        Ok(()) => 1,
        Err(why) => {
            if !errstr.is_null() && errstr_size > 0 {
                let n = why.len().min(errstr_size - 1);
                // SAFETY: errstr has room for errstr_size bytes; n + 1 <= errstr_size.
                std::ptr::copy_nonoverlapping(why.as_ptr().cast::<c_char>(), errstr, n);
                *errstr.add(n) = 0;
            }
            0
        }
    }
}

/// The host of librdkafka's broker name `host:port` (IPv6 without brackets).
fn broker_host(name: &str) -> String {
    let host = name.rsplit_once(':').map(|(h, _)| h).unwrap_or(name);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// This client's `client.id`.
///
/// SAFETY: `rk` is a live client.
unsafe fn client_id(rk: *mut sys::rd_kafka_t) -> Option<String> {
    let conf = sys::rd_kafka_conf(rk);
    let key = CString::new("client.id").ok()?;
    let mut buf = vec![0 as c_char; 1024];
    let mut len = buf.len();
    let res = sys::rd_kafka_conf_get(conf, key.as_ptr(), buf.as_mut_ptr(), &mut len);
    (res == sys::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK).then(|| text(buf.as_ptr()))
}

/// A certificate parsed by OpenSSL, freed on drop.
struct Cert(*mut openssl_sys::X509);

impl Cert {
    fn from_der(der: &[u8]) -> Option<Cert> {
        let mut p = der.as_ptr();
        let len = std::os::raw::c_long::try_from(der.len()).ok()?;
        // SAFETY: d2i_X509 reads at most `len` bytes from `p` and returns a new X509 or null.
        let x = unsafe { openssl_sys::d2i_X509(std::ptr::null_mut(), &mut p, len) };
        (!x.is_null()).then_some(Cert(x))
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        // SAFETY: self.0 came from d2i_X509 and is freed once.
        unsafe { openssl_sys::X509_free(self.0) }
    }
}

/// Whether `cert` names `name`: a DNS name (wildcards only as a whole left-most label) or an IP
/// address, as OpenSSL's hostname verification decides.
fn names(cert: &Cert, name: &str) -> bool {
    const NO_PARTIAL_WILDCARDS: std::os::raw::c_uint = 0x4;
    let Ok(c_name) = CString::new(name) else {
        return false;
    };
    // SAFETY: cert.0 is a live X509; the name is NUL-terminated and its length is given.
    unsafe {
        if name.parse::<std::net::IpAddr>().is_ok() {
            openssl_sys::X509_check_ip_asc(cert.0, c_name.as_ptr(), 0) == 1
        } else {
            openssl_sys::X509_check_host(
                cert.0,
                c_name.as_ptr(),
                name.len(),
                NO_PARTIAL_WILDCARDS,
                std::ptr::null_mut(),
            ) == 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_broker_message_shows_the_code() {
        let code = "CoordinatorLoadInProgress";
        assert_eq!(
            with_code("ConsumerGroupDescribe: ".into(), code),
            "ConsumerGroupDescribe: CoordinatorLoadInProgress"
        );
        assert_eq!(with_code(String::new(), code), code);
        assert_eq!(
            with_code("Broker: Group authorization failed".into(), code),
            "Broker: Group authorization failed"
        );
    }

    #[test]
    fn broker_hosts_and_certificate_names() {
        assert_eq!(broker_host("b1.kafka:9093"), "b1.kafka");
        assert_eq!(broker_host("[fd00::1]:9093"), "fd00::1");
        assert_eq!(broker_host("127.0.0.1:9093"), "127.0.0.1");
        let cert = |pem: &str| {
            let der = openssl::x509::X509::from_pem(pem.as_bytes())
                .unwrap()
                .to_der()
                .unwrap();
            Cert::from_der(&der).unwrap()
        };
        let (pem, _) = crate::checks::tls::self_signed("kafka.example.com", -1, 30);
        let c = cert(&pem);
        assert!(names(&c, "kafka.example.com"));
        assert!(!names(&c, "evil.example.com"));
        assert!(!names(&c, "127.0.0.1"));
        assert!(!names(&c, "kafka.example.com\0.evil"));
    }

    #[test]
    fn error_codes_from_the_wire_become_names_without_undefined_behaviour() {
        assert_eq!(code_name(0), "NoError");
        assert_eq!(code_name(29), "TopicAuthorizationFailed");
        assert_eq!(code_name(-185), "OperationTimedOut");
        // Gaps in librdkafka 2.12's list (116 is UNKNOWN_CONTROLLER_ID in newer Kafka), codes past its
        // end, and values no broker should send.
        for unknown in [
            98,
            99,
            114,
            116,
            119,
            128,
            131,
            32767,
            -32768,
            -101,
            -300,
            i32::MAX,
        ] {
            assert_eq!(code_name(unknown), format!("Unknown({unknown})"));
        }
    }

    #[test]
    fn coordinator_answers_that_are_asked_again() {
        let e = |code: &str| ApiError {
            code: code.into(),
            message: String::new(),
        };
        assert!(e("CoordinatorLoadInProgress").coordinator_not_ready());
        assert!(e("CoordinatorNotAvailable").coordinator_not_ready());
        assert!(e("NotCoordinator").coordinator_not_ready());
        assert!(!e("GroupAuthorizationFailed").coordinator_not_ready());
        assert!(!e("OperationTimedOut").coordinator_not_ready());
    }
}
