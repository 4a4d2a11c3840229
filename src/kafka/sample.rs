//! Reading the newest messages of many topics at once, without joining a consumer group: partitions
//! are assigned directly and nothing is committed. Offsets for all partitions come
//! in one ListOffsets round per broker; the reads of all partitions share the fetches.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{ClientSettings, KafkaFailure, Topic};
use crate::models::Sample;

/// Numbers each sampling client, so that concurrent samplers never share a group.id.
static SAMPLERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes a single partition may return per fetch (a bound on memory for very large messages).
const MAX_PARTITION_FETCH_BYTES: &str = "1048576";

/// Bytes one sampling client may hold in its fetch queue, in KiB.
const QUEUED_KIB: &str = "16384";

/// Partitions one sampling client reads at most. librdkafka handles each partition of a fetch answer
/// by a linear search over the client's topics, so one client for 10,000 topics spends minutes where
/// ten clients of 1,000 spend seconds.
pub const PARTITIONS_PER_CLIENT: u32 = 1000;

/// Sampling clients that run at once.
pub const PARALLEL_CLIENTS: usize = 4;

/// Splits topics into batches of at most [`PARTITIONS_PER_CLIENT`] partitions (a larger topic alone).
fn batches(topics: &[Topic]) -> Vec<&[Topic]> {
    let mut out = Vec::new();
    let (mut start, mut partitions) = (0, 0u32);
    for (i, t) in topics.iter().enumerate() {
        if i > start && partitions + t.partitions > PARTITIONS_PER_CLIENT {
            out.push(&topics[start..i]);
            (start, partitions) = (i, 0);
        }
        partitions += t.partitions;
    }
    if start < topics.len() {
        out.push(&topics[start..]);
    }
    out
}

/// The newest `per_topic` messages of each topic, oldest first, within `timeout`. A topic with no
/// messages maps to an empty list.
pub fn newest(
    settings: &ClientSettings,
    topics: &[Topic],
    per_topic: usize,
    timeout: Duration,
) -> Result<BTreeMap<String, Vec<Sample>>, KafkaFailure> {
    let mut out = BTreeMap::new();
    for part in newest_each(settings, topics, per_topic, timeout, |samples| samples)? {
        out.extend(part);
    }
    Ok(out)
}

