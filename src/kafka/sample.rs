//! Reading the newest messages of many topics at once, without joining a consumer group: partitions
//! are assigned directly and nothing is committed. Offsets for all partitions come
//! in one ListOffsets round per broker; the reads of all partitions share the fetches.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{ClientSettings, KafkaFailure, Topic};

/// One sampled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is a tombstone (a delete on a compacted topic), which carries no shape.
    pub payload: Option<Vec<u8>>,
    /// Too large to read into a model (`kafka::sample::MAX_SAMPLE_BYTES`, or past the refresh's byte
    /// budget): key and payload were not kept, and the message is counted in `Model::oversized`.
    pub oversized: bool,
}

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

/// The largest message (key and value together) read into a model; a larger one is counted as
/// oversized and its bytes are not kept.
pub const MAX_SAMPLE_BYTES: usize = 256 * 1024;

/// The most message bytes one sampling client keeps at once. A message that would go past it is
/// counted as oversized instead of kept. With [`PARALLEL_CLIENTS`] and librdkafka's fetch queue
/// (`QUEUED_KIB`), one refresh holds at most about 4 × (16 + 16) MiB of messages, whatever the
/// topics hold and however large `sampleMessages` is.
pub const MAX_RETAINED_BYTES: usize = 16 << 20;

/// A message kept for a topic, ordered by timestamp, then partition and offset: the newest last.
#[derive(PartialEq, Eq)]
struct Kept {
    timestamp: i64,
    sample: Sample,
}

impl Kept {
    fn order(&self) -> (i64, i64, i32) {
        (self.timestamp, self.sample.offset, self.sample.partition)
    }
    fn bytes(&self) -> usize {
        sample_bytes(&self.sample)
    }
}

impl Ord for Kept {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order().cmp(&other.order())
    }
}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

fn sample_bytes(s: &Sample) -> usize {
    s.key.as_ref().map_or(0, Vec::len) + s.payload.as_ref().map_or(0, Vec::len)
}

/// The newest `per_topic` messages of each topic, chosen while reading: at most `per_topic` are held
/// per topic and at most [`MAX_RETAINED_BYTES`] in all; an older message is dropped as soon as a newer
/// one takes its place.
struct Newest {
    per_topic: usize,
    topics: HashMap<String, std::collections::BinaryHeap<std::cmp::Reverse<Kept>>>,
    retained: usize,
}

impl Newest {
    fn new(per_topic: usize) -> Self {
        Self {
            per_topic,
            topics: HashMap::new(),
            retained: 0,
        }
    }

    fn offer(&mut self, topic: &str, timestamp: i64, mut sample: Sample) {
        let heap = self.topics.entry(topic.to_string()).or_default();
        let order = (timestamp, sample.offset, sample.partition);
        if heap.len() >= self.per_topic
            && heap.peek().is_some_and(|oldest| oldest.0.order() >= order)
        {
            return; // older than every message held
        }
        let size = sample_bytes(&sample);
        if size > MAX_SAMPLE_BYTES || self.retained + size > MAX_RETAINED_BYTES {
            sample.key = None;
            sample.payload = None;
            sample.oversized = true;
        }
        self.retained += sample_bytes(&sample);
        heap.push(std::cmp::Reverse(Kept { timestamp, sample }));
        if heap.len() > self.per_topic {
            if let Some(std::cmp::Reverse(dropped)) = heap.pop() {
                self.retained -= dropped.bytes();
            }
        }
    }

    /// Each topic's messages, oldest first.
    fn into_samples(self) -> impl Iterator<Item = (String, Vec<Sample>)> {
        self.topics.into_iter().map(|(topic, heap)| {
            let mut kept: Vec<Kept> = heap.into_iter().map(|r| r.0).collect();
            kept.sort();
            (topic, kept.into_iter().map(|k| k.sample).collect())
        })
    }
}

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

    let mut collected = Newest::new(per_topic);
    // librdkafka retries fetches itself and reports transient trouble as consumer errors: those are
    // remembered (for the timeout's message) and reading goes on; a refusal ends it at once.
    let mut last_error: Option<String> = None;
    while !last_wanted.is_empty() && started.elapsed() < timeout {
        match consumer.poll(left(started).min(Duration::from_millis(200))) {
            Some(Ok(m)) => {
                let key = (m.topic().to_string(), m.partition());
                let timestamp = m.timestamp().to_millis().unwrap_or(0);
                let size = m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len);
                // An oversized message's bytes are never copied out of librdkafka's buffer.
                let copy =
                    |b: Option<&[u8]>| b.filter(|_| size <= MAX_SAMPLE_BYTES).map(<[u8]>::to_vec);
                collected.offer(
                    &key.0,
                    timestamp,
                    Sample {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: copy(m.key()),
                        payload: copy(m.payload()),
                        oversized: size > MAX_SAMPLE_BYTES,
                    },
                );
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
    out.extend(collected.into_samples());
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

    fn message(partition: i32, offset: i64, bytes: usize) -> Sample {
        Sample {
            partition,
            offset,
            key: None,
            payload: Some(vec![b'x'; bytes]),
            oversized: false,
        }
    }

    #[test]
    fn only_the_newest_are_held_and_memory_is_bounded() {
        // Two partitions interleaved: the newest 3 by timestamp win, oldest first.
        let mut n = Newest::new(3);
        for (p, o, ts) in [
            (0, 0, 10),
            (1, 0, 11),
            (0, 1, 12),
            (1, 1, 9),
            (0, 2, 15),
            (1, 2, 14),
        ] {
            n.offer("t", ts, message(p, o, 10));
        }
        assert_eq!(n.retained, 30);
        let got: Vec<(i32, i64)> = n
            .into_samples()
            .flat_map(|(_, s)| s)
            .map(|s| (s.partition, s.offset))
            .collect();
        assert_eq!(got, [(0, 1), (1, 2), (0, 2)]);

        // A message over the per-message limit is held as a marker without its bytes.
        let mut n = Newest::new(10);
        let mut big = message(0, 0, 10);
        big.payload = None;
        big.oversized = true;
        n.offer("t", 1, big);
        n.offer("t", 2, message(0, 1, 10));
        assert_eq!(n.retained, 10);

        // Past the byte budget, newer messages are counted as oversized instead of held.
        let mut n = Newest::new(1000);
        let each = MAX_SAMPLE_BYTES;
        let fit = MAX_RETAINED_BYTES / each;
        for o in 0..(fit as i64 + 20) {
            n.offer("t", o, message(0, o, each));
            assert!(n.retained <= MAX_RETAINED_BYTES);
        }
        let samples: Vec<Sample> = n.into_samples().flat_map(|(_, s)| s).collect();
        assert_eq!(samples.len(), fit + 20);
        assert_eq!(samples.iter().filter(|s| s.oversized).count(), 20);
    }

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