/// Like [`newest`], for many topics: the topics are read in batches by several clients, a few at a
/// time, and each batch's samples go to `each` as soon as they are read (so that they can be reduced
/// to models and dropped, keeping memory bounded by the batches in flight). Returns what `each`
/// returned, in no particular order.
pub fn newest_each<R: Send>(
    settings: &ClientSettings,
    topics: &[Topic],
    per_topic: usize,
    timeout: Duration,
    each: impl Fn(BTreeMap<String, Vec<Sample>>) -> R + Sync,
) -> Result<Vec<R>, KafkaFailure> {
    let started = Instant::now();
    let batches = batches(topics);
    if batches.len() <= 1 {
        return Ok(vec![each(newest_in_one_client(
            settings, topics, per_topic, timeout,
        )?)]);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<R, KafkaFailure>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..PARALLEL_CLIENTS.min(batches.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(batch) = batches.get(i) else { break };
                        let left = timeout.saturating_sub(started.elapsed());
                        let result = if left.is_zero() {
                            Err(KafkaFailure::Timeout(timeout))
                        } else {
                            newest_in_one_client(settings, batch, per_topic, left).map(&each)
                        };
                        let failed = result.is_err();
                        mine.push(result);
                        if failed {
                            // The others stop at their next batch.
                            next.store(batches.len(), std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    results.into_iter().collect()
}

fn newest_in_one_client(
    settings: &ClientSettings,
    topics: &[Topic],
    per_topic: usize,
    timeout: Duration,
) -> Result<BTreeMap<String, Vec<Sample>>, KafkaFailure> {
    let started = Instant::now();
    let mut out: BTreeMap<String, Vec<Sample>> = topics
        .iter()
        .map(|t| (t.name.clone(), Vec::new()))
        .collect();
    if per_topic == 0 || topics.is_empty() {
        return Ok(out);
    }
    let mut config = settings.client_config(timeout);
    // librdkafka's assign() wants a group.id, but a direct assignment never joins the group, and with
    // nothing committed the group never exists on the brokers (the models test checks that). Each
    // client gets its own id, so that concurrent samplers cannot interfere.
    config
        .set(
            "group.id",
            format!(
                "kconn-sampler-{}-{}",
                std::process::id(),
                SAMPLERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("max.partition.fetch.bytes", MAX_PARTITION_FETCH_BYTES)
        // Bound the prefetch queue: librdkafka's default lets one client queue up to 64 MiB.
        .set("queued.max.messages.kbytes", QUEUED_KIB);
    let consumer: BaseConsumer = config
        .create()
        .map_err(|e| KafkaFailure::Other(e.to_string()))?;

    let mut partitions = TopicPartitionList::new();
    for topic in topics {
        for p in 0..topic.partitions as i32 {
            partitions.add_partition(&topic.name, p);
        }
    }
    let left = |started: Instant| {
        timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(100))
    };
    // A ListOffsets round that fails, or that leaves some partitions with an error (a leader moving,
    // a broker busy, a client that has not seen a new topic's metadata yet), is asked again for what is
    // missing while attempts and time are left. A partition is never taken for empty because its
    // offset could not be read.
    let offsets = |offset: Offset, what: &str| {
        let mut found: HashMap<(String, i32), i64> = HashMap::new();
        let mut pending = partitions.clone();
        pending
            .set_all_offsets(offset)
            .map_err(|e| KafkaFailure::Other(e.to_string()))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last_try = attempt >= OFFSET_ATTEMPTS || started.elapsed() >= timeout;
            let missing = match consumer.offsets_for_times(pending.clone(), left(started)) {
                Ok(list) => {
                    let mut again = TopicPartitionList::new();
                    let mut problem = None;
                    for e in list.elements() {
                        match (e.error(), e.offset()) {
                            (Ok(()), Offset::Offset(o)) => {
                                found.insert((e.topic().to_string(), e.partition()), o);
                            }
                            (Ok(()), other) => {
                                problem = Some(format!(
                                    "{} [{}]: no offset ({other:?})",
                                    e.topic(),
                                    e.partition()
                                ));
                                again.add_partition(e.topic(), e.partition());
                            }
                            (Err(err), _) if fatal(&err) => {
                                return Err(KafkaFailure::Other(format!(
                                    "{what} offsets of {} [{}]: {err}",
                                    e.topic(),
                                    e.partition()
                                )))
                            }
                            (Err(err), _) => {
                                problem = Some(format!("{} [{}]: {err}", e.topic(), e.partition()));
                                again.add_partition(e.topic(), e.partition());
                            }
                        }
                    }
                    match problem {
                        None => return Ok(found),
                        Some(problem) => {
                            again
                                .set_all_offsets(offset)
                                .map_err(|e| KafkaFailure::Other(e.to_string()))?;
                            pending = again;
                            problem
                        }
                    }
                }
                Err(e) if fatal(&e) => {
                    return Err(KafkaFailure::Other(format!("{what} offsets: {e}")))
                }
                Err(e) => e.to_string(),
            };
            if last_try {
                return Err(KafkaFailure::Other(format!(
                    "{what} offsets: {missing} (after {attempt} attempts)"
                )));
            }
            // A short pause lets the client refresh its metadata before asking again.
            std::thread::sleep(OFFSET_RETRY_PAUSE.min(left(started)));
        }
    };
    let ends = offsets(Offset::End, "latest")?;
    let begin_of = offsets(Offset::Beginning, "earliest")?;

    // From each partition, the last `per_topic` messages: enough for the topic's newest `per_topic`.
    let mut assignment = TopicPartitionList::new();
    let mut last_wanted: HashMap<(String, i32), i64> = HashMap::new();
    for (key, high) in ends {
        let low = begin_of.get(&key).copied().unwrap_or(0);
        if high <= low {
            continue; // empty partition
        }
        let start = low.max(high - per_topic as i64);
        assignment
            .add_partition_offset(&key.0, key.1, Offset::Offset(start))
            .map_err(|e| KafkaFailure::Other(e.to_string()))?;
        last_wanted.insert(key, high - 1);
    }
    if last_wanted.is_empty() {
        return Ok(out);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| KafkaFailure::Other(format!("assign: {e}")))?;

    let mut collected: HashMap<String, Vec<(i64, Sample)>> = HashMap::new();
    // librdkafka retries fetches itself and reports transient trouble as consumer errors: those are
    // remembered (for the timeout's message) and reading goes on; a refusal ends it at once.
    let mut last_error: Option<String> = None;
    while !last_wanted.is_empty() && started.elapsed() < timeout {
        match consumer.poll(left(started).min(Duration::from_millis(200))) {
            Some(Ok(m)) => {
                let key = (m.topic().to_string(), m.partition());
                let timestamp = m.timestamp().to_millis().unwrap_or(0);
                collected.entry(key.0.clone()).or_default().push((
                    timestamp,
                    Sample {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                    },
                ));
                if last_wanted
                    .get(&key)
                    .is_some_and(|last| m.offset() >= *last)
                {
                    last_wanted.remove(&key);
                }
            }
            Some(Err(e)) if fatal(&e) => {
                return Err(KafkaFailure::Other(format!("reading samples: {e}")))
            }
            Some(Err(e)) => last_error = Some(e.to_string()),
            None => {}
        }
    }
    if !last_wanted.is_empty() {
        return Err(match last_error {
            Some(e) => KafkaFailure::Other(format!(
                "reading samples: not every partition answered within {timeout:?}; last error: {e}"
            )),
            None => KafkaFailure::Timeout(timeout),
        });
    }
    for (topic, mut messages) in collected {
        // Newest by timestamp, then offset; keep `per_topic`, oldest first.
        messages.sort_by_key(|(ts, s)| (*ts, s.offset));
        let skip = messages.len().saturating_sub(per_topic);
        out.insert(
            topic,
            messages.into_iter().skip(skip).map(|(_, s)| s).collect(),
        );
    }
    Ok(out)
}

/// How many times one ListOffsets round is asked.
const OFFSET_ATTEMPTS: u32 = 4;

/// The pause before asking a ListOffsets round again.
const OFFSET_RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Errors that asking again cannot mend: the principal may not read, or the credentials are refused.
fn fatal(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::TopicAuthorizationFailed
                | C::GroupAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::SaslAuthenticationFailed
                | C::Authentication
                | C::Fatal
        )
    )
}

/// The topic configs a model records.
pub const MODEL_CONFIGS: [&str; 3] = ["cleanup.policy", "retention.ms", "min.insync.replicas"];

/// Topics per DescribeConfigs request.
const CONFIGS_BATCH: usize = 1000;

/// Bound on one DescribeConfigs request.
const CONFIGS_BATCH_TIMEOUT: Duration = Duration::from_secs(15);

/// The [`MODEL_CONFIGS`] of each topic, as far as the brokers answer within `timeout`. Best effort: a
/// principal without DescribeConfigs, or brokers that do not serve it, give no configs rather than an
/// error, since the schema is what a model is for.
pub fn topic_configs(
    settings: &ClientSettings,
    names: &[String],
    timeout: Duration,
) -> HashMap<String, BTreeMap<String, String>> {
    let started = Instant::now();
    let mut out = HashMap::new();
    let Ok(producer) = settings
        .client_config(timeout)
        .create::<rdkafka::producer::BaseProducer>()
    else {
        return out;
    };
    let native = rdkafka::producer::Producer::client(&producer).native_client();
    for batch in names.chunks(CONFIGS_BATCH) {
        // Brokers that do not serve DescribeConfigs leave the request unanswered: bound each batch.
        let left = timeout
            .saturating_sub(started.elapsed())
            .min(CONFIGS_BATCH_TIMEOUT);
        if left.is_zero() {
            break;
        }
        let Ok(answers) = super::ffi::topic_configs(native, batch, &MODEL_CONFIGS, left) else {
            break;
        };
        out.extend(
            answers
                .into_iter()
                .filter_map(|(name, configs)| configs.ok().map(|c| (name, c))),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: u32) -> Topic {
        Topic {
            name: name.into(),
            partitions,
            replication_factor: 1,
        }
    }

    #[test]
    fn topics_are_batched_by_partitions() {
        let topics: Vec<Topic> = (0..2500).map(|i| topic(&format!("t{i}"), 1)).collect();
        let b = batches(&topics);
        assert_eq!(
            b.iter().map(|b| b.len()).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        let big = [
            topic("a", 600),
            topic("huge", 5000),
            topic("b", 600),
            topic("c", 300),
        ];
        let b = batches(&big);
        assert_eq!(
            b.iter()
                .map(|b| b.iter().map(|t| t.name.as_str()).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
            [vec!["a"], vec!["huge"], vec!["b", "c"]]
        );
        assert!(batches(&[]).is_empty());
    }
}
